"""Custom regressed labels: any array per class from a ``.npy`` file of shape ``[C, ...]``.

Square 2-D rows get the paper's decoder head, other shapes a linear head reshaped to the row.
The table is the file's values as they are (times ``scale``); it is not cached, the file is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from .regression import RegressionLabelSpace, make_space, regressed_space


def load_custom_table(path: str | Path, num_classes: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"custom label file {path} does not exist")
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"custom label file {path} is not a numpy .npy array ({err})") from None
    if table.ndim < 2 or table.shape[0] != num_classes:
        raise UserError(f"custom label file {path} has shape {table.shape}; it needs [{num_classes}, ...], "
                        "one row per class")
    if not np.issubdtype(table.dtype, np.number) or np.iscomplexobj(table):
        raise UserError(f"custom label file {path} must hold real numbers, not {table.dtype}")
    return table.astype(np.float32)


@regressed_space("custom", "regressed labels from a .npy file of shape [C, ...] (option path=...)")
def custom(classes: Sequence[str], path: str | None = None, **options) -> RegressionLabelSpace:
    if path is None:
        raise UserError("the custom label space needs path=FILE.npy (e.g. --set label.options.path=labels.npy)")
    table = load_custom_table(path, len(classes))
    return make_space("custom", classes, table, {"path": str(Path(path).resolve())}, options)
