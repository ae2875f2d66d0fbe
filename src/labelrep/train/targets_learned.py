"""Target sources that learn from training: online label smoothing and LwAL's adaptive labels.

Both watch every step (``observe``) and keep their state in the checkpoint, so a resumed run goes on
exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch

from .. import config as config_mod
from ..errors import UserError
from .targets import TARGETS, TargetSource


def class_sums(values: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: the sum of ``values`` rows (float64) and how many rows there were."""
    sums = torch.zeros(num_classes, values.shape[1], dtype=torch.float64, device=values.device)
    sums.index_add_(0, y, values.double())
    return sums, torch.bincount(y, minlength=num_classes)


class OnlineSmoothing(TargetSource):
    """Online label smoothing (Zhang et al., "Delving Deep into Label Smoothing", TIP 2021).

    During epoch t every correctly classified training image adds its softmax to its class's row;
    at the epoch's end each row becomes the mean of them (a class with none gets the uniform row, as
    the authors' code). Epoch t + 1 trains on ``(1 - alpha) hard + alpha soft[y]``: with
    cross-entropy that is the authors' ``(1 - alpha) CE(hard) + alpha CE(soft)`` (alpha 0.5 there).
    ``init='zeros'`` (the authors' code): no soft row in the first epoch, so it trains on
    ``(1 - alpha) hard`` alone; ``init='hard'``: the first epoch's soft rows are the hard labels.
    """

    watches = True

    def __init__(self, alpha: float = 0.5, init: str = "zeros"):
        if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 <= alpha <= 1):
            raise UserError(f"target.options.alpha must lie in [0, 1], got {alpha!r}")
        if init not in ("zeros", "hard"):
            raise UserError(f"target.options.init must be 'zeros' or 'hard', got {init!r}")
        self.alpha, self.init = float(alpha), init

    def bind(self, parts, run_dir=None):
        super().bind(parts, run_dir)
        if not self.space.distribution:
            raise UserError(f"target 'ols' smooths class distributions: it needs a categorical label space, "
                            f"not {self.space.name!r}")
        c = self.space.num_classes
        hard = self.space.table.to(self.device)
        self.soft = torch.zeros(c, c, device=self.device) if self.init == "zeros" else hard.clone()
        self._reset()

    def _reset(self):
        c = self.space.num_classes
        self.sums = torch.zeros(c, c, dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(c, dtype=torch.int64, device=self.device)

    def __call__(self, x, y, idx):
        return (1 - self.alpha) * self.space.targets(y) + self.alpha * self.soft[y]

    @torch.no_grad()
    def observe(self, output, target, y, idx):
        probs = torch.softmax(self.space.scores(output).float(), dim=1)
        right = probs.argmax(1) == y
        sums, counts = class_sums(probs[right], y[right], self.space.num_classes)
        self.sums += sums
        self.counts += counts

    def on_epoch_end(self, epoch):
        seen = self.counts > 0
        soft = torch.full_like(self.soft, 1.0 / self.space.num_classes)
        soft[seen] = (self.sums[seen] / self.counts[seen, None]).float()
        self.soft = soft
        self._reset()

    def state_dict(self):
        return {"soft": self.soft.clone(), "sums": self.sums.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state):
        if state:
            self.soft, self.sums, self.counts = (state[k].to(self.device) for k in ("soft", "sums", "counts"))

    def describe(self):
        return {"name": "ols", "alpha": self.alpha, "init": self.init}


@TARGETS.register("ols")
def ols(alpha: float = 0.5, init: str = "zeros") -> OnlineSmoothing:
    """Online label smoothing: per-class mean softmax of last epoch's correct images, mixed with the hard label."""
    return OnlineSmoothing(alpha, init)


class AdaptiveLabels(TargetSource):
    """LwAL's label updates (Yu & Verma, arXiv 2209.04528) for the ``lwal`` label space.

    After every ``update_every``-th step (the authors' ``stationary_steps``, 1) past ``warmup_steps``
    (0), each class's label becomes ``decay * centroid + (1 - decay) * label`` (the authors' decay
    1.0: the centroid), the centroid being the mean output of that class's images in the step's batch;
    a class absent from the batch keeps its label. Each image's target is its class's current label.

    ``centroids``: ``batch`` (the default) is the authors' code: the labels are replaced with this
    batch's centroids *before* the step's loss, and the gradient flows through them (their TensorFlow
    tape; here ``refine``, between the forward pass and the loss). ``previous``, this toolkit's first
    version: the centroids of step s's outputs, detached, are the labels of step s + 1 on.
    Either way the stored labels after step s are step s's centroids. The centroids are of the head's
    output, as theirs (``classification_head(encoder(x))``). ``batch`` refuses a mixer (a mixed
    image has no one class centroid).
    """

    watches = True

    def __init__(self, update_every: int = 1, warmup_steps: int = 0, decay: float = 1.0,
                 centroids: str = "batch"):
        if centroids not in ("previous", "batch"):
            raise UserError(f"target.options.centroids must be 'previous' or 'batch', got {centroids!r}")
        self.centroids, self.refines = centroids, centroids == "batch"
        for key, value, low in (("update_every", update_every, 1), ("warmup_steps", warmup_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"target.options.{key} must be a whole number >= {low}, got {value!r}")
        if not (isinstance(decay, (int, float)) and not isinstance(decay, bool) and 0 < decay <= 1):
            raise UserError(f"target.options.decay must lie in (0, 1], got {decay!r}")
        self.update_every, self.warmup_steps, self.decay = update_every, warmup_steps, float(decay)
        self.step = 0

    def bind(self, parts, run_dir=None):
        super().bind(parts, run_dir)
        if not hasattr(self.space, "_head") or self.space.name != "lwal":
            raise UserError(f"target 'lwal' updates learned labels: it needs label space 'lwal', "
                            f"not {self.space.name!r}")
        if self.refines and parts.config["mix"]["name"] is not None:
            raise UserError("target 'lwal' with centroids: batch takes each image's class centroid; "
                            "it cannot train on mixed images (mix.name must be null)")
        self.step = 0

    def __call__(self, x, y, idx):
        return self.space.targets(y)

    def _updates(self, step: int) -> bool:
        return step >= self.warmup_steps and (step - self.warmup_steps) % self.update_every == 0

    def _moved(self, labels: torch.Tensor, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``labels`` with each class in the batch moved to ``decay * centroid + (1 - decay) * label``."""
        sums, counts = class_sums(output.float().flatten(1), y, self.space.num_classes)
        seen = (counts > 0)[:, None]
        centroids = torch.where(seen, sums / counts.clamp(min=1)[:, None].to(sums.dtype), labels.to(sums.dtype))
        return (self.decay * centroids + (1 - self.decay) * labels).to(labels.dtype)

    def refine(self, output, target, y):
        if not self._updates(self.step):
            return target
        labels = self._moved(self.space.table.to(output.device), output, y)  # in the tape, as the authors'
        self.space.step_labels = labels
        return labels[y]

    @torch.no_grad()
    def observe(self, output, target, y, idx):
        step, self.step = self.step, self.step + 1
        moved, self.space.step_labels = self.space.step_labels, None
        if self._updates(step):  # batch mode moved them already, in the tape
            self.space.table = moved.detach() if moved is not None else self._moved(self.space.table, output, y)

    def state_dict(self):
        # The labels themselves are a buffer of the head: the model's state carries them.
        return {"step": self.step}

    def load_state_dict(self, state):
        if state:
            self.step = int(state["step"])

    def describe(self):
        return {"name": "lwal", "update_every": self.update_every, "warmup_steps": self.warmup_steps,
                "decay": self.decay, "centroids": self.centroids}


@TARGETS.register("lwal")
def lwal(update_every: int = 1, warmup_steps: int = 0, decay: float = 1.0, centroids: str = "batch") -> AdaptiveLabels:
    """LwAL: labels of the 'lwal' space rewritten from class centroids of the outputs every few steps."""
    return AdaptiveLabels(update_every, warmup_steps, decay, centroids)


@config_mod.add_identity_part
def lwal_identity(config: dict) -> dict:
    """An ``lwal`` run on the default centroid mode says so in its id: runs made before the option
    existed computed ``previous`` with no option given, and keep their ids (an explicit ``previous``
    is a neutral default in ``config``, so it shares them; an explicit ``batch`` is in the config)."""
    target = config.get("target") if isinstance(config.get("target"), dict) else {}
    if target.get("name") != "lwal" or "centroids" in (target.get("options") or {}):
        return {}
    return {"lwal_centroids": "batch"}
