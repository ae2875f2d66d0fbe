"""Speech labels: the mel pipeline on WAVs made here, the voices, shuffling, the paper's recordings."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from labelrep.errors import UserError
from labelrep.labels import create_label_space
from labelrep.labels.speech import (PAPER_CIFAR10_FILES, espeak_audio, file_sha256, load_audio, mel_label,
                                    paper_speech_files, shuffle_columns, spoken_name)

SR = 22050
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def tone_wav(path, freq: float, seconds: float = 0.5, silence: float = 0.3):
    """A tone with silence before and after, written as 16-bit PCM at 22,050 Hz."""
    from scipy.io import wavfile

    t = np.arange(int(seconds * SR)) / SR
    pad = np.zeros(int(silence * SR))
    y = np.concatenate([pad, 0.5 * np.sin(2 * np.pi * freq * t), pad])
    wavfile.write(path, SR, (y * 32767).astype(np.int16))


@pytest.fixture(scope="module")
def tone_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voices")
    for name, freq in [("low", 300.0), ("mid", 1000.0), ("high", 3000.0)]:
        tone_wav(folder / f"{name}.wav", freq)
    return folder


def test_speech_from_wav_files_has_the_label_shape_range_and_pitch(tone_folder, tmp_path):
    import librosa

    space = create_label_space("speech", ["low", "mid", "high"], context={"image_size": 32}, voice="folder",
                               speech_dir=str(tone_folder), cache_dir=str(tmp_path))
    table = space.table.numpy()
    assert table.shape == (3, 64, 64)
    assert table.min() >= -80.0 and table.max() <= 0.0 and table.min() < -70
    # rows are mel bands, low first: each tone's loudest row is its frequency's band
    centres = librosa.mel_frequencies(n_mels=64 + 2, fmax=8000)[1:-1]
    for row, freq in zip(table, [300.0, 1000.0, 3000.0]):
        assert abs(int(row.mean(axis=1).argmax()) - int(np.abs(centres - freq).argmin())) <= 1
        # trimmed: 0.6 s of the 1.1 s file is silence, yet the tone sounds in nearly every column
        assert (row.max(axis=0) > -20).mean() > 0.85
    assert sorted(p.name for p in tmp_path.glob("speech-*.npy")) != []  # cached


def test_speech_size_follows_the_image_and_the_override(tone_folder, tmp_path):
    kwargs = dict(voice="folder", speech_dir=str(tone_folder), cache_dir=str(tmp_path))
    assert create_label_space("speech", ["low", "mid", "high"], context={"image_size": 24}, **kwargs).shape == (48, 48)
    assert create_label_space("speech", ["low", "mid", "high"], size=20, **kwargs).shape == (20, 20)


def test_shuffled_speech_is_a_column_permutation_of_speech(tone_folder, tmp_path):
    kwargs = dict(voice="folder", speech_dir=str(tone_folder), cache_dir=str(tmp_path), context={"image_size": 32})
    speech = create_label_space("speech", ["low", "mid", "high"], **kwargs).table.numpy()
    shuffled = create_label_space("shuffled", ["low", "mid", "high"], **kwargs).table.numpy()
    rng = np.random.RandomState(8)  # the paper: seed 8 once, one permutation a class
    for c in range(3):
        perm = rng.permutation(64)
        np.testing.assert_array_equal(shuffled[c], speech[c][:, perm])
        assert not np.array_equal(shuffled[c], speech[c])
    tiny = np.arange(2 * 1 * 2, dtype=np.float32).reshape(2, 1, 2)
    assert all(not np.array_equal(a, b) for a, b in zip(shuffle_columns(tiny), tiny))  # identity redrawn


def test_folder_voice_reports_missing_recordings(tone_folder):
    with pytest.raises(UserError, match="no recording for class"):
        create_label_space("speech", ["low", "cat"], voice="folder", speech_dir=str(tone_folder))
    with pytest.raises(UserError, match="speech_dir"):
        create_label_space("speech", ["low"], voice="folder")
    with pytest.raises(UserError, match="unknown voice"):
        create_label_space("speech", ["low"], voice="robot")


def test_spoken_names():
    assert [spoken_name(c) for c in ["0", "7", "aquarium_fish", "cat"]] == ["zero", "seven", "aquarium fish", "cat"]


def test_espeak_voice_offline_repeatable_and_distinct(tmp_path):
    digits = [str(i) for i in range(10)]
    a = create_label_space("speech", digits, context={"image_size": 8, "dataset": "digits"}, cache_dir=str(tmp_path))
    b = create_label_space("speech", digits, context={"image_size": 8}, cache_dir=str(tmp_path / "fresh"))
    assert a.shape == (16, 16)
    assert np.array_equal(a.table.numpy(), b.table.numpy())  # synthesised twice, identical
    t = a.table.numpy()
    assert t.min() >= -80 and t.max() <= 0
    d = np.abs(t[:, None] - t[None]).mean(axis=(2, 3))
    assert d[~np.eye(10, dtype=bool)].min() > 1.0  # every digit sounds different


def test_a_speech_label_does_not_depend_on_the_number_of_threads(tmp_path):
    # In float32 the mel filter product rounded differently under OMP_NUM_THREADS=1 and 2, so a table
    # built on another machine differed in the last bits; the whole pipeline now runs in float64.
    y, sr = espeak_audio("airplane")
    np.save(tmp_path / "y.npy", y)
    code = ("import sys, hashlib, numpy as np; from labelrep.labels.speech import mel_label; "
            f"print(hashlib.sha256(mel_label(np.load(sys.argv[1]), {sr}, 64).tobytes()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "y.npy")], capture_output=True, text=True,
                              check=True, env={**os.environ, "OMP_NUM_THREADS": n}).stdout for n in ("1", "2")}
    assert len(digests) == 1


def test_missing_optional_package_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(UserError, match="pip install"):
        create_label_space("speech", ["cat"], cache_dir=str(tmp_path))


def test_piper_voice_is_repeatable():
    pytest.importorskip("piper")
    from labelrep.labels.speech import piper_audio

    y1, sr = piper_audio("cat")
    y2, _ = piper_audio("cat")
    assert sr == 22050 and len(y1) > sr // 10 and np.array_equal(y1, y2)
    label = mel_label(y1, sr, 64)
    assert label.shape == (64, 64) and label.min() >= -80 and label.max() <= 0


def test_paper_voice_reads_the_authors_recordings(shared_data, tmp_path):
    folder = shared_data / "paper-speech"
    files = paper_speech_files(CIFAR10, "cifar10", folder, download=False)
    # the local copy is byte-identical to the files the download checks against
    assert [file_sha256(f) for f in files] == [PAPER_CIFAR10_FILES[c][1] for c in CIFAR10]
    space = create_label_space("speech", CIFAR10, context={"dataset": "cifar10", "image_size": 32}, voice="paper",
                               speech_dir=str(folder), cache_dir=str(tmp_path))
    assert space.shape == (64, 64)
    np.testing.assert_allclose(space.table[3].numpy(), mel_label(*load_audio(files[3]), 64), atol=1e-5)
    with pytest.raises(UserError, match="CIFAR-10 and CIFAR-100"):
        create_label_space("speech", ["0", "1"], context={"dataset": "digits"}, voice="paper", speech_dir=str(folder))


def test_paper_recordings_download_with_checksums_from_a_local_server(shared_data, tmp_path, monkeypatch):
    """The pooch download code, served from this machine: right files pass, a changed file is refused."""
    import functools
    import http.server
    import shutil
    import threading

    from labelrep.labels import speech

    site = tmp_path / "site" / "labels" / "cifar10_wav"
    site.mkdir(parents=True)
    for cls, (name, _) in PAPER_CIFAR10_FILES.items():
        shutil.copy(shared_data / "paper-speech" / "cifar10" / f"{cls}.wav", site / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(speech, "PAPER_REPO", f"http://127.0.0.1:{server.server_address[1]}")
        got = speech.fetch_paper_speech("cifar10", tmp_path / "dl")
        assert sorted(p.name for p in got.iterdir()) == sorted(f"{c}.wav" for c in CIFAR10)
        assert file_sha256(got / "cat.wav") == PAPER_CIFAR10_FILES["cat"][1]
        (site / PAPER_CIFAR10_FILES["dog"][0]).write_bytes(b"RIFF not the authors' dog")
        with pytest.raises(UserError, match="checksum"):
            speech.fetch_paper_speech("cifar10", tmp_path / "dl2")
    finally:
        server.shutdown()
