"""Checks a run's config passes before anything is trained or written.

``check_names``: every registered name in the config exists and takes the options given (nothing is
built, so a study checks all its cells up front). ``preflight``: two training images through model,
head and scores, so options a factory accepted but the network cannot run with (zero widths,
a label table with an empty axis) fail in a sentence instead of a traceback in the first step.
"""
from __future__ import annotations

import torch

from ..errors import UserError


def _registries():
    from ..data import DATASETS
    from ..data.mixing import MIXERS
    from ..labels import LABEL_SPACES
    from ..models import ENCODERS

    found = {"data": (DATASETS, "dataset"), "label": (LABEL_SPACES, "name"), "model": (ENCODERS, "name"),
             "mix": (MIXERS, "name")}
    try:  # the target seam (labelrep/train/targets.py), where present
        from .targets import TARGETS

        found["target"] = (TARGETS, "name")
    except ImportError:
        pass
    return found


def check_names(config: dict) -> None:
    """Unknown names and options a factory does not take are UserErrors; nothing is loaded or built."""
    for section, (registry, key) in _registries().items():
        name = config.get(section, {}).get(key)
        if name is None or (section == "mix" and name == "none"):
            continue
        registry.check(name, **config[section].get("options", {}))


def preflight(parts) -> None:
    if len(parts.train) == 0:
        return  # the loop says the training set is empty
    cfg, model, space = parts.config, parts.model, parts.label_space
    was_training = model.training
    x = parts.normalize(torch.as_tensor(parts.train.images[:2]).to(parts.device))
    try:
        model.eval()
        with torch.no_grad():
            space.scores(model(x))  # scores compare the output with the table: shapes must agree
    except (RuntimeError, ValueError, IndexError, ZeroDivisionError) as err:
        shape = "x".join(map(str, parts.train.images.shape[1:]))
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"model {cfg['model']['name']!r} (options {cfg['model']['options']}) with label space "
                        f"{cfg['label']['name']!r} (options {cfg['label']['options']}) cannot run on a {shape} "
                        f"{cfg['data']['dataset']} image ({detail}); check those options") from None
    finally:
        model.train(was_training)
