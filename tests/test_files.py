"""Atomic writes: parallel writers of one file never trip over each other's temporary files,
and a failed write leaves the old file and no debris."""
from __future__ import annotations

import numpy as np
import pytest

from labelrep.files import atomic_path, atomic_write_text


def test_two_interleaved_writers_of_one_file_both_succeed(tmp_path):
    # Two study workers decoding the same image folder write the same cache file at once.
    target = tmp_path / "train-abc.npz"
    first, second = atomic_path(target), atomic_path(target)
    tmp_a, tmp_b = first.__enter__(), second.__enter__()
    assert tmp_a != tmp_b and tmp_a.parent == tmp_b.parent == tmp_path
    np.savez(tmp_a, images=np.zeros(3))
    np.savez(tmp_b, images=np.ones(3))
    assert tmp_a.suffix == ".npz" and tmp_a.is_file()  # savez kept the name: no ".npz.npz"
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    with np.load(target) as z:
        assert z["images"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
