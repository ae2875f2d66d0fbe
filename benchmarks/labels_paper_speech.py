"""The paper voice's speech table against an independent recomputation of the authors' mel pipeline.

The recomputation follows the paper's recipe call by call (librosa.load at 22,050 Hz, trim,
melspectrogram with n_mels=64, hop_length=256, fmax=8000, power_to_db(ref=max)) and resizes with
Pillow (``Image.fromarray(db).resize((64, 64))``, the resize the authors' scripts use), where the
label space resizes with torch's antialiased bilinear interpolation. Prints the max and mean
absolute difference in dB, per class and overall, and the librosa version.

    python benchmarks/labels_paper_speech.py --speech-dir ../shared/data/paper-speech
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def authors_recipe(path: Path, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    import librosa
    from PIL import Image

    y, sr = librosa.load(str(path), sr=22050)
    y, _ = librosa.effects.trim(y)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=64, hop_length=256, fmax=8000)
    db = librosa.power_to_db(mel, ref=np.max)
    return db, np.asarray(Image.fromarray(db.astype(np.float32)).resize((size, size)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speech-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-speech"))
    args = p.parse_args(argv)

    import librosa
    import PIL

    from labelrep.labels import create_label_space

    with tempfile.TemporaryDirectory() as cache:  # build the table afresh, not from a cache
        space = create_label_space("speech", CIFAR10, context={"dataset": "cifar10", "image_size": 32}, voice="paper",
                                   speech_dir=args.speech_dir, cache_dir=cache)
    table = space.table.numpy()
    folder = Path(args.speech_dir) / "cifar10"
    rows, diffs = [], []
    for i, c in enumerate(CIFAR10):
        db, ref = authors_recipe(folder / f"{c}.wav")
        d = np.abs(table[i] - ref)
        diffs.append(d)
        rows.append({"class": c, "frames": db.shape[1], "max_abs_db": round(float(d.max()), 3),
                     "mean_abs_db": round(float(d.mean()), 3), "ref_range": [round(float(ref.min()), 2),
                                                                              round(float(ref.max()), 2)]})
    for r in rows:
        print(json.dumps(r))
    all_d = np.stack(diffs)
    print(json.dumps({"overall_max_abs_db": round(float(all_d.max()), 3), "overall_mean_abs_db": round(float(all_d.mean()), 3),
                      "table_range": [float(table.min()), float(table.max())], "librosa": librosa.__version__,
                      "pillow": PIL.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
