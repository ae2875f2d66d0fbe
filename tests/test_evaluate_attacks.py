"""Attacks: exact FGSM steps, projection, the paper protocol's bookkeeping, PGD vs FGSM, torchattacks parity,
the strong losses where cross-entropy saturates, AutoAttack on scores."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labelrep.errors import UserError
from labelrep.evaluate.attacks import BIM, FGSM, PGD, PixelModel, dlr, margin, paper_eps, project
from labelrep.evaluate.robustness import objective, robust_accuracy, survivors

from evaluate_helpers import digits_result


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(5, 48))
        model[1].bias.copy_(torch.randn(5))
    return model.eval()


def test_fgsm_moves_every_pixel_by_eps_in_the_sign_of_the_gradient():
    model = linear_model()
    x = 0.25 + 0.5 * torch.rand(6, 3, 4, 4)  # away from 0 and 1: no clipping
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 8 / 255
    adv = FGSM(eps)(model, x, y)
    # The gradient of mean cross-entropy of a linear model, by hand: W^T (softmax - onehot) / B.
    w, b = model[1].weight, model[1].bias
    p = torch.softmax(x.flatten(1) @ w.T + b, 1)
    grad = ((p - F.one_hot(y, 5)) @ w / len(y)).view_as(x)
    step = adv - x
    assert torch.allclose(step.abs(), torch.full_like(step, eps), atol=1e-6)
    assert torch.equal(step.sign(), grad.sign())
    # and it raises the loss, as it should
    assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_fgsm_rejects_uint8_and_negative_budgets():
    with pytest.raises(UserError):
        FGSM(-0.1)
    with pytest.raises(UserError):
        FGSM(0.1)(linear_model(), torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.tensor([0]))


def test_projection_keeps_the_eps_ball_and_the_pixel_range():
    torch.manual_seed(1)
    x = torch.rand(8, 3, 4, 4)
    x[0] = 0.0
    x[1] = 1.0
    far = x + 3 * torch.randn_like(x)
    eps = 4 / 255
    p = project(far, x, eps)
    assert (p - x).abs().max() <= eps + 1e-7
    assert p.min() >= 0 and p.max() <= 1
    # a per-channel budget (the paper's normalised units) bounds each channel separately
    e = paper_eps(0.1, std=(0.1, 0.2, 0.3))
    p = project(far, x, e)
    for c in range(3):
        assert (p[:, c] - x[:, c]).abs().max() <= e[c] + 1e-7
        assert (p[:, c] - x[:, c]).abs().max() >= e[c] - 1e-6  # the far points reach the boundary
    # the iterative attacks end inside both, from inside and at the edges of [0, 1]
    model, y = linear_model(), torch.arange(8) % 5
    for attack in (BIM(eps, steps=5), PGD(eps, steps=5, restarts=2, generator=torch.Generator().manual_seed(0))):
        adv = attack(model, x, y)
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
        assert (adv - x).abs().max() > eps / 2  # it did move


def test_paper_protocol_counts_misclassified_images_as_wrong_without_attacking_them():
    model = linear_model(2)
    x = torch.rand(40, 3, 4, 4)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred.clone()
    y[::3] = (pred[::3] + 1) % 5  # every third image is misclassified
    correct = pred == y
    seen = []

    def spy(m, images, labels):  # an "attack" that records what it is given and changes nothing
        seen.append(images.clone())
        return images

    alive = survivors(model, spy, x, y, correct, lambda out: out.argmax(1), batch_size=7)
    attacked = torch.cat(seen)
    assert len(attacked) == int(correct.sum()) == 26
    assert torch.equal(attacked, x[correct])
    assert torch.equal(alive, correct)  # the wrong ones stay wrong, untouched ones survive

    # through the whole protocol: at a tiny eps nothing changes, clean accuracy counts the wrong ones
    from labelrep.data.loader import Normalize
    from labelrep.labels.categorical import categorical

    rows = robust_accuracy(model, categorical(list("abcde")), Normalize([0.0] * 3, [1.0] * 3),
                           x, y, protocols=["paper"], attacks=["fgsm"], eps=[1e-6])
    clean = [r["value"] for r in rows if r["attack"] == "none"][0]
    attacked_acc = [r["value"] for r in rows if r["attack"] == "fgsm"][0]
    assert clean == pytest.approx(26 / 40)
    assert attacked_acc == pytest.approx(26 / 40)


def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_model():
    parts = digits_result().parts
    test = parts.data.test
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images[:200]),
                           torch.as_tensor(test.labels[:200]), protocols=["paper", "strong"],
                           attacks=["fgsm", "pgd"], eps=[24], steps=10, autoattack=None, flags=False)
    acc = {(r["protocol"], r["attack"], r["loss"]): r["value"] for r in rows}
    assert acc[("paper", "none", "none")] > 0.9
    assert acc[("paper", "fgsm", "train")] < acc[("paper", "none", "none")] - 0.1  # the attack bites
    assert acc[("paper", "pgd", "train")] <= acc[("paper", "fgsm", "train")]
    assert acc[("strong", "pgd", "ce")] <= acc[("strong", "fgsm", "ce")]
    assert acc[("strong", "worst", "any")] <= min(acc[("strong", "pgd", "ce")], acc[("strong", "pgd", "margin")],
                                                  acc[("strong", "pgd", "dlr")], acc[("paper", "worst", "any")])


def test_robust_accuracy_leaves_the_network_and_its_batch_norm_statistics_untouched():
    # It once did not: an attack restored the mode of its fresh PixelModel wrapper (training), so
    # batch norm ran on batch statistics and its running averages drifted under every later forward.
    parts = digits_result().parts
    before = {k: v.clone() for k, v in parts.model.state_dict().items()}
    test = parts.data.test
    robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images[:64]),
                    torch.as_tensor(test.labels[:64]), protocols=["paper", "strong"], attacks=["fgsm", "pgd"],
                    eps=[8], steps=2, restarts=2, autoattack="apgd")
    after = parts.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(m.training for m in parts.model.modules())


def test_an_attack_gives_each_submodule_its_own_mode_back():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(5))
    net(torch.rand(2, 3, 4, 4))
    net.eval()
    net[3].train()  # a mixed state, to see that each module gets its own flag back
    wrapper = nn.Sequential(net)  # fresh, so in training mode
    stats = net[1].running_mean.clone()
    seen = []
    net[1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    PGD(8 / 255, steps=2)(wrapper, torch.rand(6, 3, 4, 4), torch.randint(0, 5, (6,)))
    assert seen and not any(seen)  # batch norm ran in eval mode during the attack
    assert torch.equal(net[1].running_mean, stats)
    assert [m.training for m in wrapper.modules()] == [True, False, False, False, False, True]


def test_margin_loss_is_positive_exactly_when_misclassified():
    s = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0]])
    y = torch.tensor([0, 1])
    assert margin(s[:1], y[:1]).item() == pytest.approx(-2.0)
    assert margin(s[1:], y[1:]).item() == pytest.approx(3.0)


def test_matches_torchattacks_on_a_categorical_model():
    torchattacks = pytest.importorskip("torchattacks")
    parts = digits_result().parts
    model = PixelModel(parts.model, parts.normalize)
    model.train()  # both must switch to eval for the attack and give the mode back
    x = torch.as_tensor(parts.data.test.images[:64]).float() / 255
    y = torch.as_tensor(parts.data.test.labels[:64])
    eps = 16 / 255
    ours = FGSM(eps)(model, x, y)
    theirs = torchattacks.FGSM(model, eps=eps)(x, y)
    assert model.training
    assert (ours - x).abs().max() > 0
    assert torch.allclose(ours, theirs, atol=1e-6)
    ours = PGD(eps, steps=5, alpha=4 / 255, random_start=False)(model, x, y)
    theirs = torchattacks.PGD(model, eps=eps, alpha=4 / 255, steps=5, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    ours = BIM(eps, steps=4)(model, x, y)
    theirs = torchattacks.BIM(model, eps=eps, alpha=eps / 4, steps=4)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    model.eval()


def test_strong_losses_attack_where_cross_entropy_on_minus_distances_saturates():
    """Minus-distances to far-apart labels make softmax(scores) one-hot in float32, so the plain CE gradient is
    exactly zero and a CE attack cannot move; the strong protocol's losses (non-saturating CE, margin, DLR)
    still have a gradient, and the masking flag counts the images plain CE cannot move."""
    from labelrep.data.loader import Normalize
    from labelrep.labels.regression import RegressionLabelSpace

    space = RegressionLabelSpace(list("abc"), 1000 * torch.eye(3))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with torch.no_grad():
        model[1].weight.copy_(100 * torch.randn(3, 48))
        model[1].bias.zero_()
    x = torch.rand(256, 3, 4, 4)
    with torch.no_grad():
        top2 = space.scores(model(x)).topk(2, 1)
    keep = top2.values[:, 0] - top2.values[:, 1] > 150  # exp(-150) is 0 in float32
    x, y = x[keep], top2.indices[keep, 0]  # every image correct by construction
    assert len(x) > 50
    norm = Normalize([0.0] * 3, [1.0] * 3)
    raw = FGSM(64 / 255, loss=objective(space, "ce_raw"))(PixelModel(model, norm), x, y)
    assert torch.equal(raw, x)  # not a single pixel moved: zero gradient
    rows = robust_accuracy(model, space, norm, x, y, protocols=["strong"], attacks=["fgsm"], eps=[64],
                           autoattack=None)
    acc = {r["loss"]: r["value"] for r in rows if r["metric"] == "adversarial_accuracy"}
    assert acc["none"] == 1.0
    assert acc["ce"] < 0.5 and acc["margin"] < 0.5 and acc["dlr"] < 0.5
    assert acc["any"] == min(acc["ce"], acc["margin"], acc["dlr"])
    zero = {r["loss"]: r["value"] for r in rows if r["metric"] == "zero_grad_fraction"}
    assert zero["ce_raw"] == 1.0 and zero["ce"] == zero["margin"] == zero["dlr"] == 0.0


def test_dlr_is_margin_over_the_spread_of_the_top_scores():
    s = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 5.0, 1.0]])
    y = torch.tensor([0, 1])
    assert dlr(s[:1], y[:1]).item() == pytest.approx((1.0 - 3.0) / (3.0 - 0.0))
    assert dlr(s[1:], y[1:]).item() == pytest.approx((5.0 - 2.0) / (5.0 - 1.0))
    assert dlr(10 * s + 4, y).item() == pytest.approx(dlr(s, y).item(), rel=1e-5)  # shift and scale free


def test_autoattack_wrapper_treats_scores_as_logits():
    pytest.importorskip("pyautoattack")
    parts = digits_result().parts
    test = parts.data.test
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, torch.as_tensor(test.images[:48]),
                           torch.as_tensor(test.labels[:48]), protocols=["strong"], attacks=["fgsm"], eps=[24],
                           autoattack="apgd", flags=False)
    acc = {r["attack"]: r["value"] for r in rows}
    assert acc["autoattack-apgd"] < acc["none"] - 0.1
    assert acc["worst"] <= min(acc["autoattack-apgd"], acc["fgsm"])


def test_pgd_restarts_only_help_and_keep_the_ball():
    parts = digits_result().parts
    model = PixelModel(parts.model, parts.normalize)
    x = torch.as_tensor(parts.data.test.images[:120]).float() / 255
    y = torch.as_tensor(parts.data.test.labels[:120])
    eps = 12 / 255
    one = PGD(eps, steps=5, generator=torch.Generator().manual_seed(0))(model, x, y)
    three = PGD(eps, steps=5, restarts=3, generator=torch.Generator().manual_seed(0))(model, x, y)
    with torch.no_grad():
        wrong_one = model(one).argmax(1) != y
        wrong_three = model(three).argmax(1) != y
    # the first restart draws the same start, so whatever it fooled stays fooled; later ones add to it
    assert bool((wrong_three | ~wrong_one).all())
    assert int(wrong_three.sum()) >= int(wrong_one.sum())
    assert (three - x).abs().max() <= eps + 1e-6 and three.min() >= 0 and three.max() <= 1
