"""Test-time crops: resize each test image, cut five (corners + centre) or ten (and their mirror images)
crops with torchvision's ``five_crop`` / ``ten_crop``, and average the label space's scores over them."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ..data.loader import DeviceLoader
from ..errors import UserError
from ..models.modes import eval_mode

CROPS = ("none", "five", "ten")


def crop_plan(image_size: int, resize: int | None, crop: int | None) -> tuple[int, int]:
    """``(resize, crop)``: by default resize to 8/7 of the image side and crop back to the side the
    network trained on (the seed's 330 -> 300 at 224 px is about 1.1)."""
    crop = image_size if crop is None else int(crop)
    resize = round(crop * 8 / 7) if resize is None else int(resize)
    if not 0 < crop <= resize:
        raise UserError(f"test-time crops of {crop} px need a resize of at least that (got resize={resize})")
    return resize, crop


@torch.no_grad()
def predict_scores_crops(model: nn.Module, label_space, loader: DeviceLoader, crops: str = "five",
                         resize: int | None = None, crop: int | None = None) -> torch.Tensor:
    """``[N, C]`` scores, each the mean over the crops of one image (``crops="none"``: the image as it is)."""
    if crops not in CROPS:
        raise UserError(f"test-time crops must be one of {', '.join(CROPS)}, got {crops!r}")
    resize, crop = crop_plan(loader.size, resize, crop)
    out = []
    with eval_mode(model):
        for x, _, _ in loader:
            if crops == "none":
                out.append(label_space.scores(model(x)).float())
                continue
            big = TF.resize(x, [resize, resize], antialias=True)
            views = TF.five_crop(big, [crop, crop]) if crops == "five" else TF.ten_crop(big, [crop, crop])
            # one forward per view: ten crops of a whole evaluation batch at once would not fit in memory
            out.append(torch.stack([label_space.scores(model(v.contiguous(memory_format=torch.channels_last))).float()
                                    for v in views]).mean(0))
    return torch.cat(out)
