"""Regressed labels (Chen et al., ICLR 2021): the network regresses a target per class.

The base for every high-dimensional label space (speech, shuffled, constant, composite, random,
lowdim, bert, glove, custom):

- ``table``: ``[C, *shape]``, exactly what training regresses (after the optional ``scale`` or
  ``standardize``);
- ``head``: the paper's decoder for square 2-D labels, a linear head otherwise; with
  ``head_norm`` the head ends in a fixed ``* std + mean`` of the table, so its layers start in
  standardised units but its output is still in table units. The loss stays in table units too, so
  the gradients reaching the layers grow by the table's std (23 for [0, 80] uniform labels): on 10 %
  of CIFAR-10 this helped bert, made speech unstable and collapsed lowdim to chance
  (benchmarks/results/labels_side_by_side.md);
- ``recipe``: ``fast`` (the default) or ``paper``, a named set of the options below; an option
  given explicitly wins. ``paper`` is Chen et al.'s: Huber loss in table units, no affine, no ``aux``.
  ``fast``: ``head_norm`` + ``standard_loss`` + ``aux`` 1 at ``aux_temperature`` 0.2; at 15 epochs on
  10 % of CIFAR-10 it brings speech, shuffled, composite, random and bert within 2 points of
  categorical (3 seeds; the paper recipe: 2.4 to 31 points behind) and stays level with it at 60
  (benchmarks/results/labels_that_learn.md). A run's id holds its recipe's values;
- ``loss``: Huber (smooth L1), ``delta`` 1, mean over elements, in table units (``standard_loss``: on
  output and target z-scored by the table's one mean and std), plus ``aux`` x the nearest-label
  cross-entropy (``nearest_label_loss``, temperature ``aux_temperature`` x the table's variance,
  i.e. in z-scored units);
- ``scores``: minus the distance from the output to every class's row (``l2`` default as in the
  paper; ``l1``, ``huber``, or ``cosine`` similarity), so accuracy is the nearest label;
- ``threshold_correct``: the paper's second rule, correct when the Huber loss to the true
  label is below ``threshold`` (3.5, in table units).

``scale`` multiplies the generated table (label scaling, e.g. 1/80 maps [0, 80] to [0, 1]);
``standardize`` instead shifts and divides the whole table by one mean and one standard deviation
(a z-score over all entries, so nearest-label decisions under L2 and L1 are unchanged). The table,
loss, scores and an export all see the transformed values. ``threshold`` and ``delta`` are not
rescaled, so either changes the loss regime: at 1/80 errors fall below ``delta`` and the Huber loss is
a small MSE with 80x smaller gradients (on 10 % of CIFAR-10 this collapsed training to chance); a scale
that brings small labels up to the [0, 80] range (GloVe: 20) helped. The threshold rule (3.5) is the
paper's, in [0, 80] units: it means nothing for rescaled or small labels (GloVe passes it always).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import config as config_mod
from ..errors import UserError
from ..models.modes import eval_mode
from .base import LabelSpace
from .registry import LABEL_SPACES
from .heads import OutputAffine, regression_head

DISTANCES = ("l2", "l1", "huber", "cosine")
HEADS = ("auto", "decoder", "linear")


class RegressionLabelSpace(LabelSpace):
    name = "regression"

    def __init__(self, classes: Sequence[str], table, distance: str = "l2", threshold: float = 3.5,
                 delta: float = 1.0, scale: float = 1.0, standardize: bool = False, head: str = "auto",
                 head_norm: bool = False, aux: float = 0.0, aux_temperature: float = 0.2,
                 standard_loss: bool = False, recipe: str = "paper", params: dict | None = None):
        if distance not in DISTANCES:
            raise UserError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
        if head not in HEADS:
            raise UserError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if not scale > 0:
            raise UserError(f"label scale must be positive, got {scale}")
        if not delta > 0:
            raise UserError(f"Huber delta must be positive, got {delta}")
        for flag, value in (("standardize", standardize), ("head_norm", head_norm), ("standard_loss", standard_loss)):
            if not isinstance(value, (bool, np.bool_)):
                raise UserError(f"label option {flag} is true or false, not {value!r}")
        if not (isinstance(aux, (int, float)) and not isinstance(aux, bool) and aux >= 0):
            raise UserError(f"label option aux is a weight >= 0, got {aux!r}")
        if not (isinstance(aux_temperature, (int, float)) and aux_temperature > 0):
            raise UserError(f"label option aux_temperature must be a positive number, got {aux_temperature!r}")
        if standardize and scale != 1:
            raise UserError("give either scale or standardize, not both (a z-score undoes any scale)")
        table = torch.as_tensor(np.asarray(table, dtype=np.float32)) * float(scale)
        if table.ndim < 2:
            raise UserError(f"a regressed label table needs shape [C, ...], got {tuple(table.shape)}")
        if not bool(torch.isfinite(table).all()):
            raise UserError("the label table holds NaN or inf values")
        if standardize:
            std = table.double().std(unbiased=False)
            if not std > 0:
                raise UserError("cannot standardize a label table whose entries are all equal")
            table = ((table.double() - table.double().mean()) / std).float()
        super().__init__(classes, table)
        self.distance, self.threshold, self.delta, self.scale = distance, float(threshold), float(delta), float(scale)
        self.standardize = bool(standardize)
        self.head_kind, self.head_norm = head, bool(head_norm)
        self.aux, self.aux_temperature, self.recipe = float(aux), float(aux_temperature), recipe
        self.standard_loss = bool(standard_loss)
        # One mean and std of the table: head_norm's output affine and the standardised loss share them.
        self.table_mean, self.table_std = float(self.table.mean()), float(self.table.std()) or 1.0
        self.params = dict(params or {})
        self._flat = self.table.flatten(1)
        # The nearest-label loss's unit: the table's variance, so the temperature is in z-scored units,
        # as the standardised Huber loss beside it; whatever a table's range, one temperature sets
        # the same logit scale against it (labels_that_learn.md: the mean pairwise distance did not).
        self._aux_unit = self.table_std ** 2

    def head(self, in_features: int) -> nn.Module:
        try:
            module = regression_head(in_features, self.shape, self.head_kind)
        except ValueError as err:
            raise UserError(str(err)) from None
        if self.head_norm:
            module = nn.Sequential(module, OutputAffine(self.table_mean, self.table_std))
        return module

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out, tgt = output.float(), target.float()
        if self.standard_loss:  # the Huber loss in z-scored units: no gradient growth with the table's range
            out, tgt = (out - self.table_mean) / self.table_std, (tgt - self.table_mean) / self.table_std
        loss = F.huber_loss(out, tgt, delta=self.delta)
        if self.aux:
            loss = loss + self.aux * nearest_label_loss(output, target, self._table_on(output),
                                                        self.aux_temperature * self._aux_unit)
        return loss

    def _table_on(self, output: torch.Tensor) -> torch.Tensor:
        if self._flat.device != output.device:
            self._flat = self._flat.to(output.device)
        return self._flat

    def distances(self, output: torch.Tensor, distance: str | None = None) -> torch.Tensor:
        """``[B, C]`` distance from each output to each class's label (cosine: 1 - similarity)."""
        distance = distance or self.distance
        out = output.float().flatten(1)
        table = self._table_on(out)
        if distance == "l2":
            return torch.cdist(out, table, compute_mode="donot_use_mm_for_euclid_dist")
        if distance == "l1":
            return torch.cdist(out, table, p=1)
        if distance == "huber":
            # one class at a time keeps memory at [B, D] however many classes there are
            return torch.stack([F.huber_loss(out, row.expand_as(out), delta=self.delta, reduction="none").mean(1)
                                for row in table], dim=1)
        if distance == "cosine":
            return 1.0 - F.normalize(out, dim=1) @ F.normalize(table, dim=1).T
        raise UserError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return -self.distances(output)

    def sample_loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Huber loss of each sample to its own class's label, ``[B]``."""
        target = self._table_on(output.float().flatten(1))[y]
        return F.huber_loss(output.float().flatten(1), target, delta=self.delta, reduction="none").mean(1)

    def threshold_correct(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The paper's threshold rule: correct when the Huber loss to the true label < threshold."""
        return self.sample_loss(output, y) < self.threshold

    def describe(self) -> dict:
        return {**super().describe(), "distance": self.distance, "threshold": self.threshold,
                "delta": self.delta, "scale": self.scale, "standardize": self.standardize, "head": self.head_kind,
                "head_norm": self.head_norm, "aux": self.aux, "aux_temperature": self.aux_temperature,
                "standard_loss": self.standard_loss, "recipe": self.recipe, **self.params}


def nearest_label_loss(output: torch.Tensor, target: torch.Tensor, table: torch.Tensor,
                       temperature: float) -> torch.Tensor:
    """Cross-entropy of the softmax over minus squared distances (mean over entries, / temperature)
    from each output to every class label, with the sample's own target in the numerator:
    ``d(z, t) / T + logsumexp_c(-d(z, t_c) / T)``. For ``t = table[y]`` it is exactly the
    cross-entropy of class ``y``; a mixed target is scored by its own distance. ``||z||^2`` cancels
    between the two terms, which leaves a linear classifier with the fixed weights ``2 t_c``."""
    z, t = output.float().flatten(1), target.float().flatten(1)
    scale = temperature * z.shape[1]
    logits = (2 * z @ table.T - (table * table).sum(1)) / scale
    own = (2 * (z * t).sum(1) - (t * t).sum(1)) / scale
    return (torch.logsumexp(logits, dim=1) - own).mean()


@torch.no_grad()
def threshold_accuracy(model: nn.Module, space: RegressionLabelSpace, loader) -> float:
    """Fraction of images whose Huber loss to their own label is below the space's threshold."""
    with eval_mode(model):
        hits = torch.cat([space.threshold_correct(model(x), y) for x, y, _ in loader])
    return hits.float().mean().item()


def label_size(image_size: int | None, size: int | None, default: int = 64) -> int:
    """The label side N: ``size`` if given, else 2 x the image side (CIFAR 32 -> 64)."""
    if size is not None:
        if int(size) < 1:
            raise UserError(f"label size must be a positive integer, got {size}")
        return int(size)
    return 2 * int(image_size) if image_size else default


COMMON_OPTIONS = {"distance": "l2", "threshold": 3.5, "delta": 1.0, "scale": 1.0, "standardize": False, "head": "auto",
                  "head_norm": False, "aux": 0.0, "aux_temperature": 0.2, "standard_loss": False, "recipe": "fast"}
# Named training recipes: the option values each sets (an option given explicitly wins). ``paper``:
# Chen et al.'s Huber regression in table units. ``fast`` (the default): the decoder in z-scored units,
# the Huber loss there, plus the nearest-label cross-entropy (benchmarks/results/labels_that_learn.md).
RECIPES = {"paper": {"aux": 0.0, "head_norm": False, "standard_loss": False},
           "fast": {"aux": 1.0, "head_norm": True, "standard_loss": True}}
# What the temperature is measured in; part of a run's identity with the recipe's values.
AUX_UNIT = "table variance"
#: regressed space -> its own option defaults, over the recipe's (an explicit option still wins)
REGRESSED_SPACES: dict[str, dict] = {}


def regressed_space(name: str, description: str | None = None, defaults: dict | None = None):
    """Register a regressed label space (its factory calls ``make_space``): a run's identity then
    holds the values of the recipe it trains with, so a changed recipe never reuses an old run.
    ``defaults``: option values this space needs over the recipe's (measured, and said where)."""
    REGRESSED_SPACES[name] = dict(defaults or {})
    return LABEL_SPACES.register(name, description)


def recipe_defaults(name: str, recipe: str) -> dict:
    """The option values a regressed space trains with unless given: the recipe's, then the space's own."""
    return {**RECIPES.get(recipe, {}), **REGRESSED_SPACES.get(name, {})}


@config_mod.add_identity_part
def recipe_identity(config: dict) -> dict:
    label = config.get("label") if isinstance(config.get("label"), dict) else {}
    if label.get("name") not in REGRESSED_SPACES:
        return {}
    recipe = (label.get("options") or {}).get("recipe", COMMON_OPTIONS["recipe"])
    values = {"aux_temperature": COMMON_OPTIONS["aux_temperature"], **recipe_defaults(label["name"], recipe)}
    return {"label_recipe": {"name": recipe, **values, "aux_unit": AUX_UNIT}}


def make_space(name: str, classes: Sequence[str], table, params: dict, options: dict) -> RegressionLabelSpace:
    """A RegressionLabelSpace named ``name``; ``options`` may hold only the common regression options."""
    unknown = sorted(set(options) - set(COMMON_OPTIONS))
    if unknown:
        raise UserError(f"label space {name!r} got unknown option(s) {', '.join(unknown)}; it accepts its own "
                        f"parameters and {', '.join(COMMON_OPTIONS)}")
    recipe = options.get("recipe", COMMON_OPTIONS["recipe"])
    if recipe not in RECIPES:
        raise UserError(f"unknown label recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    space = RegressionLabelSpace(classes, table, **{**COMMON_OPTIONS, **recipe_defaults(name, recipe), **options},
                                 params=params)
    space.name = name
    return space
