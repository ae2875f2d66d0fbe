"""A run folder's lifecycle: all or nothing, one writer, honest resumes.

- ``check`` (no writes): ``--out`` is a folder, empty unless resuming; on resume the checkpoint is whole
  and the stored ``config.yaml`` describes the same run as the new config.
- ``open`` (a context): creates the folder, takes a per-folder lock (a second writer is refused in a
  sentence; the kernel drops the lock if its holder dies, even by SIGKILL), sweeps temporary files
  that killed writers left, and on ANY failure before the first checkpoint removes what the run created.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .. import config as config_mod
from .. import schema
from ..errors import UserError
from ..files import sweep_stale_temporaries
from .run import CHECKPOINT

CONFIG = "config.yaml"
# Not the study runner's ".lock": it holds that one on the same folder while it calls train().
LOCK = ".train.lock"
# Only a constant schedule is the same function of the step whatever the run's length.
EXTENDABLE_SCHEDULES = ("constant",)


def _readable_checkpoint(path: Path) -> bool:
    """torch checkpoints are zip archives: a truncated one has no central directory or a bad CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError):
        return False


def resume_differences(stored: dict, new: dict) -> list[str]:
    """Keys whose change would make the resumed run another run, each as ``key (old -> new)``;
    keys that only say how to run (``schema.Key.resume_ok``) may change, and ``train.epochs`` may grow
    where the schedule does not depend on the run's length."""
    old_flat, new_flat = config_mod.flatten(stored), config_mod.flatten(new)
    missing = object()
    problems = []
    for key in [*new_flat, *(k for k in old_flat if k not in new_flat)]:
        old, value = old_flat.get(key, missing), new_flat.get(key, missing)
        if old == value and type(old) is type(value):
            continue
        section, name = key.split(".")[:2]
        declared = schema.SCHEMA.get(section, {}).get(name)
        if declared is not None and declared.resume_ok and key.count(".") == 1:
            continue
        if key == "train.epochs" and _extendable(stored, new):
            continue
        shown = lambda v: "unset" if v is missing else repr(v)  # noqa: E731
        problems.append(f"{key} ({shown(old)} -> {shown(value)})")
    return problems


def _extendable(stored: dict, new: dict) -> bool:
    o, n = stored["train"], new["train"]
    return (n["epochs"] > o["epochs"] and new["optim"]["schedule"] in EXTENDABLE_SCHEDULES
            and o.get("steps") is None and n.get("steps") is None)


class RunFolder:
    def __init__(self, path: str | Path, resume: bool):
        self.path, self.resume = Path(path), resume
        self.resuming = False

    def _entries(self) -> set[str]:
        return {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()

    def check(self, config: dict) -> bool:
        """Refuse, without writing anything, a folder this run cannot use; returns whether it resumes."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise UserError(f"output folder {path} is a file; choose a folder with --out")
        if not self.resume and self._entries() - {LOCK}:
            raise UserError(f"output folder {path} is not empty; pass --resume to continue the run there "
                            "or choose another --out")
        checkpoint = path / CHECKPOINT
        self.resuming = self.resume and checkpoint.is_file()
        if not self.resuming:
            return False
        if not _readable_checkpoint(checkpoint):
            raise UserError(f"{checkpoint} is truncated or not a checkpoint, so the run cannot resume; "
                            f"delete {path} to train it again from the start")
        if (path / CONFIG).is_file():
            try:
                stored = config_mod.resolve(config_mod.load_yaml(path / CONFIG))
            except UserError as err:
                raise UserError(f"cannot resume {path}: its {CONFIG} no longer reads ({err})") from None
            changed = resume_differences(stored, config)
            if changed:
                allowed = ", ".join(f"{s}.{k}" for s, keys in schema.SCHEMA.items() for k, key in keys.items()
                                    if key.resume_ok)
                raise UserError(
                    f"cannot resume {path} with a changed config: {'; '.join(changed)}; a resumed run must "
                    f"continue the same run (only {allowed} may change, and train.epochs may grow with a "
                    f"{' or '.join(EXTENDABLE_SCHEDULES)} schedule only, since other schedules span all epochs), "
                    "so start a new run with another --out")
        return True

    @contextlib.contextmanager
    def open(self, config: dict) -> Iterator["RunFolder"]:
        path = self.path
        self.check(config)
        top_created = None  # the highest folder this run creates: removed on failure
        probe = path.absolute()
        while not probe.exists():
            top_created, probe = probe, probe.parent
        before = self._entries()
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock = _acquire(path / LOCK)
        except OSError as err:
            if top_created is not None:
                shutil.rmtree(top_created, ignore_errors=True)
            raise UserError(f"cannot write to output folder {path} ({err.strerror})") from None
        if lock is None:
            raise UserError(f"another labelrep command is training in {path}; wait for it to finish "
                            "or choose another --out")
        try:
            sweep_stale_temporaries(path)
            self.check(config)  # again, now that no one else can write here
            yield self
        except BaseException:
            if not self.resuming and not (path / CHECKPOINT).is_file():
                self._remove_created(top_created, before)
            raise
        finally:
            _release(path / LOCK, lock)

    def _remove_created(self, top_created: Path | None, before: set[str]) -> None:
        if top_created is not None:
            shutil.rmtree(top_created, ignore_errors=True)
            return
        for name in self._entries() - before - {LOCK}:
            entry = self.path / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _acquire(lock_path: Path) -> Any:
    """An open, exclusively locked descriptor of ``lock_path``, or None if another process holds it."""
    import fcntl

    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The previous holder unlinks the file as it lets go: a lock on that old inode guards nothing.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _release(lock_path: Path, fd: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        lock_path.unlink()
    os.close(fd)
