"""``labelrep labels stats / show / export``."""
from __future__ import annotations

import numpy as np
import pytest

from labelrep.cli import main
from labelrep.evaluate.label_stats import label_stats, shannon_entropy


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_entropy_and_distances_by_hand():
    assert shannon_entropy(np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert shannon_entropy(np.arange(16)) == pytest.approx(4.0)
    table = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    s = label_stats(table)
    # entrywise, on [0, 1]: pair distances L1/D = 1, 0.5, 0.5; L2/sqrt(D) = 1, sqrt(.5), sqrt(.5)
    assert s["l1"] == pytest.approx(2 / 3)
    assert s["l2"] == pytest.approx((1 + 2 * np.sqrt(0.5)) / 3)
    assert s["entropy"] == pytest.approx((0 + 0 + 1) / 3)


def test_stats_table_for_several_label_spaces(capsys):
    code, out, err = run(capsys, "labels", "stats", "categorical", "constant", "random", "--dataset", "cifar10")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert rows["constant"][1] == "64x64" and float(rows["constant"][4]) == 0.0  # one value a label
    assert float(rows["random"][4]) > 11.9  # 4096 distinct values: about 12 bits
    assert float(rows["categorical"][4]) == pytest.approx(0.469, abs=1e-3)


def test_export_writes_exactly_the_training_table(capsys, tmp_path):
    from labelrep.labels import create_label_space

    out = tmp_path / "t.npy"
    code, _, err = run(capsys, "labels", "export", "random", "--dataset", "digits", "--set", "seed=3", "-o", str(out))
    assert code == 0, err
    expected = create_label_space("random", [str(i) for i in range(10)], context={"image_size": 8}, seed=3).table
    np.testing.assert_array_equal(np.load(out), expected.numpy())
    assert np.load(out).shape == (10, 16, 16)
    code, _, err = run(capsys, "labels", "export", "random", "-o", str(tmp_path / "t.txt"))
    assert code == 2 and "npy" in err and not (tmp_path / "t.txt").exists()
    code, _, err = run(capsys, "labels", "export", "categorical", "--size", "8", "-o", str(out))
    assert code == 2 and "takes no --size" in err


def test_show_draws_a_png(capsys, tmp_path):
    out = tmp_path / "labels.png"
    code, _, err = run(capsys, "labels", "show", "composite", "--dataset", "cifar10", "-o", str(out))
    assert code == 0, err
    from PIL import Image

    with Image.open(out) as img:
        assert img.width > 400 and img.height > 100
    assert [p.name for p in tmp_path.iterdir()] == ["labels.png"]  # no temporary left behind
