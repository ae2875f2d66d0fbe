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

from dataclasses import dataclass
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
    #: True: the loop calls ``refine`` between the forward pass and the loss
    refines = False

    def bind(self, parts, run_dir: Path | None = None) -> None:
        """Called once before training with the run's parts (label space, training split, device)."""
        self.space, self.device = parts.label_space, parts.device

    def __call__(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def refine(self, output: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """After the forward pass (only when ``refines``): the target the loss sees, computed from
        this step's output inside the gradient tape."""
        return target

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
    """Earlier runs' predictions on the same augmented batch the student sees (Label Refinery,
    born-again networks, distillation): one teacher, or several whose predictions are averaged.

    Each teacher is loaded with its own config, so its architecture (and label space, below) is its
    own: a ResNet-56 may refine a ResNet-20. Categorical students (``label_space.distribution``)
    learn ``softmax(teacher scores / T)`` (an ensemble: the mean of its members' softmaxes), from
    teachers in any label space over the same classes; other students learn the teachers' raw
    (mean) output, which has a meaning only in the student's own label space (same table).
    ``alpha`` mixes the ground-truth row back in: ``(1 - alpha) teacher + alpha table[y]``.

    ``mode='eval'`` (default): batch norm on the teacher's running statistics, dropout off, under
    ``no_grad``, batch norm folded into the convolutions (the same function up to rounding, a cheaper
    forward); nothing in the teacher changes, so a sample's target depends on its crop only.
    ``mode='train'`` (the official Label Refinery code, which wraps teacher and student in one
    module put in training mode together): batch norm on each batch's statistics, running averages
    updated every step, dropout on. Their targets depend on the rest of the batch. Neither mode
    trains the teacher's weights or lets a gradient reach it (the official code freezes its
    parameters instead of ``no_grad``: the same numbers). Unlike the official code the moved
    running averages go into the student's checkpoint, so a resumed run continues them exactly.

    The loss sees the target unscaled: distillation at a temperature gets gradients about
    ``1 / T**2`` as large as at ``T = 1`` (Hinton et al. multiply by ``T**2``; raise the learning
    rate or use ``T = 1``, the refinery's choice).
    """

    def __init__(self, run: str | list[str], temperature: float = 1.0, alpha: float = 0.0, mode: str = "eval",
                 weights: str = "last"):
        runs = [run] if isinstance(run, (str, Path)) else list(run) if isinstance(run, (list, tuple)) else []
        if not runs or not all(isinstance(r, (str, Path)) and str(r) for r in runs):
            raise UserError("target 'teacher' needs target.options.run: the teacher's run folder, or a list of "
                            f"run folders whose predictions are averaged (an ensemble), got {run!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise UserError(f"target.options.temperature must be a positive number, got {temperature!r}")
        if not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise UserError(f"target.options.alpha must lie in [0, 1], got {alpha!r}")
        if mode not in ("eval", "train"):
            raise UserError(f"target.options.mode must be 'eval' or 'train', got {mode!r}")
        if weights not in ("last", "best"):
            raise UserError(f"target.options.weights must be 'last' or 'best', got {weights!r}")
        self.runs = [str(r) for r in runs]
        self.run = self.runs[0] if isinstance(run, (str, Path)) else self.runs
        self.temperature, self.alpha, self.mode, self.weights = float(temperature), float(alpha), mode, weights

    def bind(self, parts, run_dir=None):
        super().bind(parts, run_dir)
        if not self.space.distribution and self.temperature != 1.0:
            raise UserError(f"target.options.temperature softens class probabilities, but a {self.space.name!r} "
                            "student regresses its teachers' raw output, where a temperature has no meaning; "
                            "leave it at 1")
        self.teachers = [self._load(run, parts) for run in self.runs]

    def _load(self, run: str, parts) -> "_Teacher":
        from .. import config as config_mod
        from .run import load_run  # a teacher is a run like any other, built from its own config

        # The teacher's data where it was; a teacher of the same data set moved with the study (its
        # folder gone) finds it where the student's is.
        own = Path(run) / "config.yaml"
        data = config_mod.resolve(config_mod.load_yaml(own))["data"] if own.is_file() else {}
        moved = data.get("data_dir") is not None and not Path(data["data_dir"]).exists()
        same_set = data.get("dataset") == parts.config["data"]["dataset"]
        data_dir = parts.config["data"]["data_dir"] if moved and same_set else None
        teacher = load_run(run, weights=self.weights, data_dir=data_dir)
        t_space, t_data = teacher.label_space, teacher.parts.data
        if t_space.classes != self.space.classes:
            raise UserError(f"teacher {run} predicts classes {t_space.classes[:3]}..., the student "
                            f"{self.space.classes[:3]}...; a teacher must share the student's classes, in order")
        if (t_data.in_chans, t_data.image_size) != (parts.data.in_chans, parts.data.image_size):
            raise UserError(f"teacher {run} sees {t_data.in_chans}x{t_data.image_size}px images, the "
                            f"student {parts.data.in_chans}x{parts.data.image_size}px")
        if not self.space.distribution:
            same = t_space.shape == self.space.shape and torch.equal(t_space.table.cpu(), self.space.table.cpu())
            if not same:
                raise UserError(f"a {self.space.name!r} student regresses its own table's rows: its teacher must "
                                f"use the same label space with the same table (the teacher {run} uses "
                                f"{t_space.name!r}); only categorical students learn from any teacher's class scores")
        model = teacher.model.to(parts.device)
        model.train(self.mode == "train")
        if self.mode == "eval":
            model = _fold_batch_norm(model)
        model.requires_grad_(False)
        # The batch arrives normalised with the student's statistics; a teacher trained on other
        # statistics gets its own (x -> x * gain + bias, the identity for the same data).
        s, t = parts.normalize, teacher.parts.normalize
        gain = (t.scale / s.scale).to(parts.device)
        bias = (t.shift - s.shift * gain).to(parts.device)
        identity = torch.equal(gain, torch.ones_like(gain)) and torch.equal(bias, torch.zeros_like(bias))
        return _Teacher(model, t_space, None if identity else (gain, bias))

    @property
    def model(self) -> torch.nn.Module:
        """The (first) teacher's network."""
        return self.teachers[0].model

    @torch.no_grad()
    def teacher_output(self, x: torch.Tensor) -> torch.Tensor:
        """The teachers' target before the ground-truth mix: mean softmax at the temperature
        (categorical student) or mean raw output (regressed student)."""
        outs = []
        for teacher in self.teachers:
            xt = x if teacher.renorm is None else x * teacher.renorm[0] + teacher.renorm[1]
            if self.mode == "eval":
                with eval_mode(teacher.model):
                    out = teacher.model(xt)
            else:
                out = teacher.model(xt)
            if self.space.distribution:
                out = torch.softmax(teacher.space.scores(out).float() / self.temperature, dim=1)
            outs.append(out.float())
        return outs[0] if len(outs) == 1 else torch.stack(outs).mean(0)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The teachers' class decision for each image (their argmax; an ensemble's mean)."""
        out = self.teacher_output(x)
        return out.argmax(1) if self.space.distribution else self.space.predict(out)

    def __call__(self, x, y, idx):
        target = self.teacher_output(x)
        if self.alpha:
            target = (1 - self.alpha) * target + self.alpha * self.space.targets(y)
        return target

    def state_dict(self):
        # Train mode moves the teachers' running statistics (its targets use batch statistics, not
        # these): a resumed run's teachers end where an uninterrupted run's do.
        if self.mode != "train":
            return {}
        return {"teacher_buffers": [{k: v.clone() for k, v in t.model.named_buffers()} for t in self.teachers]}

    def load_state_dict(self, state):
        buffers = state.get("teacher_buffers")
        if buffers:
            for teacher, saved in zip(self.teachers, [buffers] if isinstance(buffers, dict) else buffers):
                teacher.model.load_state_dict(saved, strict=False)

    def describe(self):
        return {"name": "teacher", "run": self.run, "temperature": self.temperature, "alpha": self.alpha,
                "mode": self.mode, "weights": self.weights}


def _fold_batch_norm(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen eval-mode copy with each batch norm folded into the convolution before it: the same
    function up to float rounding, with fewer passes over memory (a fifth off a fastnet teacher's
    forward on a CPU). A model torch.fx cannot trace stays as it is."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:  # tracing fails in many ways (data-dependent control flow, untraceable calls)
        return model


@dataclass
class _Teacher:
    model: torch.nn.Module
    space: object                   # the teacher's own label space
    renorm: tuple | None            # (gain, bias) from the student's normalisation to the teacher's


@TARGETS.register("teacher")
def teacher(run: str | list[str] = "", temperature: float = 1.0, alpha: float = 0.0, mode: str = "eval",
            weights: str = "last") -> TeacherTargets:
    """Earlier runs' predictions on the same augmented batch (softmax at a temperature; a list of
    runs: their mean), frozen (mode eval) or on batch statistics (mode train, the official refinery)."""
    return TeacherTargets(run, temperature, alpha, mode, weights)
from . import targets_learned as _targets_learned  # noqa: E402,F401  (registers ols, lwal)
