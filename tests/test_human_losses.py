"""Noise-robust and class-balanced losses, pinned on hand-computed values; long-tailed subsets."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelrep.data.subsets import long_tail_counts, long_tail_indices
from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.labels.losses import (cb_sigmoid_loss, cb_softmax_loss, class_balanced_weights, focal_modulator,
                                    generalized_cross_entropy, symmetric_cross_entropy)

IF100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
CLASSES = [str(i) for i in range(10)]
# logits [0, ln 3]: p = [1/4, 3/4]
Z = torch.tensor([[0.0, math.log(3.0)]])
Y1 = torch.tensor([[0.0, 1.0]])
Y0 = torch.tensor([[1.0, 0.0]])


def test_long_tail_counts_match_cui_et_al():
    assert long_tail_counts(5000, 10, 100) == IF100
    assert long_tail_counts(5000, 10, 50) == [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]
    assert long_tail_counts(5000, 10, 1) == [5000] * 10
    with pytest.raises(UserError, match="imbalance"):
        long_tail_counts(5000, 10, 0.5)


def test_long_tail_indices_draw_those_counts_seeded():
    labels = np.repeat(np.arange(10), 500)
    idx = long_tail_indices(labels, 10, 50, seed=3)
    assert np.bincount(labels[idx], minlength=10).tolist() == [500, 323, 209, 135, 87, 56, 36, 23, 15, 10]
    assert np.array_equal(idx, long_tail_indices(labels, 10, 50, seed=3))
    assert not np.array_equal(idx, long_tail_indices(labels, 10, 50, seed=4))
    with pytest.raises(UserError, match="no image"):
        long_tail_indices(np.repeat(np.arange(10), 5), 10, 50, seed=0)


def test_class_balanced_weights_for_the_if100_counts():
    beta = 0.9999
    w = class_balanced_weights(IF100, beta)
    # by hand: effective number E_n = (1 - beta^n) / (1 - beta), w = 1 / E_n scaled to sum to C
    raw = [(1 - beta) / -math.expm1(n * math.log(beta)) for n in IF100]
    expected = [r / sum(raw) * 10 for r in raw]
    assert w.tolist() == pytest.approx(expected, rel=1e-12)
    assert float(w.sum()) == pytest.approx(10.0)
    # tail / head = (1 - 0.9999^5000) / (1 - 0.9999^50) = 0.393485 / 0.0049875
    assert float(w[-1] / w[0]) == pytest.approx(78.894, rel=1e-4)
    assert w.tolist()[0] == pytest.approx(0.0506, abs=1e-4) and w.tolist()[-1] == pytest.approx(3.9927, abs=1e-4)
    assert class_balanced_weights(IF100, 0.0).tolist() == pytest.approx([1.0] * 10)  # beta 0: no re-weighting
    with pytest.raises(UserError, match="no image"):
        class_balanced_weights([10, 0], 0.9)


def test_gce_against_its_definition():
    # (1 - p_y^q) / q with p_y = 3/4, q = 0.5: 2 (1 - sqrt(0.75))
    assert generalized_cross_entropy(Z, Y1, q=0.5).item() == pytest.approx(2 * (1 - math.sqrt(0.75)), rel=1e-6)
    assert generalized_cross_entropy(Z, Y0, q=0.5).item() == pytest.approx(1.0, rel=1e-6)  # 2 (1 - 1/2)
    assert generalized_cross_entropy(Z, Y1, q=1.0).item() == pytest.approx(0.25, rel=1e-6)  # MAE: 1 - p_y
    assert generalized_cross_entropy(Z, Y1, q=1e-4).item() == pytest.approx(-math.log(0.75), rel=1e-3)  # q -> 0: CE
    big = torch.tensor([[100.0, -100.0]])
    assert torch.isfinite(generalized_cross_entropy(big, Y1, q=0.7))


def test_sce_against_its_definition():
    # CE = -ln(3/4); RCE = -(p_0 log 0 + p_1 log 1) with log 0 := A = -4 -> 4 * 1/4
    value = symmetric_cross_entropy(Z, Y1, alpha=0.1, beta=1.0, A=-4.0).item()
    assert value == pytest.approx(0.1 * -math.log(0.75) + 1.0, rel=1e-6)
    # the official code's clamp at 1e-4: A = ln 1e-4
    value = symmetric_cross_entropy(Z, Y0, alpha=1.0, beta=0.5, A=math.log(1e-4)).item()
    assert value == pytest.approx(-math.log(0.25) + 0.5 * 0.75 * -math.log(1e-4), rel=1e-6)


def test_focal_modulator_is_finite_and_right_at_logits_of_100():
    z = torch.tensor([[100.0, -100.0, 100.0, -100.0]], requires_grad=True)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    m = focal_modulator(z, t, gamma=2.0)
    # (1 - p_t)^gamma: right and confident -> ~0; wrong and confident -> 1
    assert m.detach().tolist()[0] == pytest.approx([0.0, 1.0, 1.0, 0.0], abs=1e-30)
    assert torch.isfinite(m).all()
    m.sum().backward()
    assert torch.isfinite(z.grad).all()
    # the official form exp(-g t z - g log1p(exp(-z))) overflows to 0 where the answer is 1
    naive = torch.exp(-2.0 * t * z - 2.0 * torch.log1p(torch.exp(-z)))
    assert naive[0, 1].item() == 0.0
    # against (1 - p_t)^gamma in float64 at moderate logits
    zz = torch.linspace(-6, 6, 13, dtype=torch.float64)[None].repeat(2, 1)
    tt = torch.cat([torch.ones(1, 13), torch.zeros(1, 13)]).double()
    p = torch.sigmoid(zz)
    pt = torch.where(tt == 1, p, 1 - p)
    torch.testing.assert_close(focal_modulator(zz, tt, 1.5), (1 - pt) ** 1.5)


def test_class_balanced_losses_by_hand():
    w = class_balanced_weights([2, 1], beta=0.5)  # (0.5/0.75, 0.5/0.5) = (2/3, 1) -> scaled: (0.8, 1.2)
    assert w.tolist() == pytest.approx([0.8, 1.2])
    w = w.float()
    assert cb_softmax_loss(Z, Y1, w).item() == pytest.approx(1.2 * -math.log(0.75), rel=1e-6)
    zero = torch.zeros(1, 2)
    assert cb_sigmoid_loss(zero, Y0, w).item() == pytest.approx(0.8 * 2 * math.log(2), rel=1e-6)
    # focal at z = 0: p_t = 1/2 -> modulator 0.5^gamma on every term
    assert cb_sigmoid_loss(zero, Y0, w, gamma=2.0).item() == pytest.approx(0.25 * 0.8 * 2 * math.log(2), rel=1e-6)
    # confidently wrong at logits of +-100: both terms keep their full BCE (100 each), finite
    big = torch.tensor([[100.0, -100.0]])
    assert cb_sigmoid_loss(big, Y1, w, gamma=1.0).item() == pytest.approx(1.2 * 200.0, rel=1e-5)
    # confidently right: the modulator takes the loss to ~0
    assert cb_sigmoid_loss(big, Y0, w, gamma=1.0).item() == pytest.approx(0.0, abs=1e-30)


def test_categorical_space_builds_each_loss_and_checks_options():
    soft = torch.softmax(torch.randn(4, 10, generator=torch.Generator().manual_seed(0)), 1)
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(1))
    gce = create_label_space("categorical", CLASSES, loss="gce", loss_options={"q": 0.5})
    assert gce.loss(z, soft).item() == pytest.approx(generalized_cross_entropy(z, soft, 0.5).item())
    sce = create_label_space("smoothed", CLASSES, alpha=0.1, loss="sce")
    assert sce.loss(z, soft).item() == pytest.approx(symmetric_cross_entropy(z, soft).item())
    ce = create_label_space("categorical", CLASSES)
    assert ce.loss(z, soft).item() == pytest.approx(-(soft * F.log_softmax(z, 1)).sum(1).mean().item(), rel=1e-6)
    # class-balanced losses take the training split's counts from the context
    focal = create_label_space("categorical", CLASSES, context={"train_class_counts": IF100}, loss="cb_focal")
    assert focal.head(8).bias.tolist() == pytest.approx([-math.log(9)] * 10)  # their sigmoid-head start
    assert focal.describe()["loss"] == "cb_focal"
    softmax = create_label_space("categorical", CLASSES, context={"train_class_counts": IF100}, loss="cb_softmax",
                                 loss_options={"beta": 0.0})
    assert softmax.loss(z, soft).item() == pytest.approx(ce.loss(z, soft).item(), rel=1e-6)  # beta 0 = plain CE
    assert create_label_space("categorical", CLASSES).head(8).bias.abs().max() < 1  # default init untouched
    with pytest.raises(UserError, match="class counts"):
        create_label_space("categorical", CLASSES, loss="cb_softmax")
    with pytest.raises(UserError, match="unknown option"):
        create_label_space("categorical", CLASSES, loss="gce", loss_options={"beta": 0.5})
    with pytest.raises(UserError, match="must be one of"):
        create_label_space("categorical", CLASSES, loss="mae")
