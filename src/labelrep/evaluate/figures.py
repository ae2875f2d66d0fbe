"""Matplotlib, imported lazily (an optional dependency), and figures written atomically."""
from __future__ import annotations

import io
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write_bytes


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError("figures need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Render to memory, then write under a temporary name and rename (format from the suffix)."""
    plt = pyplot()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
