"""One run type: what ``train`` returns and ``load_run`` loads back from a run folder."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import config as config_mod
from ..errors import UserError
from .checkpoint import load_checkpoint
from .setup import RunParts, build_run

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclass
class Run:
    """A trained (or loaded) run: ``model`` is the network it tests (the EMA copy with ``train.ema``),
    in eval mode; ``path`` its folder (None for a run trained without one)."""

    path: Path | None
    config: dict
    parts: RunParts
    summary: dict | None
    history: list[dict] = field(default_factory=list)
    model: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = self.parts.model

    @property
    def label_space(self):
        return self.parts.label_space


def load_run(path: str | Path, weights: str = "last", data_dir: str | None = None) -> Run:
    """Rebuild a run's model and data from its folder; ``weights`` is ``last`` or ``best`` (by validation)."""
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise UserError(f"{path} is not a run folder (no config.yaml)")
    layers = [config_mod.load_yaml(path / "config.yaml")]
    if data_dir is not None:
        layers.append({"data": {"data_dir": data_dir}})
    cfg = config_mod.resolve(*layers)
    parts = build_run(cfg)
    file = path / (BEST if weights == "best" else CHECKPOINT)
    if not file.is_file():
        raise UserError(f"{path} has no {file.name}; the run has not finished an epoch"
                        + (" or has no validation split" if weights == "best" else ""))
    try:
        state = load_checkpoint(file, map_location=parts.device)
    except Exception as err:  # a truncated or foreign file
        raise UserError(f"{file} cannot be loaded ({err})") from None
    weights_state = state["model"] if weights == "best" else (state.get("eval_model") or state["model"])
    parts.model.load_state_dict(weights_state)
    parts.model.eval()
    summary = json.loads((path / "summary.json").read_text()) if (path / "summary.json").is_file() else None
    history = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()] \
        if (path / "metrics.jsonl").is_file() else []
    return Run(path, cfg, parts, summary, history)
