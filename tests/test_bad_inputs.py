"""Every bad input across every command: exit status 2, exactly one line on stderr, no traceback, and
every file where the command ran left as it was. Plus the valid inputs that must work (floats in
scientific notation) and the run-folder guarantees (two writers, failures, resumes, SIGKILL).

The battery calls the CLI in-process (``labelrep.cli.main``); a few subprocess cases prove the real
exit status. Key-by-key cases come from the declared schema, so a new key is tried as soon as it exists.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labelrep import config as config_mod
from labelrep import schema
from labelrep.cli import main

TINY = ["--quiet", "--epochs", "1", "--set", "model.options.widths=[8,8,8]"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_cli(capsys, argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def fill(arg: str, place: Path) -> str:
    return arg.replace("{out}", str(place / "out")).replace("{run}", str(place / "run")).replace("{tmp}", str(place))


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time, and every folder's name."""
    state = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        state[rel] = (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
    return state


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real 1-epoch digits run (tiny widths), trained once for the module."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("finished") / "run"
    code = main(["train", *TINY, "--out", str(out)])
    torch.set_num_threads(threads)
    assert code == 0
    return out


def _evil_pickle(marker: Path) -> bytes:
    class Evil:  # unpickling it runs code: it creates the marker file
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    return pickle.dumps(Evil())


def _study(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def place(shared_place, monkeypatch):
    """The working folder of a bad input: every case must leave it exactly as it was, so all share one."""
    monkeypatch.chdir(shared_place)
    return shared_place


@pytest.fixture(scope="module")
def shared_place(tmp_path_factory, finished_run):
    """The files bad inputs point at."""
    tmp_path = tmp_path_factory.mktemp("place")
    (tmp_path / "afile.txt").write_text("not a folder\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "nul.yaml").write_bytes(b"optim:\x00\n  lr: 1\n")
    (tmp_path / "invalid.yaml").write_text("optim:\n  lr: [0.1\n")
    (tmp_path / "dup.yaml").write_text("optim:\n  lr: 0.1\n  momentum: 0.8\n  lr: 0.2\n")
    (tmp_path / "dupsection.yaml").write_text("optim: {lr: 0.1}\ntrain: {epochs: 1}\noptim: {lr: 0.2}\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "section.yaml").write_text("optim: 3\n")
    (tmp_path / "unknown.yaml").write_text("optimizer: {lr: 1}\n")
    (tmp_path / "badvalue.yaml").write_text("optim: {lr: -1e-3}\n")
    (tmp_path / "folder.yaml").mkdir()
    for split in ("train", "test"):  # an image folder with a corrupt image: refused, and no cache folder made
        (tmp_path / "corrupt" / split / "cat").mkdir(parents=True)
        (tmp_path / "corrupt" / split / "cat" / "a.png").write_bytes(b"not a png")
    (tmp_path / "nonempty").mkdir()
    (tmp_path / "nonempty" / "keep.txt").write_text("mine\n")
    np.save(tmp_path / "zero.npy", np.zeros((10, 0), dtype=np.float32))
    np.save(tmp_path / "short.npy", np.zeros((3, 4), dtype=np.float32))
    (tmp_path / "text.npy").write_text("not numpy\n")
    shutil.copytree(finished_run, tmp_path / "run")
    shutil.copytree(finished_run, tmp_path / "truncated")
    ckpt = tmp_path / "truncated" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    evil = tmp_path / "evil" / "cifar-10-batches-py"
    evil.mkdir(parents=True)
    (evil / "data_batch_1").write_bytes(_evil_pickle(tmp_path / "MARKER"))
    s = tmp_path / "s"
    s.mkdir()
    _study(s / "empty.yaml", "")
    _study(s / "comments.yaml", "# nothing here\n")
    _study(s / "base5.yaml", "base: 5\n")
    _study(s / "baselist.yaml", "base: [1, 2]\n")
    _study(s / "dup.yaml", "base:\n  train: {epochs: 1}\n  train: {epochs: 2}\n")
    _study(s / "dotname.yaml", "name: '.'\nbase: {train: {epochs: 1}}\n")
    _study(s / "dotdot.yaml", "name: '..'\nbase: {train: {epochs: 1}}\n")
    _study(s / "slash.yaml", "name: a/b\nbase: {train: {epochs: 1}}\n")
    _study(s / "figure.yaml", "base: {train: {epochs: 1}}\nevaluations:\n  - features: {figure: ../../../x.png}\n")
    _study(s / "figabs.yaml", "base: {train: {epochs: 1}}\nevaluations:\n  - features: {figure: /tmp/x.png}\n")
    _study(s / "figlist.yaml", "base: {train: {epochs: 1}}\nevaluations:\n  - features: {figure: [1]}\n")
    _study(s / "cellrange.yaml", "base: {train: {epochs: 1}}\naxes:\n  optim.lr: [0.1, -1]\n")
    _study(s / "cellname.yaml", "base: {train: {epochs: 1}}\naxes:\n  label:\n    a: {label.name: categorical}\n"
                                "    b: {label.name: nope}\n")
    _study(s / "cellopt.yaml", "base: {train: {epochs: 1}}\naxes:\n  model:\n    a: {model.name: fastnet}\n"
                               "    b: {model: {name: fastnet, options: {depth: 3}}}\n")
    _study(s / "celltype.yaml", "base: {train: {epochs: 1}}\naxes:\n  train.amp: [true, banana]\n")
    _study(s / "baserange.yaml", "base: {train: {epochs: 0}}\n")
    _study(s / "unknowneval.yaml", "base: {train: {epochs: 1}}\nevaluations: [nope]\n")
    _study(s / "evalopt.yaml", "base: {train: {epochs: 1}}\nevaluations:\n  - features: {bogus: 1}\n")
    _study(s / "seeds0.yaml", "base: {train: {epochs: 1}}\nseeds: 0\n")
    _study(s / "seedsdup.yaml", "base: {train: {epochs: 1}}\nseeds: [1, 1]\n")
    _study(s / "threads0.yaml", "base: {train: {epochs: 1}}\nthreads: 0\n")
    _study(s / "unknownkey.yaml", "base: {train: {epochs: 1}}\naxis: {}\n")
    _study(s / "axeslist.yaml", "base: {train: {epochs: 1}}\naxes: [1, 2]\n")
    _study(s / "axisempty.yaml", "base: {train: {epochs: 1}}\naxes: {optim.lr: []}\n")
    _study(s / "excludeall.yaml", "base: {train: {epochs: 1}}\naxes: {optim.lr: [0.1]}\n"
                                  "exclude: [{optim.lr: 0.1}]\n")
    _study(s / "seedaxis.yaml", "base: {train: {epochs: 1}}\naxes: {train.seed: [1, 2]}\n")
    _study(s / "nockpt.yaml", "base: {train: {epochs: 1, checkpoint: false}}\n")
    _study(s / "ok.yaml", "base: {train: {epochs: 1}, model: {options: {widths: [8, 8, 8]}}}\n")
    (s / "binary.yaml").write_bytes(bytes(range(256)))
    return tmp_path


def _bad_texts(kind: schema.Kind) -> list[str]:
    """YAML texts that ``kind`` must refuse: wrong types and the first values past each bound."""
    if isinstance(kind, schema.Nullable):
        return [t for t in _bad_texts(kind.kind) if t != "null"]
    if isinstance(kind, schema.Number):
        texts = ["fast", "true", "1.5" if kind.integer else ".nan"]
        if kind.lo is not None:
            texts.append(str(kind.lo if kind.lo_open else kind.lo - 1))
        if kind.hi is not None:
            texts.append(str(kind.hi if kind.hi_open else (kind.hi + 1 if kind.integer else kind.hi + 0.5)))
        return texts
    if isinstance(kind, schema.AnyOf):
        return ["fast", "-1", "1.5"]
    if isinstance(kind, schema.ListOf):
        texts = ["5", "[fast]"]
        if kind.length is not None:
            texts.append("[" + ", ".join(["0.5"] * (kind.length + 1)) + "]")
        return texts
    if isinstance(kind, schema.Options):
        return ["5", "[1]"]
    if isinstance(kind, schema.Bool):
        return ["banana", "1"]
    if isinstance(kind, (schema.Choice, schema.Pattern)):
        return ["banana"]
    if isinstance(kind, schema.Text):
        return ["[1, 2]", "null"]
    return []


SCHEMA_CASES = [
    pytest.param(["train", "--set", f"{section}.{name}={text}", "--out", "{out}"], f"config key '{section}.{name}'",
                 id=f"set-{section}.{name}={text}")
    for section, keys in schema.SCHEMA.items() for name, key in keys.items() for text in _bad_texts(key.kind)
]

HAND_CASES = [
    # train: flags
    (["train", "--lr", "-1", "--out", "{out}"], "'optim.lr' must be a number > 0"),
    (["train", "--lr", "inf", "--out", "{out}"], "'optim.lr'"),
    (["train", "--lr", "nan", "--out", "{out}"], "'optim.lr'"),
    (["train", "--lr", "fast", "--out", "{out}"], "invalid float value"),
    (["train", "--epochs", "0", "--out", "{out}"], "'train.epochs' must be a whole number >= 1"),
    (["train", "--epochs", "-3", "--out", "{out}"], "'train.epochs'"),
    (["train", "--epochs", "1.5", "--out", "{out}"], "invalid int value"),
    (["train", "--batch-size", "0", "--out", "{out}"], "'optim.batch_size'"),
    (["train", "--batch-size", "-8", "--out", "{out}"], "'optim.batch_size'"),
    (["train", "--eval-every", "0", "--out", "{out}"], "'train.eval_every'"),
    (["train", "--seed", "-1", "--out", "{out}"], "'train.seed'"),
    (["train", "--seed", str(2**70), "--out", "{out}"], "'train.seed'"),
    (["train", "--fraction", "0", "--out", "{out}"], "'data.fraction'"),
    (["train", "--fraction", "1.5", "--out", "{out}"], "'data.fraction'"),
    (["train", "--fraction", "nan", "--out", "{out}"], "'data.fraction'"),
    (["train", "--device", "gpu", "--out", "{out}"], "'train.device'"),
    (["train", "--device", "cuda:0", "--out", "{out}"], "no CUDA device"),
    (["train", "--label", "nope", "--out", "{out}"], "unknown label space 'nope'"),
    (["train", "--model", "resnet7", "--out", "{out}"], "unknown encoder 'resnet7'"),
    (["train", "--dataset", "svhn9", "--out", "{out}"], "unknown dataset 'svhn9'"),
    (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/nowhere", "--out", "{out}"], "does not exist"),
    (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/nonempty", "--out", "{out}"], "not found"),
    (["train", "--dataset", "imagefolder", "--data-dir", "{tmp}/nonempty", "--out", "{out}"], "not an image folder"),
    (["train", "--dataset", "imagefolder", "--out", "{out}"], "needs --data-dir"),
    (["train", "--dataset", "imagefolder", "--data-dir", "{tmp}/corrupt", "--out", "{out}"], "not a readable image"),
    (["train", "--set", "target.name=nope", "--out", "{out}"], "unknown target source 'nope'"),
    (["train", "--set", "target.name=teacher", "--set", "target.options.run={tmp}/nowhere", "--out", "{out}"],
     "nowhere"),
    (["train", "--set", "target.name=teacher", "--set", "target.options.rn=x", "--out", "{out}"], "bad option"),
    (["train", "--set", "target.name=per_image", "--set", "target.options.file={tmp}/short.npy", "--out", "{out}"],
     "one numeric row per training image"),
    (["train", "--set", "optim.name=adam", "--out", "{out}"], "'optim.name' must be one of sgd, adamw"),
    (["train", "--bogus", "--out", "{out}"], "unrecognized arguments"),
    # train: --set syntax and options
    (["train", "--set", "optim.lr", "--out", "{out}"], "must look like section.key=value"),
    (["train", "--set", ".lr=1", "--out", "{out}"], "empty key"),
    (["train", "--set", "optim=3", "--out", "{out}"], "config section 'optim' must be a mapping"),
    (["train", "--set", "optimizer.lr=1", "--out", "{out}"], "unknown config section 'optimizer'"),
    (["train", "--set", "optim.lrr=1", "--out", "{out}"], "unknown config key 'optim.lrr'"),
    (["train", "--set", "optim.lr=1", "--set", "optim.lr.x=2", "--out", "{out}"], "conflicts"),
    (["train", "--set", "label.options={a: 1, a: 2}", "--out", "{out}"], "twice"),
    (["train", "--set", "optim.lr=1e-3x", "--out", "{out}"], "'optim.lr' must be a number > 0, got '1e-3x'"),
    (["train", "--set", "label.options.bogus=1", "--out", "{out}"], "label space 'categorical' got a bad option"),
    (["train", "--label", "smoothed", "--set", "label.options.alfa=1", "--out", "{out}"], "bad option"),
    (["train", "--set", "model.options.depth=3", "--out", "{out}"], "encoder 'fastnet' got a bad option"),
    (["train", "--set", "mix.name=nope", "--out", "{out}"], "unknown mixer 'nope'"),
    (["train", "--set", "data.options.bogus=1", "--out", "{out}"], "dataset 'digits' got a bad option"),
    (["train", "--set", "model.options.widths=[0,0,0]", "--epochs", "1", "--out", "{out}"], "cannot run on"),
    (["train", "--label", "custom", "--set", "label.options.path={tmp}/zero.npy", "--out", "{out}"], "cannot run on"),
    (["train", "--label", "custom", "--set", "label.options.path={tmp}/short.npy", "--out", "{out}"], "one row per class"),
    (["train", "--label", "custom", "--set", "label.options.path={tmp}/text.npy", "--out", "{out}"], "not a numpy"),
    (["train", "--label", "custom", "--set", "label.options.path={tmp}/none.npy", "--out", "{out}"], "does not exist"),
    (["train", "--label", "custom", "--out", "{out}"], "needs path="),
    (["train", "--set", "data.val_size=100000", "--out", "{out}"], "does not fit"),
    # train: --config files
    (["train", "--config", "{tmp}/none.yaml", "--out", "{out}"], "does not exist"),
    (["train", "--config", "{tmp}/folder.yaml", "--out", "{out}"], "is not a file"),
    (["train", "--config", "{tmp}/binary.yaml", "--out", "{out}"], "looks binary"),
    (["train", "--config", "{tmp}/nul.yaml", "--out", "{out}"], "NUL bytes"),
    (["train", "--config", "{tmp}/invalid.yaml", "--out", "{out}"], "not valid YAML at line"),
    (["train", "--config", "{tmp}/dup.yaml", "--out", "{out}"], "sets key 'lr' twice (lines 2 and 4)"),
    (["train", "--config", "{tmp}/dupsection.yaml", "--out", "{out}"], "sets key 'optim' twice (lines 1 and 3)"),
    (["train", "--config", "{tmp}/list.yaml", "--out", "{out}"], "must hold a mapping"),
    (["train", "--config", "{tmp}/section.yaml", "--out", "{out}"], "'optim' must be a mapping"),
    (["train", "--config", "{tmp}/unknown.yaml", "--out", "{out}"], "unknown config section 'optimizer'"),
    (["train", "--config", "{tmp}/badvalue.yaml", "--out", "{out}"], "'optim.lr' must be a number > 0, got -0.001"),
    # train: output folders and resumes
    (["train", *TINY, "--out", "{tmp}/afile.txt"], "is a file"),
    (["train", *TINY, "--out", "{tmp}/afile.txt/run"], "cannot write to output folder"),
    (["train", *TINY, "--out", "{tmp}/nonempty"], "is not empty"),
    (["train", *TINY, "--out", "{run}"], "is not empty"),
    (["train", *TINY, "--resume"], "--resume needs --out"),
    (["train", *TINY, "--resume", "--out", "{tmp}/nowhere"], "no run folder"),
    (["train", *TINY, "--resume", "--out", "{tmp}/truncated"], "truncated or not a checkpoint"),
    (["train", *TINY, "--resume", "--out", "{run}", "--model", "resnet20"], "model.name ('fastnet' -> 'resnet20')"),
    (["train", *TINY, "--resume", "--out", "{run}", "--label", "smoothed"], "label.name"),
    (["train", *TINY, "--resume", "--out", "{run}", "--lr", "0.5"], "optim.lr (0.05 -> 0.5)"),
    (["train", *TINY, "--resume", "--out", "{run}", "--epochs", "3"], "train.epochs (1 -> 3)"),
    (["train", "--quiet", "--resume", "--out", "{run}"], "model.options.widths ([8, 8, 8] -> unset)"),
    (["train", *TINY, "--resume", "--out", "{run}", "--seed", "3"], "train.seed"),
    (["train", *TINY, "--resume", "--out", "{run}", "--set", "optim.schedule=constant", "--epochs", "2"],
     "optim.schedule"),
    # eval and the evaluation commands
    (["eval", "{tmp}/nowhere"], "not a run folder"),
    (["eval", "{tmp}/afile.txt"], "not a run folder"),
    (["eval", "{tmp}/nonempty"], "not a run folder"),
    (["eval", "{run}", "--weights", "best"], "has no best.pt"),
    (["eval", "{run}", "--weights", "final"], "invalid choice"),
    (["eval", "{tmp}/truncated"], "cannot be loaded"),
    (["eval", "{run}", "--data-dir", "{tmp}/nowhere"], "does not exist"),
    (["eval"], "required"),
    (["attack", "{run}", "--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
    (["attack", "{run}", "--max-images", "0"], "--max-images: must be a whole number >= 1"),
    (["attack", "{run}", "--max-images", "-5"], "--max-images"),
    (["attack", "{run}", "--steps", "0"], "--steps"),
    (["attack", "{run}", "--restarts", "0"], "--restarts"),
    (["attack", "{run}", "--eps", "inf"], "--eps: must be a finite number >= 0"),
    (["attack", "{run}", "--eps", "nan"], "--eps"),
    (["attack", "{run}", "--eps", "-1"], "--eps"),
    (["attack", "{run}", "--eps", "two"], "--eps"),
    (["attack", "{run}", "--eps", "2", "2"], "--eps repeats a value"),
    (["attack", "{run}", "--paper-eps", "-0.1"], "--paper-eps"),
    (["attack", "{run}", "--eps", "2", "--paper-eps", "0.1"], "not both"),
    (["attack", "{run}", "--protocols", "weak"], "invalid choice"),
    (["attack", "{run}", "--autoattack", "full"], "invalid choice"),
    (["attack", "{run}", "--attacks", "fgsm", "fgsm"], "--attacks repeats a value"),
    (["attack", "{tmp}/nowhere"], "not a run folder"),
    (["attack", "{tmp}/truncated", "--max-images", "10"], "cannot be loaded"),
    (["calibrate", "{run}", "--bins", "-3"], "--bins: must be a whole number >= 1"),
    (["calibrate", "{run}", "--bins", "0"], "--bins"),
    (["calibrate", "{run}", "--bins", "ten"], "--bins"),
    (["calibrate", "{run}", "--max-images", "0"], "--max-images"),
    (["calibrate", "{tmp}/nowhere"], "not a run folder"),
    (["features", "{run}", "--images", "0"], "--images: must be a whole number >= 2"),
    (["features", "{run}", "--images", "-1"], "--images"),
    (["features", "{tmp}/nowhere"], "not a run folder"),
    (["efficiency", "--labels", "categorical", "--steps", "0", "--out", "{out}"], "--steps"),
    (["efficiency", "--labels", "categorical", "--fractions", "0.1", "0.1", "--out", "{out}"], "--fractions repeats"),
    (["efficiency", "--labels", "categorical", "--fractions", "0", "--out", "{out}"], "--fractions"),
    (["efficiency", "--labels", "categorical", "--fractions", "2", "--out", "{out}"], "--fractions"),
    (["efficiency", "--labels", "categorical", "--seeds", "-1", "--out", "{out}"], "--seeds"),
    (["efficiency", "--labels", "categorical", "--seeds", "0", "0", "--out", "{out}"], "--seeds repeats"),
    (["efficiency", "--labels", "categorical", "nope", "--out", "{out}"], "unknown label space 'nope'"),
    (["efficiency", "--labels", "categorical", "categorical", "--out", "{out}"], "--labels repeats"),
    (["efficiency", "--labels", "categorical", "--out", "{tmp}/afile.txt"], "is a file"),
    (["efficiency", "--labels", "categorical", "--lr", "-1", "--out", "{out}"], "'optim.lr'"),
    (["efficiency", "--out", "{out}"], "required"),
    # study and report
    (["study", "{tmp}/s/none.yaml", "--out", "{out}"], "does not exist"),
    (["study", "{tmp}/s/empty.yaml", "--out", "{out}"], "is empty"),
    (["study", "{tmp}/s/comments.yaml", "--out", "{out}"], "is empty"),
    (["study", "{tmp}/s/base5.yaml", "--out", "{out}"], "'base' must be a mapping of config keys, got 5"),
    (["study", "{tmp}/s/baselist.yaml", "--out", "{out}"], "'base' must be a mapping"),
    (["study", "{tmp}/s/dup.yaml", "--out", "{out}"], "sets key 'train' twice (lines 2 and 3)"),
    (["study", "{tmp}/s/dotname.yaml"], "study name '.'"),
    (["study", "{tmp}/s/dotdot.yaml"], "study name '..'"),
    (["study", "{tmp}/s/slash.yaml"], "study name 'a/b'"),
    (["study", "{tmp}/s/figure.yaml", "--out", "{out}"], "leaves the run folder"),
    (["study", "{tmp}/s/figabs.yaml", "--out", "{out}"], "leaves the run folder"),
    (["study", "{tmp}/s/figlist.yaml", "--out", "{out}"], "option figure"),
    (["study", "{tmp}/s/cellrange.yaml", "--out", "{out}"], "run optim.lr=-1: config key 'optim.lr'"),
    (["study", "{tmp}/s/cellname.yaml", "--out", "{out}"], "run label=b: unknown label space 'nope'"),
    (["study", "{tmp}/s/cellopt.yaml", "--out", "{out}"], "run model=b: encoder 'fastnet' got a bad option"),
    (["study", "{tmp}/s/celltype.yaml", "--out", "{out}"], "config key 'train.amp'"),
    (["study", "{tmp}/s/baserange.yaml", "--out", "{out}"], "'train.epochs'"),
    (["study", "{tmp}/s/unknowneval.yaml", "--out", "{out}"], "unknown evaluation 'nope'"),
    (["study", "{tmp}/s/evalopt.yaml", "--out", "{out}"], "it accepts"),
    (["study", "{tmp}/s/seeds0.yaml", "--out", "{out}"], "'seeds' must be at least 1"),
    (["study", "{tmp}/s/seedsdup.yaml", "--out", "{out}"], "repeats a seed"),
    (["study", "{tmp}/s/threads0.yaml", "--out", "{out}"], "'threads' must be a positive integer"),
    (["study", "{tmp}/s/unknownkey.yaml", "--out", "{out}"], "unknown study key"),
    (["study", "{tmp}/s/axeslist.yaml", "--out", "{out}"], "'axes' must be a mapping"),
    (["study", "{tmp}/s/axisempty.yaml", "--out", "{out}"], "is empty"),
    (["study", "{tmp}/s/excludeall.yaml", "--out", "{out}"], "no runs left"),
    (["study", "{tmp}/s/seedaxis.yaml", "--out", "{out}"], "conflicts with 'seeds'"),
    (["study", "{tmp}/s/nockpt.yaml", "--out", "{out}"], "checkpoint off"),
    (["study", "{tmp}/s/binary.yaml", "--out", "{out}"], "looks binary"),
    (["study", "{tmp}/s/ok.yaml", "--set", "optim.lr=-1", "--out", "{out}"], "'optim.lr'"),
    (["study", "{tmp}/s/ok.yaml", "--set", "bogus", "--out", "{out}"], "section.key=value"),
    (["study", "{tmp}/s/ok.yaml", "--jobs", "0", "--out", "{out}"], "--jobs: must be a whole number >= 1"),
    (["study", "{tmp}/s/ok.yaml", "--threads", "0", "--out", "{out}"], "--threads: must be a whole number >= 1"),
    (["study", "{tmp}/s/ok.yaml", "--out", "{tmp}/afile.txt"], "cannot create the study folder"),
    (["report", "{tmp}/nowhere"], "does not exist"),
    # labels, data, models
    (["labels", "show", "nope", "-o", "{tmp}/x.png"], "unknown label space 'nope'"),
    (["labels", "show", "speech", "-o", "{tmp}/nowhere/x.png"], "does not exist"),
    (["labels", "show", "random", "-o", "{tmp}/nonempty"], "is a folder"),
    (["labels", "show", "random", "-o", "{tmp}/x.xyz"], "cannot write"),
    (["labels", "show", "random", "--size", "0", "-o", "{tmp}/x.png"], "--size"),
    (["labels", "show", "categorical", "--voice", "paper", "-o", "{tmp}/x.png"], "takes no --voice"),
    (["labels", "export", "random", "-o", "{tmp}/x.txt"], "name it *.npy"),
    (["labels", "export", "random", "-o", "{tmp}/nowhere/x.npy"], "does not exist"),
    (["labels", "export", "random", "--set", "seed=x", "-o", "{tmp}/x.npy"], "cannot be built from the options"),
    (["train", "--label", "random", "--set", "label.options.seed=x", "--out", "{out}"], "cannot be built"),
    (["labels", "stats", "nope"], "unknown label space 'nope'"),
    (["labels", "stats", "random", "--dataset", "svhn9"], "unknown dataset 'svhn9'"),
    (["labels"], "required"),
    (["data", "info", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["data", "info", "--dataset", "cifar10", "--data-dir", "{tmp}/nowhere"], "does not exist"),
    (["data", "info", "--dataset", "cifar10", "--data-dir", "{tmp}/evil"], "not loaded (a pickle can run code)"),
    (["train", "--dataset", "cifar10", "--data-dir", "{tmp}/evil", "--out", "{out}"], "does not match"),
    (["models", "list", "--bogus"], "unrecognized arguments"),
    (["nope"], "invalid choice"),
    ([], "required"),
]

CASES = SCHEMA_CASES + [pytest.param(argv, expect, id=" ".join(argv)[:90]) for argv, expect in HAND_CASES]


@pytest.mark.parametrize("argv, expect", CASES)
def test_bad_input_is_one_sentence_exit_2_nothing_written(place, capsys, argv, expect):
    argv = [fill(a, place) for a in argv]
    before = snapshot(place)
    code, out, err = run_cli(capsys, argv)
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    assert expect in lines[0], lines[0]
    assert snapshot(place) == before  # nothing half-written, nothing removed
    assert not (place / "MARKER").exists()


def test_battery_size():
    assert len(CASES) >= 150


def test_the_crafted_pickle_is_live_but_never_loaded(tmp_path, capsys):
    """The refusal is not luck: the same bytes, unpickled, do create the marker."""
    evil = tmp_path / "cifar-10-batches-py"
    evil.mkdir()
    payload = _evil_pickle(tmp_path / "MARKER")
    (evil / "data_batch_1").write_bytes(payload)
    code, _, err = run_cli(capsys, ["train", "--dataset", "cifar10", "--data-dir", tmp_path, "--out", tmp_path / "r"])
    assert code == 2 and "published md5 checksum" in err and not (tmp_path / "MARKER").exists()
    pickle.loads(payload)  # noqa: S301  (the test's own crafted bytes)
    assert (tmp_path / "MARKER").exists()


def test_known_pickle_passes_its_checksum(tmp_path):
    import hashlib

    from labelrep.data.download import check_pickle
    from labelrep.errors import UserError

    good = tmp_path / "data_batch_1"
    good.write_bytes(pickle.dumps({"data": [1, 2, 3]}))
    digest = hashlib.md5(good.read_bytes()).hexdigest()
    check_pickle(good, "CIFAR-10", {"data_batch_1": digest})
    with pytest.raises(UserError, match="published md5"):
        check_pickle(good, "CIFAR-10", {"data_batch_1": "0" * 32})
    with pytest.raises(UserError, match="not one of"):
        check_pickle(good, "CIFAR-10", {"test_batch": digest})


# --- inputs that must work ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, key, value", [
    (["--lr", "0.00001"], ("optim", "lr"), 1e-5),
    (["--lr", "1e-5"], ("optim", "lr"), 1e-5),
    (["--set", "optim.lr=1e-3"], ("optim", "lr"), 1e-3),
    (["--set", "optim.lr=1e-05"], ("optim", "lr"), 1e-5),
    (["--set", "optim.weight_decay=5E-4"], ("optim", "weight_decay"), 5e-4),
    (["--set", "optim.lr=2"], ("optim", "lr"), 2.0),
    (["--set", "train.ema=9.99e-1"], ("train", "ema"), 0.999),
    (["--set", "optim.milestones=[3e-1, 6E-1]"], ("optim", "milestones"), [0.3, 0.6]),
    (["--set", "data.data_dir=1e-5"], ("data", "data_dir"), "1e-5"),  # a folder name stays a name
])
def test_valid_values_resolve(argv, key, value):
    from labelrep.cli import build_parser
    from labelrep.cli.train import config_from_args

    args = build_parser().parse_args(["train", *argv])
    if key == ("data", "data_dir"):
        args = build_parser().parse_args(["train", "--data-dir", "1e-5"])
    cfg = config_from_args(args)
    assert cfg[key[0]][key[1]] == value and type(cfg[key[0]][key[1]]) is type(value)


def test_scientific_floats_in_a_yaml_file_and_a_real_run(tmp_path, capsys, one_torch_thread):
    cfg = tmp_path / "sci.yaml"
    cfg.write_text("optim:\n  lr: 1e-2\n  weight_decay: 5E-4\n  momentum: 9e-1\ntrain:\n  ema: 9.9e-1\n")
    assert config_mod.load_yaml(cfg) == {"optim": {"lr": 0.01, "weight_decay": 5e-4, "momentum": 0.9},
                                         "train": {"ema": 0.99}}
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, ["train", "--config", cfg, *TINY, "--lr", "0.00001", "--out", out])
    assert code == 0, err
    stored = config_mod.load_yaml(out / "config.yaml")
    assert stored["optim"]["lr"] == 1e-5 and stored["optim"]["weight_decay"] == 5e-4
    assert stored["train"]["ema"] == 0.99


def test_readme_config_table_is_the_schema():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert schema.markdown_table() in readme


def test_help_shows_schema_defaults(capsys):
    code, out, _ = run_cli(capsys, ["train", "--help"])
    assert code == 0
    assert "optim.lr = 0.05" in out and "train.steps = null" in out and "(default 15;" in out


def test_add_section_declares_keys():
    config_mod.add_section("probe_section", {"size": 3, "where": None},
                           {"size": schema.Int(1), "where": schema.Nullable(schema.Text())})
    try:
        assert config_mod.resolve({"probe_section": {"size": 5}})["probe_section"] == {"size": 5, "where": None}
        with pytest.raises(Exception, match=r"config key 'probe_section.size' must be a whole number >= 1, got 0"):
            config_mod.resolve({"probe_section": {"size": 0}})
    finally:
        schema.SCHEMA.pop("probe_section")
        config_mod.DEFAULTS.pop("probe_section")


def test_python_dash_m_labelrep_exits_2(tmp_path):
    """The real exit status, through ``python -m labelrep`` (one process: starting Python and torch is slow)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    bad = subprocess.run([sys.executable, "-m", "labelrep", "train", "--lr", "-1", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "'optim.lr' must be a number > 0, got -1.0" in bad.stderr and not (tmp_path / "r").exists()


# --- run folders --------------------------------------------------------------------------------------

def test_nan_loss_is_on_its_own_line_counts_from_1_and_leaves_nothing(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "nan"
    code, _, err = run_cli(capsys, ["train", "--epochs", "1", "--set", "model.options.widths=[8,8,8]",
                                    "--lr", "1e30", "--set", "optim.momentum=0", "--out", out])
    assert code == 1
    message = err[err.index("labelrep:"):]
    assert message.count("\n") == 1 and "at epoch 1, step" in message and "(both counted from 1)" in message
    assert err.index("labelrep:") == 0 or err[err.index("labelrep:") - 1] in "\r\n"  # not after the bar's text
    assert not out.exists()


def test_any_failure_before_the_first_checkpoint_removes_what_the_run_wrote(tmp_path, capsys, monkeypatch,
                                                                            one_torch_thread):
    from labelrep.train import loop

    def broken(parts, targets, out_dir, resuming, hooks):
        (out_dir / "config.yaml").write_text("half\n")
        raise RuntimeError("a bug, not a user's mistake")

    monkeypatch.setattr(loop, "_train", broken)
    fresh = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError):
        main(["train", *TINY, "--out", str(fresh)])
    assert not (tmp_path / "a").exists()  # every folder it made is gone
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(RuntimeError):
        main(["train", *TINY, "--out", str(mine)])
    assert list(mine.iterdir()) == []  # the user's empty folder is empty again
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(loop, "_train", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        loop.train({"model": {"options": {"widths": [8, 8, 8]}}, "train": {"epochs": 1}}, out=fresh)
    assert not (tmp_path / "a").exists()


def test_a_second_writer_is_refused(tmp_path, capsys, finished_run):
    from labelrep.train.folder import RunFolder

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cfg = config_mod.resolve(config_mod.load_yaml(run / "config.yaml"))
    before = snapshot(run)
    with RunFolder(run, resume=True).open(cfg):
        code, _, err = run_cli(capsys, ["train", *TINY, "--resume", "--out", run])
    assert code == 2 and "another labelrep command is training in" in err and err.count("\n") == 1
    assert snapshot(run) == before  # and the lock file is gone once its holder lets go


def test_resume_may_change_how_not_what(tmp_path, capsys, finished_run, one_torch_thread):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    code, _, err = run_cli(capsys, ["train", *TINY, "--resume", "--out", run, "--device", "cpu",
                                    "--eval-every", "2", "--set", "train.eval_batch_size=64"])
    assert code == 0, err


def test_more_epochs_only_where_the_schedule_allows_and_then_exactly(tmp_path, capsys, one_torch_thread):
    const = ["--quiet", "--set", "model.options.widths=[8,8,8]", "--set", "optim.schedule=constant"]
    assert main(["train", *const, "--epochs", "2", "--out", str(tmp_path / "short")]) == 0
    assert main(["train", *const, "--epochs", "3", "--resume", "--out", str(tmp_path / "short")]) == 0
    assert main(["train", *const, "--epochs", "3", "--out", str(tmp_path / "long")]) == 0
    extended, fresh = ([json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
                       for name in ("short", "long"))
    assert len(extended) == 3
    for a, b in zip(extended, fresh):
        assert a["train_loss"] == b["train_loss"] and a["test_accuracy"] == b["test_accuracy"] and a["lr"] == b["lr"]


KILLER = """
import os, signal, sys, torch
torch.set_num_threads(1)
real_save, calls = torch.save, [0]
def save(obj, f, *args, **kwargs):
    if "checkpoint" in str(f):
        calls[0] += 1
        if calls[0] == 2:  # the second epoch's checkpoint: half written, then SIGKILL
            with open(f, "wb") as handle:
                handle.write(b"PK half a checkpoint")
                handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
from labelrep.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_during_a_checkpoint_write_then_resume(tmp_path, capsys, one_torch_thread):
    args = ["train", "--quiet", "--epochs", "3", "--set", "model.options.widths=[8,8,8]"]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, *args, "--out", str(killed)], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL
    temporaries = [p.name for p in killed.iterdir() if p.name.startswith(".checkpoint.")]
    assert len(temporaries) == 1  # the half-written temporary the kill left
    assert main([*args, "--resume", "--out", str(killed)]) == 0
    assert [p.name for p in killed.iterdir() if p.name.startswith(".")] == []
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    resumed, whole = ([json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
                      for name in ("killed", "whole"))
    assert [r["train_loss"] for r in resumed] == [r["train_loss"] for r in whole]
    assert [r["test_accuracy"] for r in resumed] == [r["test_accuracy"] for r in whole]
    capsys.readouterr()


READ_ONLY = """
import contextlib, io, json, sys
from labelrep.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


def test_read_only_run_folder_is_one_sentence(tmp_path, finished_run):
    """Every command that writes into a run folder, on a read-only one: one sentence each. Root writes
    anywhere, so the commands run in a process without the capabilities that let it (setpriv)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to run without write permission")
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    commands = [["eval", run], ["calibrate", run], ["attack", run, "--max-images", "10"], ["features", run],
                ["report", run], ["labels", "export", "random", "-o", run / "x.npy"],
                ["labels", "show", "random", "-o", run / "x.png"], ["train", *TINY, "--resume", "--out", run]]
    before = snapshot(run)
    os.chmod(run, 0o555)
    try:
        proc = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable,
                               "-c", READ_ONLY, json.dumps([[str(a) for a in c] for c in commands])],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC})
    finally:
        os.chmod(run, 0o755)
    assert proc.returncode == 0, proc.stderr
    for command, (code, err) in zip(commands, json.loads(proc.stdout)):
        assert code == 2 and err.count("\n") == 1 and "cannot write" in err, (command, err)
    assert snapshot(run) == before
