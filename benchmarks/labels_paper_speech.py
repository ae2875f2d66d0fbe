"""The paper voice's speech tables against the authors' own recipe applied to their recordings.

The authors' ``.npy`` tables are not at hand, so their generation notebook (``labels/labels.ipynb`` of
BoyuanChen/label_representations) is replayed call for call on their WAV files: ``librosa.load(sr=22050)``
(float32), ``librosa.effects.trim``, ``melspectrogram(hop_length=256, n_mels=64, fmax=8000)``,
``power_to_db(ref=np.max)``, ``skimage.transform.resize(mel, (64, 64))``, stored as float32. The label
space builds its table in float64 (so it does not depend on the thread count) with the same calls.
Prints the max and mean absolute difference in dB per class and overall, for CIFAR-10 and CIFAR-100.

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


def authors_recipe(path: Path, size: int = 64) -> tuple[int, np.ndarray]:
    """One cell of the authors' notebook: (number of frames, the float32 label)."""
    import librosa
    from skimage.transform import resize

    y, sr = librosa.load(str(path), sr=22050)
    y, _ = librosa.effects.trim(y)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_mels=64, fmax=8000)
    mel = librosa.power_to_db(mel, ref=np.max)
    return mel.shape[1], resize(mel, (size, size)).astype(np.float32)


def compare(dataset: str, classes: list[str], speech_dir: str) -> dict:
    from labelrep.labels import create_label_space
    from labelrep.labels.speech import paper_file_names

    with tempfile.TemporaryDirectory() as cache:  # build the table afresh, not from a cache
        space = create_label_space("speech", classes, context={"dataset": dataset, "image_size": 32}, voice="paper",
                                   speech_dir=speech_dir, cache_dir=cache)
    table = space.table.numpy()
    folder = Path(speech_dir) / dataset
    per_class, diffs = [], []
    for i, name in enumerate(paper_file_names(dataset, classes)):
        frames, ref = authors_recipe(folder / name)
        d = np.abs(table[i] - ref)
        diffs.append(d)
        per_class.append({"dataset": dataset, "class": classes[i], "frames": frames,
                          "max_abs_db": float(f"{d.max():.3g}"), "mean_abs_db": float(f"{d.mean():.3g}")})
    all_d = np.stack(diffs)
    return {"per_class": per_class, "overall": {"dataset": dataset, "classes": len(classes),
                                                "max_abs_db": float(f"{all_d.max():.3g}"),
                                                "mean_abs_db": float(f"{all_d.mean():.3g}"),
                                                "table_range": [float(table.min()), float(table.max())]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speech-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "paper-speech"))
    p.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"])
    args = p.parse_args(argv)

    import librosa
    import skimage

    for ds in args.datasets:
        classes = CIFAR10 if ds == "cifar10" else [str(i) for i in range(100)]
        result = compare(ds, classes, args.speech_dir)
        for r in result["per_class"]:
            print(json.dumps(r))
        print(json.dumps(result["overall"]))
    print(json.dumps({"librosa": librosa.__version__, "scikit-image": skimage.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
