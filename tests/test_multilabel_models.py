"""torchvision backbones with the label space's head; pretrained weights only from a named local file."""
from __future__ import annotations

import hashlib

import pytest
import torch

from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.models import create_model

SPACE = create_label_space("multihot", [f"c{i}" for i in range(7)])


def _torchvision_file(tmp_path, arch: str, seed: int = 0):
    """A torchvision state dict (ImageNet head included), named as torchvision names its files."""
    import torchvision.models as tvm

    torch.manual_seed(seed)
    state = getattr(tvm, arch)(weights=None).state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    path = tmp_path / f"{arch}-{digest[:8]}.pth"
    raw.rename(path)
    return path, state


@pytest.mark.parametrize("arch,features", [("resnet18", 512), ("mobilenet_v2", 1280)])
def test_backbone_loads_a_local_torchvision_file_and_takes_the_label_space_head(tmp_path, arch, features):
    path, state = _torchvision_file(tmp_path, arch)
    model = create_model(arch, SPACE, 3, 32, weights=str(path))
    assert model.encoder.num_features == features
    assert model.head.weight.shape == (7, features)  # the label space's head, not ImageNet's 1000 classes
    key = "layer1.0.conv1.weight" if arch == "resnet18" else "features.1.conv.0.0.weight"
    torch.testing.assert_close(model.encoder.state_dict()[key], state[key])
    fresh = create_model(arch, SPACE, 3, 32)
    assert not torch.equal(fresh.encoder.state_dict()[key], state[key])
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_weights_missing_damaged_or_not_fitting_get_a_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist.*nothing is downloaded"):
        create_model("resnet18", SPACE, 3, 32, weights=str(tmp_path / "resnet18-f37072fd.pth"))
    path, _ = _torchvision_file(tmp_path, "resnet18")
    damaged = tmp_path / "resnet18-00000000.pth"
    damaged.write_bytes(path.read_bytes())
    with pytest.raises(UserError, match="sha256 prefix 00000000"):
        create_model("resnet18", SPACE, 3, 32, weights=str(damaged))
    mobile, _ = _torchvision_file(tmp_path, "mobilenet_v2")
    with pytest.raises(UserError, match="does not fit resnet18"):
        create_model("resnet18", SPACE, 3, 32, weights=str(mobile))
    with pytest.raises(UserError, match=r"another shape \(e\.g\. conv1\.weight"):
        create_model("resnet18", SPACE, 3, 32, weights=str(path), stem="small")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="not a loadable state dict"):
        create_model("resnet18", SPACE, 3, 32, weights=str(tmp_path / "junk.pth"))


def test_small_stem_keeps_resolution_for_small_images():
    torch.manual_seed(0)
    big = create_model("resnet18", SPACE, 3, 32, stem="imagenet").encoder
    small = create_model("resnet18", SPACE, 3, 32, stem="small").encoder
    x = torch.randn(1, 3, 32, 32)
    stem_big = big.maxpool(big.relu(big.bn1(big.conv1(x))))
    stem_small = small.maxpool(small.relu(small.bn1(small.conv1(x))))
    assert stem_big.shape[-1] == 8 and stem_small.shape[-1] == 32
    with pytest.raises(UserError, match="stem must be"):
        create_model("resnet18", SPACE, 3, 32, stem="tiny")
