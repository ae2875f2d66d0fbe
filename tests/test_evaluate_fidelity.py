"""Fidelity of the robustness protocols: the strong one against the reference AutoAttack on a
regressed-label model, the paper's eps units, and the authors' unclamped attack (paper_exact)."""
from __future__ import annotations

import functools

import pytest
import torch

from labelrep.evaluate.attacks import BIM, FGSM, NormalisedModel, PixelModel, paper_eps
from labelrep.evaluate.robustness import objective, reference_autoattack, robust_accuracy, robustness, zero_gradient


@functools.lru_cache(maxsize=None)
def speech_digits():
    """A regressed-label model: speech spectrograms (espeak) on the digits, 5 epochs (~92 % clean), trained
    with the paper's recipe (Huber alone), whose minus-distance scores saturate a float32 CE."""
    from labelrep.train import train

    return train({"data": {"dataset": "digits"}, "label": {"name": "speech", "options": {"recipe": "paper"}},
                  "model": {"name": "fastnet", "options": {"widths": [16, 32, 64]}},
                  "optim": {"batch_size": 32}, "train": {"epochs": 5, "device": "cpu", "seed": 0}})


def _images(n: int):
    parts = speech_digits().parts
    return parts, torch.as_tensor(parts.data.test.images[:n]), torch.as_tensor(parts.data.test.labels[:n])


def test_strong_protocol_is_no_weaker_than_the_reference_autoattack_nor_the_paper_protocol(one_torch_thread):
    pytest.importorskip("pyautoattack")
    parts, x, y = _images(32)  # few images: AutoAttack's Square costs 5,000 forward passes whatever the count
    eps = [8.0, 16.0]
    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, x, y, protocols=["paper", "strong"],
                           attacks={"paper": ["fgsm", "bim"], "strong": ["fgsm"]}, eps=eps, autoattack="standard")
    acc = {(r["metric"], r["protocol"], r.get("attack"), r["loss"], r.get("eps")): r["value"] for r in rows}
    assert acc[("adversarial_accuracy", "strong", "none", "none", 0.0)] > 0.75

    # the reference: fra31's AutoAttack, standard version, run on its own on the label space's scores
    for e in eps:
        reference = reference_autoattack(parts.model, parts.label_space, parts.normalize, x, y, e)
        strong = acc[("adversarial_accuracy", "strong", "worst", "any", e)]
        paper = acc[("adversarial_accuracy", "paper", "worst", "any", e)]
        assert strong <= reference + 0.005, (e, strong, reference)
        assert strong <= paper
        assert acc[("paper_minus_strong", "paper-strong", "worst", "any", e)] == pytest.approx(paper - strong)
        assert 0.0 <= acc[("blackbox_beats_whitebox", "strong", "square", "margin", e)] <= 1.0
        every = [v for k, v in acc.items() if k[0] == "adversarial_accuracy" and k[4] == e]
        assert strong == min(every)  # the worst case is the minimum over everything run
    assert reference < acc[("adversarial_accuracy", "strong", "none", "none", 0.0)] - 0.1  # the attacks bite
    # no gradient masking left in the strong losses, and the masking a stock CE meets is flagged
    zero = {r["loss"]: r["value"] for r in rows if r["metric"] == "zero_grad_fraction"}
    assert zero["ce"] == zero["margin"] == zero["dlr"] == 0.0
    assert zero["ce_raw"] > 0.1
    large = [r["value"] for r in rows if r["metric"] == "large_eps_accuracy"]
    assert large == [pytest.approx(0.0, abs=0.05)]


def test_non_saturating_cross_entropy_moves_where_float32_cross_entropy_is_exactly_flat(one_torch_thread):
    parts, x, y = _images(200)
    pixel = PixelModel(parts.model, parts.normalize).eval()
    x01 = x.float() / 255
    raw = zero_gradient(pixel, objective(parts.label_space, "ce_raw"), x01, y)
    fixed = zero_gradient(pixel, objective(parts.label_space, "ce"), x01, y)
    assert raw.float().mean() > 0.1 and not fixed.any()
    # where float32 CE has a gradient, both point the same way (per image, one positive factor apart)
    has = ~raw

    def grads(loss):
        xb = x01[has].clone().requires_grad_(True)
        g = torch.autograd.grad(objective(parts.label_space, loss)(pixel(xb), y[has]), xb)[0].flatten(1).double()
        return g / g.norm(dim=1, keepdim=True)  # float32 CE's gradients are as small as 1e-30: no eps here

    cos = (grads("ce_raw") * grads("ce")).sum(1)
    assert cos.median() > 0.99 and (cos > 0.9).double().mean() > 0.9  # float32 CE loses digits as it saturates


def test_paper_eps_uses_the_authors_cifar_std(one_torch_thread, cifar_tiny):
    from labelrep.train import train

    run = train({"data": {"dataset": "cifar10", "data_dir": str(cifar_tiny)},
                 "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
                 "train": {"epochs": 1, "device": "cpu", "seed": 0}})
    rows = robustness(run, protocols=["paper"], attacks=["fgsm"], paper_eps=[0.3], max_images=8, flags=False)
    row = next(r for r in rows if r.get("paper_eps") == 0.3)
    assert [round(float(c), 1) for c in row["eps_channels"].split("/")] == [15.5, 15.3, 15.4]  # per channel, /255
    assert row["eps"] == pytest.approx(0.3 * (0.2023 + 0.1994 + 0.2010) / 3 * 255)
    assert torch.allclose(paper_eps(0.3) * 255, torch.tensor([15.4755, 15.2541, 15.3765]), atol=1e-3)


def test_paper_exact_is_the_authors_code_unclamped_and_unzeroed(one_torch_thread):
    """The authors' FGSM clamps to the image's own [min, max] (batch 1); their iterative attack never
    clamps to the image range and steps along the running sum of the gradients."""
    parts, x, y = _images(64)
    pixel = PixelModel(parts.model, parts.normalize).eval()
    z = x.float() / 255 * 4 - 2  # some normalised space, values well inside and at its edges
    fn = objective(parts.label_space, "train")
    net = NormalisedModel(pixel, [0.5], [0.25]).eval()
    adv = FGSM(0.3, loss=fn, clamp="own")(net, z, y)
    flat, flat_adv = z.flatten(1), adv.flatten(1)
    assert bool((flat_adv >= flat.amin(1, keepdim=True) - 1e-6).all() and (flat_adv <= flat.amax(1, keepdim=True) + 1e-6).all())
    unclamped = BIM(0.3, steps=5, loss=fn, clamp=None, accumulate=True)(net, z, y)
    assert (unclamped - z).abs().max() <= 0.3 + 1e-6
    assert bool((unclamped < z.flatten(1).amin(1).view(-1, 1, 1, 1) - 1e-3).any())  # it left the image's range
    # the running sum by hand: step k uses sign(g_0 + ... + g_k)
    adv_hand, total = z.clone(), torch.zeros_like(z)
    for _ in range(5):
        xb = adv_hand.clone().requires_grad_(True)
        total = total + torch.autograd.grad(fn(net(xb), y), xb)[0]
        adv_hand = z + (adv_hand + 0.06 * total.sign() - z).clamp(-0.3, 0.3)
    assert torch.allclose(unclamped, adv_hand, atol=1e-5)

    rows = robust_accuracy(parts.model, parts.label_space, parts.normalize, x, y, protocols=["paper", "paper_exact"],
                           attacks=["fgsm", "bim", "pgd"], eps=[16], flags=False)
    exact = {r["attack"] for r in rows if r["protocol"] == "paper_exact"}
    assert exact == {"none", "fgsm", "bim", "worst"}  # the authors' two attacks only
