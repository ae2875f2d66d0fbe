"""Atomic writes: a temporary file beside the target, then a rename, so a killed run never leaves
half a file. Temporary names are unique per process and call, so parallel runs that write the same
file (two study workers decoding one image folder) never rename each other's half-written files."""
from __future__ import annotations

import json
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


# What ``atomic_path`` names its temporaries: .<stem>.<pid>-<8 hex><suffix>
TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.[^.]*)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries of writers that died mid-write (SIGKILL skips ``atomic_path``'s cleanup);
    a live process's temporary is left alone. Returns what was removed."""
    removed = []
    for path in Path(folder).rglob(".*"):
        match = TEMPORARY.match(path.name)
        if match and path.is_file() and not _alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends without error.

    The temporary name keeps ``path``'s suffix, so writers that add one (``np.savez``) leave it alone.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
