"""Evaluation mode that gives every submodule back its own mode afterwards."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; on exit each submodule gets its own earlier mode back.

    Restoring only the top module's flag (``model.train(was_training)``) is wrong for wrappers:
    a fresh wrapper module starts in training mode, and ``wrapper.train(True)`` would switch the
    wrapped network's batch norm to batch statistics, which then drift on every forward pass.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
