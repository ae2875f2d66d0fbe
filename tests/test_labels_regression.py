"""Regressed label spaces: the seeded generators, the decoder, Huber loss, distance scores,
the threshold rule, the table cache and a real training run on the digits set."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.labels.cache import cached_table
from labelrep.labels.heads import Decoder2d, decoder_plan
from labelrep.labels.regression import RegressionLabelSpace

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CTX = {"dataset": "cifar10", "image_size": 32}


def test_random_and_lowdim_equal_the_papers_seeded_draws():
    np.random.seed(48)
    paper_random = np.random.uniform(0, 80, (100, 64, 64))[:10]
    np.random.seed(48)
    paper_lowdim = np.random.uniform(0, 80, (10, 10))
    random = create_label_space("random", CIFAR10, context=CTX)
    lowdim = create_label_space("lowdim", CIFAR10, context=CTX)
    assert random.shape == (64, 64) and lowdim.shape == (10,)
    np.testing.assert_array_equal(random.table.numpy(), paper_random.astype(np.float32))
    np.testing.assert_array_equal(lowdim.table.numpy(), paper_lowdim.astype(np.float32))


def test_constant_labels_are_i_times_80_over_c_minus_1():
    space = create_label_space("constant", CIFAR10, context=CTX)
    assert space.shape == (64, 64)
    for i in range(10):
        assert torch.all(space.table[i] == np.float32(i * 80 / 9))


def test_composite_is_seeded_scaled_and_distinct():
    a = create_label_space("composite", CIFAR10, context=CTX).table
    b = create_label_space("composite", CIFAR10, context=CTX).table
    c = create_label_space("composite", CIFAR10, context=CTX, seed=2).table  # the authors' seed is 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (10, 64, 64)
    # the authors' recipe min-max scales before Pillow's bicubic resize, which may overshoot a little
    assert torch.allclose(a.flatten(1).min(1).values, torch.zeros(10), atol=1.0)
    assert torch.allclose(a.flatten(1).max(1).values, torch.full((10,), 80.0), atol=1.0)
    g = create_label_space("composite", CIFAR10, context=CTX, generator="gaussians").table  # exactly [0, 80]
    assert torch.allclose(g.flatten(1).min(1).values, torch.zeros(10))
    assert torch.allclose(g.flatten(1).max(1).values, torch.full((10,), 80.0))
    # ten blobs, not a flat field: a good share of every label is near zero, another share well above
    assert ((a < 8).float().mean() > 0.1) and ((a > 24).float().mean() > 0.05)  # the authors' blobs are broad


def test_label_side_follows_the_image_and_can_be_overridden():
    assert create_label_space("random", CIFAR10, context={"image_size": 8}).shape == (16, 16)
    assert create_label_space("random", CIFAR10, context=CTX, size=48).shape == (48, 48)


@pytest.mark.parametrize("size", [48, 64, 16])
def test_decoder_emits_the_label_shape(size):
    head = Decoder2d(128, size)
    out = head(torch.randn(5, 128))
    assert out.shape == (5, size, size)


def test_decoder_for_64_is_the_papers_layer_stack():
    start, doublings = decoder_plan(64)
    assert (start, doublings) == (4, 4) and decoder_plan(48) == (3, 4)
    convs = [m for m in Decoder2d(64, 64).deconvs if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs] == [
        (64, 64, 4, 1, 0), (64, 32, 4, 2, 1), (32, 16, 4, 2, 1), (16, 8, 4, 2, 1), (8, 1, 4, 2, 1)]


def test_one_dimensional_labels_get_a_linear_head():
    head = create_label_space("lowdim", CIFAR10).head(32)
    assert head(torch.randn(3, 32)).shape == (3, 10)
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in head.modules())


def test_huber_loss_and_distance_scores():
    space = create_label_space("random", CIFAR10, context={"image_size": 4}, recipe="paper")
    table = space.table
    torch.manual_seed(0)
    out = table[[3, 7]] + torch.randn(2, 8, 8) * 5
    expected = F.smooth_l1_loss(out, table[[3, 7]], beta=1.0)
    assert torch.isclose(space.loss(out, table[[3, 7]]), expected)
    # the default L2 scores are minus the Euclidean distance to every class label
    manual = -torch.stack([(out - table[c]).flatten(1).norm(dim=1) for c in range(10)], dim=1)
    assert torch.allclose(space.scores(out), manual, atol=1e-3)
    for distance in ("l2", "l1", "huber", "cosine"):
        s = create_label_space("random", CIFAR10, context={"image_size": 4}, distance=distance)
        assert s.scores(table).argmax(1).tolist() == list(range(10))  # each label is nearest to itself
        assert s.scores(out).argmax(1).tolist() == [3, 7]
    l1 = create_label_space("random", CIFAR10, context={"image_size": 4}, distance="l1")
    assert torch.isclose(-l1.scores(out)[0, 5], (out[0] - table[5]).abs().sum(), rtol=1e-4)


def test_threshold_rule_uses_the_huber_loss_to_the_true_label():
    space = create_label_space("constant", CIFAR10, context={"image_size": 8})
    y = torch.tensor([2, 5])
    near = space.table[y] + 0.5          # Huber 0.125 per entry
    far = space.table[y] + 10.0           # Huber 9.5 per entry
    assert space.threshold_correct(near, y).tolist() == [True, True]
    assert space.threshold_correct(far, y).tolist() == [False, False]
    assert space.threshold == 3.5


def test_scale_changes_the_table_training_uses_and_head_norm_keeps_table_units():
    raw = create_label_space("random", CIFAR10, context=CTX)
    scaled = create_label_space("random", CIFAR10, context=CTX, scale=1 / 80)
    assert torch.allclose(scaled.table, raw.table / 80)
    normed = create_label_space("random", CIFAR10, context=CTX, head_norm=True)
    head = normed.head(64).eval()
    out = head(torch.randn(256, 64))
    assert abs(out.mean().item() - normed.table.mean().item()) < 10  # starts near the labels, not near 0


def test_standardize_z_scores_the_table_and_keeps_nearest_label_decisions():
    raw = create_label_space("composite", CIFAR10, context=CTX)
    z = create_label_space("composite", CIFAR10, context=CTX, standardize=True)
    assert abs(z.table.mean().item()) < 1e-5 and abs(z.table.std(unbiased=False).item() - 1) < 1e-5
    mean, std = raw.table.mean(), raw.table.std(unbiased=False)
    assert torch.allclose(z.table, (raw.table - mean) / std, atol=1e-5)
    # the same outputs, mapped by the same affine map, are decoded to the same class
    noise = torch.randn(3, *raw.shape, generator=torch.Generator().manual_seed(0))
    outputs = raw.table[torch.tensor([3, 7, 1])] + 15 * noise
    assert torch.equal(raw.predict(outputs), z.predict((outputs - mean) / std))
    assert z.describe()["standardize"] is True
    with pytest.raises(UserError, match="either scale or standardize"):
        create_label_space("composite", CIFAR10, context=CTX, standardize=True, scale=0.5)
    with pytest.raises(UserError, match="true or false"):
        create_label_space("composite", CIFAR10, context=CTX, standardize="maybe")
    with pytest.raises(UserError, match="all equal"):
        create_label_space("constant", ["only"], context=CTX, standardize=True)


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="distance"):
        create_label_space("random", CIFAR10, distance="l3")
    with pytest.raises(UserError, match="unknown option"):
        create_label_space("constant", CIFAR10, colour="red")
    with pytest.raises(UserError, match="lowdim"):
        create_label_space("lowdim", CIFAR10, dim=0)


def test_custom_labels_from_a_npy_file(tmp_path):
    table = np.arange(10 * 6, dtype=np.float32).reshape(10, 2, 3)
    np.save(tmp_path / "t.npy", table)
    space = create_label_space("custom", CIFAR10, path=str(tmp_path / "t.npy"))
    np.testing.assert_array_equal(space.table.numpy(), table)
    assert space.head(16)(torch.randn(4, 16)).shape == (4, 2, 3)
    np.save(tmp_path / "bad.npy", table[:4])
    with pytest.raises(UserError, match=r"\[10, \.\.\.\]"):
        create_label_space("custom", CIFAR10, path=str(tmp_path / "bad.npy"))
    with pytest.raises(UserError, match="path="):
        create_label_space("custom", CIFAR10)


def test_cache_builds_once_per_parameter_set(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return np.full((2, 3), len(calls), dtype=np.float32)

    a = cached_table("demo", {"x": 1}, build, tmp_path)
    b = cached_table("demo", {"x": 1}, build, tmp_path)
    c = cached_table("demo", {"x": 2}, build, tmp_path)
    assert len(calls) == 2 and np.array_equal(a, b) and c[0, 0] == 2
    assert len(list(tmp_path.glob("demo-*.npy"))) == 2 and not list(tmp_path.glob(".*"))


def test_random_labels_train_on_digits():
    from labelrep.train import train

    result = train({"label": {"name": "random"}, "train": {"epochs": 8, "checkpoint": False},
                    "model": {"options": {"widths": [16, 32, 32]}}})
    space = result.parts.label_space
    assert isinstance(space, RegressionLabelSpace) and space.shape == (16, 16)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.summary["test_accuracy"] > 0.5  # 0.75 when written; chance is 0.1
