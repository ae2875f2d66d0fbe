"""Mixing formulas (BC, BC+, single-label BC, mixup, CutMix) on hand-computed examples, and the KL loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from labelrep.data.mixing import (MIXERS, CenteredEncoder, bc_mix, bc_plus_mix, bc_plus_ratio, center,
                                  create_mixer, different_class_partners, mix_targets, prepare_model)
from labelrep.errors import UserError
from labelrep.labels import LabelSpace, create_label_space
from labelrep.labels.categorical import kl_divergence
from labelrep.models import create_model

CLASSES = [str(i) for i in range(10)]


def onehot_space(**options):
    return create_label_space("categorical", CLASSES, **options)


def seeded(mixer, seed=0):
    mixer.set_generator(torch.Generator().manual_seed(seed))
    return mixer


def test_registry_names():
    assert {"bc", "bc_plus", "bc_single", "mixup", "cutmix"} <= set(MIXERS.names())
    assert create_mixer(None, onehot_space()) is None and create_mixer("none", onehot_space()) is None
    with pytest.raises(UserError, match="unknown mixer"):
        create_mixer("bcc", onehot_space())


# --- BC ------------------------------------------------------------------------------------------

def test_bc_mix_and_targets_hand_computed():
    x1 = torch.tensor([[2.0, -4.0], [1.0, 1.0]]).view(2, 1, 1, 2)
    x2 = torch.tensor([[6.0, 0.0], [3.0, -1.0]]).view(2, 1, 1, 2)
    r = torch.tensor([0.25, 0.5])
    # 0.25*[2,-4] + 0.75*[6,0] = [5, -1];  0.5*[1,1] + 0.5*[3,-1] = [2, 0]
    assert torch.allclose(bc_mix(x1, x2, r).view(2, 2), torch.tensor([[5.0, -1.0], [2.0, 0.0]]))
    t = torch.eye(3)
    mixed = mix_targets(t[[0, 2]], t[[1, 0]], r)
    assert torch.allclose(mixed, torch.tensor([[0.25, 0.75, 0.0], [0.5, 0.0, 0.5]]))


def test_partners_hand_computed_and_never_same_class():
    y = torch.tensor([0, 0, 1, 2])
    u = torch.tensor([0.0, 0.99, 0.5, 0.6])
    # row 0: partners {2, 3}, k = floor(0 * 2) = 0 -> 2;  row 1: k = floor(1.98) = 1 -> 3
    # row 2: partners {0, 1, 3}, k = floor(1.5) = 1 -> 1;  row 3: partners {0, 1, 2}, k = floor(1.8) = 1 -> 1
    assert different_class_partners(y, u).tolist() == [2, 3, 1, 1]
    # a class that fills the batch has no partner: paired with itself
    assert different_class_partners(torch.tensor([4, 4, 4]), torch.rand(3)).tolist() == [0, 1, 2]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = torch.randint(0, 3, (64,), generator=g)
        p = different_class_partners(y, torch.rand(64, generator=g))
        assert not bool((y[p] == y).any())


def test_partners_are_uniform_over_other_classes():
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(6, 6)
    n = 3000
    for _ in range(n):
        counts[torch.arange(6), different_class_partners(y, torch.rand(6, generator=g))] += 1
    freq = counts / n
    # row 0 (class 0) has 4 valid partners (1/4 each), row 2 has 5 (1/5), row 3 has 3 (1/3)
    assert torch.allclose(freq[0, 2:], torch.full((4,), 0.25), atol=0.04)
    assert torch.allclose(freq[2, [0, 1, 3, 4, 5]], torch.full((5,), 0.2), atol=0.04)
    assert torch.allclose(freq[3, :3], torch.full((3,), 1 / 3), atol=0.04)
    assert freq[0, :2].sum() == 0 and freq[3, 3:].sum() == 0


def test_bc_mixer_matches_its_draw_and_repeats():
    space = onehot_space()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, 4, 4, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=g)
    mixer = seeded(create_mixer("bc", space), 7)
    image, target = mixer(x, space.targets(y), y)
    partner, r = seeded(create_mixer("bc", space), 7).draw(y)
    assert not bool((y[partner] == y).any())
    assert bool(((r >= 0) & (r < 1)).all()) and r.std() > 0.1
    assert torch.allclose(image, bc_mix(x, x[partner], r))
    assert torch.allclose(target[torch.arange(32), y], r)  # the first image's share is r
    assert torch.allclose(target[torch.arange(32), y[partner]], 1 - r)
    assert torch.allclose(target.sum(1), torch.ones(32))
    assert image.is_contiguous(memory_format=torch.channels_last)
    again, _ = seeded(create_mixer("bc", space), 7)(x, space.targets(y), y)
    other, _ = seeded(create_mixer("bc", space), 8)(x, space.targets(y), y)
    assert torch.equal(image, again) and not torch.allclose(image, other)


# --- BC+ -----------------------------------------------------------------------------------------

def test_bc_plus_hand_computed():
    # x1 = [3, 1]: mean 2, centred [1, -1], g1 = 1;  x2 = [0, 4]: mean 2, centred [-2, 2], g2 = 2
    x1 = torch.tensor([3.0, 1.0]).view(1, 1, 1, 2)
    x2 = torch.tensor([0.0, 4.0]).view(1, 1, 1, 2)
    # r = 0.25: p = 1 / (1 + (1/2) * 0.75/0.25) = 0.4
    assert torch.allclose(bc_plus_ratio(torch.tensor([0.25]), torch.tensor([1.0]), torch.tensor([2.0])),
                          torch.tensor([0.4]))
    # (0.4 * [1, -1] + 0.6 * [-2, 2]) / sqrt(0.16 + 0.36) = [-0.8, 0.8] / sqrt(0.52)
    expected = torch.tensor([-0.8, 0.8]) / math.sqrt(0.52)
    assert torch.allclose(bc_plus_mix(x1, x2, torch.tensor([0.25])).view(2), expected, atol=1e-6)
    # r = 0.5: p = 1 / (1 + 1/2) = 2/3 -> (2/3 [1,-1] + 1/3 [-2,2]) / sqrt(5/9) = 0
    assert torch.allclose(bc_plus_mix(x1, x2, torch.tensor([0.5])), torch.zeros(1, 1, 1, 2), atol=1e-6)
    # the mean over C x H x W goes, whatever the channel
    z = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 2, 1, 2)
    assert torch.allclose(center(z).view(4), torch.tensor([-3.0, -1.0, 1.0, 3.0]))


def test_bc_plus_ratio_agrees_with_official_formula_and_guards_edges():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(1000, generator=g).clamp(1e-3, 1 - 1e-3)
    g1, g2 = torch.rand(1000, generator=g) + 0.1, torch.rand(1000, generator=g) + 0.1
    assert torch.allclose(bc_plus_ratio(r, g1, g2), 1 / (1 + g1 / g2 * (1 - r) / r), atol=1e-6)
    one, zero = torch.tensor([1.0]), torch.tensor([0.0])
    half = torch.tensor([0.5])
    assert bc_plus_ratio(zero, one, one).item() == 0.0      # r = 0: all x2
    assert bc_plus_ratio(one, one, one).item() == 1.0       # r = 1: all x1
    assert bc_plus_ratio(half, zero, one).item() == 1.0     # g1 = 0: the official limit g1/g2 -> 0
    assert bc_plus_ratio(half, one, zero).item() == 0.0     # g2 = 0: g1/g2 -> inf
    assert bc_plus_ratio(half * 0.6, zero, zero).item() == pytest.approx(0.3)  # both constant: p = r
    assert bc_plus_ratio(zero, zero, one).item() == 0.0 and bc_plus_ratio(one, one, zero).item() == 1.0
    # constant images and r at both ends: finite images
    const = torch.full((4, 3, 2, 2), 5.0)
    noisy = torch.randn(4, 3, 2, 2, generator=g)
    r4 = torch.tensor([0.0, 1.0, 0.5, 0.0])
    for a, b in ((const, const), (const, noisy), (noisy, const), (noisy, noisy)):
        out = bc_plus_mix(a, b, r4)
        assert bool(torch.isfinite(out).all())


def test_bc_plus_mixer_centres_and_keeps_energy():
    space = onehot_space()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(64, 3, 4, 4, generator=g) * 2 + 1
    y = torch.randint(0, 10, (64,), generator=g)
    image, target = seeded(create_mixer("bc_plus", space), 3)(x, space.targets(y), y)
    partner, r = seeded(create_mixer("bc_plus", space), 3).draw(y)
    assert torch.allclose(image, bc_plus_mix(x, x[partner], r), atol=1e-6)
    assert torch.allclose(target, mix_targets(torch.eye(10)[y], torch.eye(10)[y[partner]], r))  # target uses r
    assert image.mean(dim=(1, 2, 3)).abs().max() < 1e-5
    # BC's plain mix loses energy (std shrinks); BC+'s division by sqrt(p^2 + (1-p)^2) keeps it
    bc_image, _ = seeded(create_mixer("bc", space), 3)(center(x), space.targets(y), y)
    assert image.std() > 1.1 * bc_image.std()


# --- single-label BC, mixup, CutMix --------------------------------------------------------------

def test_bc_single_label_hand_computed():
    x1 = torch.tensor([4.0, 0.0]).view(1, 1, 1, 2)
    x2 = torch.tensor([0.0, 8.0]).view(1, 1, 1, 2)
    # r = 0.75: 0.75 * [4, 0] + 0.25 * [0, 8] = [3, 2]; the target is x1's class alone
    assert torch.allclose(bc_mix(x1, x2, torch.tensor([0.75])).view(2), torch.tensor([3.0, 2.0]))
    space = onehot_space()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 1, 3, 3, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    image, target = seeded(create_mixer("bc_single", space), 5)(x, space.targets(y), y)
    partner, r = seeded(create_mixer("bc_single", space), 5).draw(y)
    assert bool(((r >= 0.5) & (r < 1)).all())
    assert torch.equal(target, torch.eye(10)[y])
    assert torch.allclose(image, bc_mix(x, x[partner], r))


def test_mixup_and_cutmix():
    space = onehot_space()
    g = torch.Generator().manual_seed(6)
    x = torch.randn(8, 3, 8, 8, generator=g)
    y = torch.arange(8)  # y differs from y.flip(0) everywhere, so lam can be read off the target
    image, target = seeded(create_mixer("mixup", space, alpha=0.4))(x, space.targets(y), y)
    lam = target[0, 0]
    assert 0 < lam < 1 and torch.allclose(target[torch.arange(8), y], lam.expand(8))
    assert torch.allclose(image, lam * x + (1 - lam) * x.flip(0), atol=1e-6)
    image, target = seeded(create_mixer("mixup", space, mode="elem"))(x, space.targets(y), y)
    lams = target[torch.arange(8), y]
    assert lams.std() > 0 and torch.allclose(image, bc_mix(x, x.flip(0), lams), atol=1e-6)

    mixer = seeded(create_mixer("cutmix", space, alpha=1.0), 9)
    image, target = mixer(x, space.targets(y), y)
    lam = target[0, 0].item()
    pasted = (image != x).all(dim=1)  # [B, H, W]: pixels taken from the reversed batch
    assert pasted.float().mean().item() == pytest.approx(1 - lam)
    assert torch.equal(image[pasted.unsqueeze(1).expand_as(x)], x.flip(0)[pasted.unsqueeze(1).expand_as(x)])
    assert torch.allclose(target.sum(1), torch.ones(8))
    for name in ("mixup", "cutmix"):
        with pytest.raises(UserError, match="alpha"):
            create_mixer(name, space, alpha=0)


def test_mixing_any_label_space_shape():
    """A label space with 2-D rows (like a spectrogram): the target mixes the rows with the same r."""
    g = torch.Generator().manual_seed(7)
    space = LabelSpace(CLASSES, torch.randn(10, 4, 6, generator=g))
    x = torch.randn(16, 3, 4, 4, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    for name in ("bc", "bc_plus", "mixup"):
        image, target = seeded(create_mixer(name, space), 1)(x, space.targets(y), y)
        assert target.shape == (16, 4, 6)
        if name != "mixup":
            partner, r = seeded(create_mixer(name, space), 1).draw(y)
            expected = r.view(-1, 1, 1) * space.table[y] + (1 - r.view(-1, 1, 1)) * space.table[y[partner]]
            assert torch.allclose(target, expected, atol=1e-6)
    _, target = seeded(create_mixer("bc_single", space), 1)(x, space.targets(y), y)
    assert torch.equal(target, space.table[y])


# --- the KL loss ---------------------------------------------------------------------------------

def test_kl_divergence_hand_computed():
    z = torch.zeros(2, 2)
    # KL([1, 0] || [1/2, 1/2]) = log 2;  KL([1/2, 1/2] || [1/2, 1/2]) = 0;  batch mean = log(2) / 2
    assert kl_divergence(z, torch.tensor([[1.0, 0.0], [0.5, 0.5]])).item() == pytest.approx(math.log(2) / 2)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 10, generator=g)
    t = torch.softmax(torch.randn(16, 10, generator=g), 1)
    assert kl_divergence(logits, t).item() == pytest.approx(
        F.kl_div(F.log_softmax(logits, 1), t, reduction="batchmean").item(), rel=1e-5)
    assert kl_divergence(logits, torch.softmax(logits, 1)).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_divergence_finite_with_zeros_and_extreme_logits():
    t = torch.zeros(4, 10)
    t[0, 3] = 1.0                      # one-hot: nine zeros
    t[1, 2], t[1, 7] = 0.3, 0.7        # a BC target
    t[2, 0] = 1.0
    t[3, 9], t[3, 1] = 1e-30, 1 - 1e-30
    logits = torch.tensor([[1e4] + [-1e4] * 9, [-1e30] * 5 + [1e30] * 5, [0.0] * 10, [5e3, -5e3] * 5],
                          requires_grad=True)
    loss = kl_divergence(logits, t)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 0
    assert bool(torch.isfinite(logits.grad).all())
    # the naive formula this replaces gives NaN here (0 * log 0 and log of an underflowed softmax)
    naive = (t * (torch.log(t) - torch.log(torch.softmax(logits.detach(), 1)))).sum(1).mean()
    assert not math.isfinite(naive.item())


def test_kl_has_the_soft_cross_entropy_gradient():
    g = torch.Generator().manual_seed(1)
    t = torch.softmax(torch.randn(8, 10, generator=g) * 3, 1)
    t[:, :3] = 0
    t = t / t.sum(1, keepdim=True)
    a = torch.randn(8, 10, generator=g, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    kl_divergence(a, t).backward()
    F.cross_entropy(b, t).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_categorical_loss_option():
    t = torch.tensor([[0.2, 0.8] + [0.0] * 8])
    z = torch.randn(1, 10)
    ce, kl = onehot_space(), onehot_space(loss="kl")
    assert ce.loss(z, t).item() == pytest.approx(F.cross_entropy(z, t).item())  # default unchanged
    assert kl.loss(z, t).item() == pytest.approx(kl_divergence(z, t).item())
    entropy = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert ce.loss(z, t).item() - kl.loss(z, t).item() == pytest.approx(entropy, rel=1e-5)
    smoothed = create_label_space("smoothed", CLASSES, alpha=0.1, loss="kl")
    assert smoothed.loss(z, smoothed.targets(torch.tensor([1]))).item() == pytest.approx(
        kl_divergence(z, smoothed.table[[1]]).item())
    with pytest.raises(UserError, match="loss"):
        onehot_space(loss="mse")


# --- BC+ at test time ----------------------------------------------------------------------------

def test_prepare_model_centres_inputs_for_bc_plus_only():
    space = onehot_space()
    torch.manual_seed(0)
    plain = create_model("fastnet", space, 3, 8)
    assert prepare_model(plain, {"name": "bc", "options": {}}).encoder is plain.encoder
    assert prepare_model(plain, {"name": None, "options": {}}).encoder is plain.encoder
    model = prepare_model(create_model("fastnet", space, 3, 8), {"name": "bc_plus", "options": {}})
    assert isinstance(model.encoder, CenteredEncoder)
    single_plus = prepare_model(create_model("fastnet", space, 3, 8), {"name": "bc_single", "options": {"plus": True}})
    assert isinstance(single_plus.encoder, CenteredEncoder)
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():  # a shift of the whole image no longer changes the output
        assert torch.allclose(model(x), model(x + 3.0), atol=1e-4)
        assert not torch.allclose(model.encoder.encoder(x), model.encoder.encoder(x + 3.0), atol=1e-4)


# --- the side-by-side study files ----------------------------------------------------------------

def test_bc_study_files_expand_to_the_five_methods():
    from pathlib import Path

    from labelrep.study.spec import load_study

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("bc-cifar10*.yaml"))
    assert len(configs) >= 2
    for path in configs:
        study = load_study(path)
        methods = {run.cell["method"] for run in study.runs}
        assert methods == {"standard", "bc", "bc_plus", "bc_single", "mixup"}
        assert len(study.runs) == 5 * len(study.seeds) and len(study.seeds) >= 2
        encoders = {run.config["model"]["name"] for run in study.runs}
        assert len(encoders) == 1  # same encoder, budget and seeds for every method
        for run in study.runs:
            cfg = run.config
            space = create_label_space(cfg["label"]["name"], CLASSES, **cfg["label"]["options"])
            mixer = create_mixer(cfg["mix"]["name"], space, **cfg["mix"]["options"])
            assert (mixer is None) == (run.cell["method"] == "standard")
            kl = cfg["label"]["options"].get("loss") == "kl"
            assert kl == (run.cell["method"] in ("bc", "bc_plus", "mixup"))
