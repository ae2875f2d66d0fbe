"""Small helpers the command modules share: tables and progress bars."""
from __future__ import annotations

import sys
from typing import Sequence

from ..train.hooks import Hooks


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join([line, sep, *body])


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


class ProgressHooks(Hooks):
    """A tqdm bar over the steps of a run, with the last epoch's numbers on it."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def on_start(self, state):
        if self.quiet:
            return
        from tqdm import tqdm

        cfg = state.parts.config
        self.bar = tqdm(total=state.total_steps, initial=(state.first_epoch - 1) * state.steps_per_epoch,
                        unit="step", file=sys.stderr, dynamic_ncols=True, leave=False,
                        desc=f"{cfg['label']['name']}/{cfg['model']['name']}")

    def on_step(self, epoch, step):
        if self.bar is not None:
            self.bar.update(1)

    def on_epoch(self, record):
        if self.bar is not None:
            shown = {"epoch": record["epoch"], "loss": f"{record['train_loss']:.3f}"}
            if "test_accuracy" in record:
                shown["test"] = f"{record['test_accuracy']:.3f}"
            self.bar.set_postfix(**shown)

    def on_end(self, summary):
        if self.bar is not None:
            self.bar.close()


def print_listing(entries: dict[str, str]) -> int:
    print(table(["name", "description"], sorted(entries.items())))
    return 0
