"""Small helpers the command modules share: tables, progress bars, argument types, writable places."""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..errors import UserError
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


def whole(lo: int):
    """argparse type: a whole number >= ``lo``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {lo}, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {lo}, got {text!r}")
        return value

    return parse


def real(lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False):
    """argparse type: a finite number in a range (``1e-5`` works)."""
    lo_text = f"{'>' if lo_open else '>='} {lo:g}" if lo > -math.inf else ""
    hi_text = f"{'<' if hi_open else '<='} {hi:g}" if hi < math.inf else ""
    allowed = "a finite number" + (f" {lo_text}" if lo_text else "") + (f" and {hi_text}" if lo_text and hi_text
                                                                      else f" {hi_text}" if hi_text else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        bad = (not math.isfinite(value) or (value <= lo if lo_open else value < lo)
               or (value >= hi if hi_open else value > hi))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def check_unique(values: Sequence, what: str) -> None:
    if values is not None and len(set(values)) != len(values):
        raise UserError(f"{what} repeats a value: {' '.join(map(str, values))}")


def check_writable(folder: str | Path, what: str = "results") -> Path:
    """Refuse, before any work, a folder the command could not write its results into."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder {folder} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as err:
        raise UserError(f"cannot write {what} into {folder} ({err.strerror}); copy it somewhere writable "
                        "or make it writable") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_run_folder(folder: str | Path, what: str) -> Path:
    """A run folder the command can write ``what`` into, or a UserError before any work."""
    folder = Path(folder)
    if not (folder / "config.yaml").is_file():
        raise UserError(f"{folder} is not a run folder (no config.yaml)")
    return check_writable(folder, what)
