"""The one exception type for a user's mistake: the CLI prints its message and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (unknown name, missing data, malformed config...).

    The message is one sentence that says what is wrong and what to do.
    """


class NonFiniteLossError(RuntimeError):
    """A NaN or inf loss appeared during training.

    ``epoch`` counts from 1, ``step`` (the batch within the epoch) from 0; the message counts both from 1.
    """

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"loss became {value} at epoch {epoch}, step {step + 1} of that epoch (both counted "
                         "from 1); the run was stopped (lower the learning rate or check the data and targets)")
