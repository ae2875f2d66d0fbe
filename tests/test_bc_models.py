"""The BC paper's CIFAR encoders: the official 11-layer ConvNet and Shake-Shake-26."""
from __future__ import annotations

import pytest
import torch

from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.models import create_encoder, create_model, list_encoders
from labelrep.models.bc import shake

SPACE = create_label_space("categorical", [str(i) for i in range(10)])


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registered():
    assert {"convnet11", "shake_shake26_2x32d", "shake_shake26_2x96d"} <= set(list_encoders())


def test_convnet11_matches_the_official_layers():
    model = create_model("convnet11", SPACE, 3, 32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 11  # 8 conv + fc4, fc5 + the head (fc6)
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 256]
    assert [(m.in_features, m.out_features) for m in linears] == [(4096, 1024), (1024, 1024), (1024, 10)]
    # conv weights 1,728 + 36,864 + 73,728 + 147,456 + 294,912 + 3 * 589,824; BN 2 * 1,408;
    # fc4 4,096 * 1,024 + 1,024; fc5 1,024 * 1,024 + 1,024; head 10,250
    assert n_params(model) == 7_582_154
    with pytest.raises(UserError, match="at least 8"):
        create_encoder("convnet11", in_chans=1, image_size=4)


def test_convnet11_dropout_only_in_training():
    torch.manual_seed(0)
    model = create_model("convnet11", SPACE, 3, 32)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.allclose(model(x), model(x))
    out = model(x)
    out.sum().backward()
    assert out.shape == (4, 10) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_shake_shake_sizes():
    # Gastaldi (2017), table 1: 26 2x32d has 2.9M parameters and 26 2x96d 26.2M
    assert n_params(create_model("shake_shake26_2x32d", SPACE, 3, 32)) / 1e6 == pytest.approx(2.92, abs=0.01)
    assert n_params(create_model("shake_shake26_2x96d", SPACE, 3, 32)) / 1e6 == pytest.approx(26.19, abs=0.01)
    enc = create_encoder("shake_shake26_2x32d", in_chans=3, image_size=32)
    assert enc.num_features == 128 and len(enc.blocks) == 12


def test_shake_forward_alpha_backward_beta():
    b1 = torch.randn(5, 2, 3, 3, requires_grad=True)
    b2 = torch.randn(5, 2, 3, 3, requires_grad=True)
    torch.manual_seed(3)
    out = shake(b1, b2, training=True)
    torch.manual_seed(3)
    alpha, beta = torch.rand(5, 1, 1, 1), torch.rand(5, 1, 1, 1)
    assert torch.allclose(out, alpha * b1 + (1 - alpha) * b2, atol=1e-6)
    out.sum().backward()
    assert torch.allclose(b1.grad, beta.expand_as(b1)) and torch.allclose(b2.grad, (1 - beta).expand_as(b2))
    assert torch.allclose(shake(b1, b2, training=False), 0.5 * (b1 + b2))


def test_shake_shake_trains_and_evaluates_deterministically():
    torch.manual_seed(0)
    model = create_model("shake_shake26_2x32d", SPACE, 3, 16)
    x = torch.randn(2, 3, 16, 16)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, 10) and all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
