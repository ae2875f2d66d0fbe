"""Target sources: the one seam between a batch and the loss.

A target source turns a batch into the dense per-sample target the label space's loss compares the
output with: ``source(x, y, idx) -> [B, *label_shape]``, given the augmented images ``x``, the class
ids ``y`` and ``idx``, the positions of the batch's images in the run's training split
(``parts.train.index[idx]`` locates them in the data source's full training set).

Built in: ``table`` (the label space's class table: today's behaviour), ``per_image`` (a table of one
row per training image, from a ``.npy`` file or the data source's own per-image targets), ``teacher``
(a frozen earlier run's predictions on the very batch the student sees). A source that learns from
training sets ``watches = True`` and gets ``observe`` after every step; its ``state_dict`` goes into
the checkpoint so a resumed run continues exactly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..models.modes import eval_mode
from ..registry import Registry

TARGETS: Registry = Registry("target source")


class TargetSource:
    #: True: the loop calls ``observe`` after each step (a source that does not watch costs nothing)
    watches = False

    def bind(self, parts, run_dir: Path | None = None) -> None:
        """Called once before training with the run's parts (label space, training split, device)."""
        self.space, self.device = parts.label_space, parts.device

    def __call__(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def observe(self, output: torch.Tensor, target: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> None:
        """After a training step (only when ``watches``): the detached output and the target used."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the last step of an epoch, before the checkpoint is written."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def describe(self) -> dict:
        return {"name": type(self).__name__}


def create_target_source(name: str | None, **options) -> TargetSource:
    return TARGETS.create(name or "table", **options)


class TableTargets(TargetSource):
    """``table[y]``: every image of a class gets the class's row."""

    def __call__(self, x, y, idx):
        return self.space.targets(y)


@TARGETS.register("table")
def table() -> TableTargets:
    """The label space's class table: each image gets its class's row (the default)."""
    return TableTargets()


class PerImageTargets(TargetSource):
    """One row per training image: soft labels from a file, or the data source's own targets."""

    def __init__(self, file: str | None = None):
        self.file = file

    def bind(self, parts, run_dir=None):
        super().bind(parts, run_dir)
        split = parts.train
        if self.file is None:
            if split.targets is None:
                raise UserError(f"target 'per_image' needs target.options.file (a .npy of per-image targets): "
                                f"data source {parts.data.name!r} supplies none")
            rows, positions = split.targets, np.arange(len(split))
        else:
            rows, positions = self._load(Path(self.file), parts), split.index
        if tuple(rows.shape[1:]) != self.space.shape:
            raise UserError(f"per-image targets have rows of shape {list(rows.shape[1:])}, but label space "
                            f"{self.space.name!r} outputs {list(self.space.shape)}")
        # Only the rows this run trains on, in its split's order: a batch looks them up by position.
        self.rows = torch.as_tensor(np.ascontiguousarray(rows[positions]), dtype=torch.float32).to(self.device)

    def _load(self, path: Path, parts) -> np.ndarray:
        if path.suffix != ".npy" or not path.is_file():
            raise UserError(f"target.options.file must be an existing .npy file, got {str(path)!r}")
        try:
            rows = np.load(path, allow_pickle=False)  # no pickle from a user's folder
        except ValueError as err:
            raise UserError(f"{path} is not a plain numeric .npy array ({err})") from None
        full = int(parts.train.index.max()) + 1 if len(parts.train) else 0
        if rows.ndim < 2 or not np.issubdtype(rows.dtype, np.number) or len(rows) < full:
            raise UserError(f"{path} must hold one numeric row per training image of {parts.data.name!r} "
                            f"(at least {full} rows), got shape {list(rows.shape)}")
        return rows

    def __call__(self, x, y, idx):
        return self.rows[idx]

    def describe(self):
        return {"name": "per_image", "file": self.file}


@TARGETS.register("per_image")
def per_image(file: str | None = None) -> PerImageTargets:
    """A row per training image: a .npy [N, *shape] in the source's order, or the source's own targets."""
    return PerImageTargets(file)


class TeacherTargets(TargetSource):
    """A frozen earlier run's predictions on the same augmented batch.

    Categorical students (``label_space.distribution``) learn ``softmax(teacher scores / T)``, from a
    teacher in any label space over the same classes; other students learn the teacher's raw output,
    which has a meaning only in the same label space (same table). ``alpha`` mixes the ground-truth
    row back in: ``(1 - alpha) teacher + alpha table[y]``. ``mode='eval'``: batch norm on running
    statistics, nothing in the teacher changes; ``mode='train'`` (the official Label Refinery code):
    batch statistics, running averages updated every step. Neither mode trains the teacher's weights.
    """

    def __init__(self, run: str, temperature: float = 1.0, alpha: float = 0.0, mode: str = "eval",
                 weights: str = "last"):
        if not run:
            raise UserError("target 'teacher' needs target.options.run: the teacher's run folder")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise UserError(f"target.options.temperature must be a positive number, got {temperature!r}")
        if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise UserError(f"target.options.alpha must lie in [0, 1], got {alpha!r}")
        if mode not in ("eval", "train"):
            raise UserError(f"target.options.mode must be 'eval' or 'train', got {mode!r}")
        if weights not in ("last", "best"):
            raise UserError(f"target.options.weights must be 'last' or 'best', got {weights!r}")
        self.run, self.temperature, self.alpha, self.mode, self.weights = str(run), float(temperature), \
            float(alpha), mode, weights

    def bind(self, parts, run_dir=None):
        from .run import load_run  # the teacher is a run like any other

        super().bind(parts, run_dir)
        teacher = load_run(self.run, weights=self.weights, data_dir=parts.config["data"]["data_dir"])
        t_space, t_data = teacher.label_space, teacher.parts.data
        if t_space.classes != self.space.classes:
            raise UserError(f"teacher {self.run} predicts classes {t_space.classes[:3]}..., the student "
                            f"{self.space.classes[:3]}...; a teacher must share the student's classes")
        if (t_data.in_chans, t_data.image_size) != (parts.data.in_chans, parts.data.image_size):
            raise UserError(f"teacher {self.run} sees {t_data.in_chans}x{t_data.image_size}px images, the "
                            f"student {parts.data.in_chans}x{parts.data.image_size}px")
        if not self.space.distribution:
            same = (t_space.shape == self.space.shape and torch.equal(t_space.table.cpu(), self.space.table.cpu()))
            if not same:
                raise UserError(f"a {self.space.name!r} student regresses its own table's rows: its teacher must "
                                f"use the same label space (the teacher {self.run} uses {t_space.name!r}); "
                                "only categorical students learn from any teacher's class scores")
        # The student's normalisation: the same dataset gives the same statistics; both see one batch.
        self.model = teacher.model.to(parts.device)
        self.model.train(self.mode == "train")
        self.model.requires_grad_(False)
        self.teacher_space = t_space

    @torch.no_grad()
    def __call__(self, x, y, idx):
        if self.mode == "eval":
            with eval_mode(self.model):
                out = self.model(x)
        else:
            out = self.model(x)
        if self.space.distribution:
            target = torch.softmax(self.teacher_space.scores(out).float() / self.temperature, dim=1)
        else:
            target = out.float()
        if self.alpha:
            target = (1 - self.alpha) * target + self.alpha * self.space.targets(y)
        return target

    def state_dict(self):
        # Train mode changes the teacher's running statistics: a resumed run must continue from them.
        return {"teacher_buffers": {k: v.clone() for k, v in self.model.state_dict().items()}} \
            if self.mode == "train" else {}

    def load_state_dict(self, state):
        if state.get("teacher_buffers"):
            self.model.load_state_dict(state["teacher_buffers"])

    def describe(self):
        return {"name": "teacher", "run": self.run, "temperature": self.temperature, "alpha": self.alpha,
                "mode": self.mode, "weights": self.weights}


@TARGETS.register("teacher")
def teacher(run: str = "", temperature: float = 1.0, alpha: float = 0.0, mode: str = "eval",
            weights: str = "last") -> TeacherTargets:
    """An earlier run's predictions on the same augmented batch (softmax at a temperature), frozen."""
    return TeacherTargets(run, temperature, alpha, mode, weights)
from . import targets_learned as _targets_learned  # noqa: E402,F401  (registers ols, lwal)
