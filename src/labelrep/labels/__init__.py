"""Label spaces: what the network is asked to output for a class."""
from __future__ import annotations

import inspect
from typing import Sequence

from ..errors import UserError
from .base import LabelSpace
from .registry import LABEL_SPACES
from . import categorical as _categorical  # noqa: F401  (registers categorical, smoothed)
from . import synthetic as _synthetic, speech as _speech  # noqa: F401  (constant, composite, random, lowdim; speech, shuffled)
from . import text as _text, custom as _custom  # noqa: F401  (bert, glove; custom)
from . import multilabel as _multilabel  # noqa: F401  (multihot)
from . import learned as _learned  # noqa: F401  (lwal: labels learned while training)


def create_label_space(name: str, classes: Sequence[str], context: dict | None = None,
                       **options) -> LabelSpace:
    """Build a registered label space for ``classes``; unknown names list the known ones.

    ``context`` carries facts about the data (``dataset``, ``image_size``, ``cache_dir``) that a
    label space may need; each factory receives only the keys it names as parameters.
    """
    factory = LABEL_SPACES.get(name)
    accepted = inspect.signature(factory).parameters
    extra = {k: v for k, v in (context or {}).items() if k in accepted and k not in options}
    space = LABEL_SPACES.create(name, classes=list(classes), **extra, **options)
    if (context or {}).get("multi_label") and not space.multi_label:
        raise UserError(f"data set {context.get('dataset')!r} is multi-label (several classes an image) but label "
                        f"space {name!r} asks for one class per image; use a multi-label space such as multihot")
    return space


def list_label_spaces() -> dict[str, str]:
    return LABEL_SPACES.describe()


__all__ = ["LabelSpace", "LABEL_SPACES", "create_label_space", "list_label_spaces"]
