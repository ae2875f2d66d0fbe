"""The authors' label recipes: speech tables as their notebook makes them (skimage resize), composite
tables as their imagen cell makes them."""
from __future__ import annotations

import numpy as np
import pytest

from labelrep.labels import create_label_space
from labelrep.labels.speech import CIFAR10_CLASSES, load_audio, mel_label
from labelrep.labels.synthetic import paper_composite_raw, paper_composite_table


def notebook_label(path, size: int = 64) -> np.ndarray:
    """One cell of the authors' labels.ipynb, call for call (float32 throughout, as librosa gives it)."""
    import librosa
    from skimage.transform import resize

    y, sr = librosa.load(str(path), sr=22050)
    y, _ = librosa.effects.trim(y)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_mels=64, fmax=8000)
    mel = librosa.power_to_db(mel, ref=np.max)
    return resize(mel, (size, size)).astype(np.float32)


def test_paper_voice_table_is_the_authors_notebook_recipe(shared_data, tmp_path):
    folder = shared_data / "paper-speech"
    space = create_label_space("speech", CIFAR10_CLASSES, context={"dataset": "cifar10", "image_size": 32},
                               voice="paper", speech_dir=str(folder), cache_dir=str(tmp_path))
    table = space.table.numpy()
    for i in (0, 3, 9):  # airplane, cat, truck: 65, 57 and 50 frames, resized up and down
        ref = notebook_label(folder / "cifar10" / f"{CIFAR10_CLASSES[i]}.wav")
        assert np.abs(table[i] - ref).max() < 1e-3  # float64 vs float32 mel: far inside 1 dB
    # and not what torch's antialiased bilinear resize (this package's earlier one) gives: up to ~4 dB
    # apart where the time axis is stretched (cat: 43 frames -> 64), from the edge handling
    import librosa
    import torch
    import torch.nn.functional as F

    y, sr = load_audio(folder / "cifar10" / "cat.wav")
    y, _ = librosa.effects.trim(y.astype(np.float64))
    db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_mels=64, fmax=8000),
                             ref=np.max)
    earlier = F.interpolate(torch.from_numpy(db)[None, None], size=(64, 64), mode="bilinear", antialias=True)[0, 0]
    assert np.abs(earlier.numpy() - table[3]).max() > 1.0
    assert np.array_equal(mel_label(*load_audio(folder / "cifar10" / "cat.wav"), 64), table[3])


def test_composite_is_the_authors_imagen_draw():
    raw = paper_composite_raw(100)
    # measured once from imagen 2.1.0 running the authors' cell (param 1.12, holoviews 1.12)
    assert raw[0].max() == pytest.approx(2.358834871289809, abs=1e-12)
    assert raw[9].sum() == pytest.approx(59590.89153053821, rel=1e-12)
    assert raw[99][128, 64] == pytest.approx(0.813854726465034, abs=1e-12)
    assert np.unravel_index(raw[0].argmax(), raw[0].shape) == (106, 130)
    # CIFAR-10's table is the first ten draws (the authors saved mels[:10]); Pillow's bicubic resize
    table = paper_composite_table(10, 64)
    assert np.array_equal(table, paper_composite_table(100, 64)[:10])
    assert table.min() > -1.0 and table.max() < 81.0 and abs(table.max() - 80) < 0.5
    space = create_label_space("composite", CIFAR10_CLASSES, context={"image_size": 32})
    assert np.array_equal(space.table.numpy(), table)
    other = create_label_space("composite", CIFAR10_CLASSES, context={"image_size": 32}, generator="gaussians").table
    assert other.shape == (10, 64, 64) and not np.allclose(other.numpy(), table)
