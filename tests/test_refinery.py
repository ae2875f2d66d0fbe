"""Labels from a model: teachers of other architectures and label spaces, ensembles of teachers,
teachers on other normalisation, the agreement evaluation, refinery generations in a study resumed
after SIGKILL, the ready study files, and the SVHN source. Digits data and tiny real models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import labelrep
from labelrep import config as config_mod
from labelrep.cli import main
from labelrep.data.download import RESOURCES
from labelrep.data.loader import Normalize
from labelrep.errors import UserError
from labelrep.evaluate import run_evaluation
from labelrep.labels.categorical import CategoricalLabelSpace
from labelrep.labels.regression import RegressionLabelSpace
from labelrep.study import load_study
from labelrep.train import load_run
from labelrep.train.targets import TeacherTargets
from study_helpers import study_killed_in

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"model": {"name": "fastnet", "options": {"widths": [8, 16, 16]}},
        "train": {"epochs": 1, "device": "cpu", "eval_every": 1}}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny(*layers) -> dict:
    return config_mod.resolve(TINY, *layers)


def teacher_target(run, **options) -> dict:
    return {"target": {"name": "teacher", "options": {"run": run, **options}}}


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    """Three teachers on digits: a fastnet, a (narrow) ResNet-20, and a fastnet regressing lowdim labels."""
    root = tmp_path_factory.mktemp("teachers")
    torch.set_num_threads(1)
    two_epochs = {"train": {"epochs": 2}}
    made = {"fast": tiny(two_epochs), "lowdim": tiny(two_epochs, {"label": {"name": "lowdim"}}),
            "resnet": config_mod.resolve({**TINY, "model": {"name": "resnet20", "options": {"width": 4}}}, two_epochs)}
    for name, cfg in made.items():
        labelrep.train(cfg, out=root / name)
    return {name: root / name for name in made}


@pytest.fixture
def seen(monkeypatch):
    """Each teacher call's (x, y, target) and each loss call's target, for both kinds of space."""
    record = {"calls": [], "loss": []}
    call = TeacherTargets.__call__

    def spy_call(self, x, y, idx):
        out = call(self, x, y, idx)
        record["calls"].append((x.clone(), y.clone(), out.clone()))
        return out

    monkeypatch.setattr(TeacherTargets, "__call__", spy_call)
    for cls in (CategoricalLabelSpace, RegressionLabelSpace):
        def spy_loss(self, output, target, _loss=cls.loss):
            record["loss"].append(target.detach().clone())
            return _loss(self, output, target)

        monkeypatch.setattr(cls, "loss", spy_loss)
    return record


def _outputs(run_dir: Path, x: torch.Tensor) -> torch.Tensor:
    teacher = load_run(run_dir)
    with torch.no_grad():
        return teacher.label_space.scores(teacher.model(x))


def test_ensemble_of_two_architectures_on_the_students_augmented_batch(teachers, seen):
    """The target is the mean of a fastnet's and a ResNet-20's softmax at T, mixed with the truth."""
    runs = [str(teachers["fast"]), str(teachers["resnet"])]
    cfg = tiny({"model": {"options": {"widths": [8, 8, 16]}}, "data": {"crop_padding": 2, "flip": True}},
               teacher_target(runs, temperature=2.0, alpha=0.25))
    student = labelrep.train(cfg)
    assert len(seen["calls"]) == len(seen["loss"]) > 3
    for (x, y, target), loss_target in list(zip(seen["calls"], seen["loss"]))[:3]:
        assert torch.equal(loss_target, target)
        each = [torch.softmax(_outputs(run, x) / 2.0, dim=1) for run in runs]
        expected = 0.75 * (each[0] + each[1]) / 2 + 0.25 * torch.eye(10)[y]
        assert torch.allclose(target, expected, atol=1e-6)
        assert not torch.allclose(each[0], each[1], atol=1e-2)  # two teachers that disagree: a real mean
    # the agreement evaluation compares the student with the ensemble's class on the test split
    rows = {r["metric"]: r["value"] for r in run_evaluation("teacher_agreement", student)}
    x = torch.cat([b[0] for b in student.parts.loader(student.parts.data.test)])
    labels = torch.as_tensor(student.parts.data.test.labels)
    with torch.no_grad():
        ensemble = sum(torch.softmax(_outputs(run, x) / 2.0, dim=1) for run in runs).argmax(1)
        mine = student.model(x).argmax(1)
    assert rows["teacher_agreement"] == pytest.approx((mine == ensemble).float().mean().item())
    assert rows["teacher_accuracy"] == pytest.approx((ensemble == labels).float().mean().item())
    assert run_evaluation("teacher_agreement", load_run(teachers["fast"])) == []  # no teacher: no rows


def test_regressed_teachers_teach_across_and_within_label_spaces(teachers, seen):
    low = str(teachers["lowdim"])
    labelrep.train(tiny(teacher_target(low, temperature=3.0)))  # categorical student of a lowdim teacher
    x, _, target = seen["calls"][0]
    assert torch.allclose(target, torch.softmax(_outputs(teachers["lowdim"], x) / 3.0, dim=1), atol=1e-6)
    seen["calls"].clear()
    labelrep.train(tiny({"label": {"name": "lowdim"}}, teacher_target(low)))  # same space: the raw output
    x, _, target = seen["calls"][0]
    teacher = load_run(teachers["lowdim"])
    with torch.no_grad():
        assert torch.allclose(target, teacher.model(x), atol=1e-5)  # eval mode folds batch norm: rounding
    assert target.shape == (len(x), 10) and not torch.allclose(target.sum(1), torch.ones(len(x)))  # no softmax


@pytest.mark.parametrize("layers, message", [
    ([{"label": {"name": "lowdim"}}, teacher_target("fast")], "same label space"),
    ([{"label": {"name": "lowdim", "options": {"seed": 3}}}, teacher_target("lowdim")], "same table"),
    ([{"label": {"name": "lowdim"}}, teacher_target("lowdim", temperature=2.0)], "no meaning"),
    ([teacher_target([])], "list of run folders"),
])
def test_teachers_without_a_meaning_are_refused(teachers, layers, message):
    opts = layers[-1]["target"]["options"]
    if opts["run"]:
        opts["run"] = str(teachers[opts["run"]])
    with pytest.raises(UserError, match=message):
        labelrep.train(tiny(*layers))


def test_teacher_on_other_statistics_gets_its_own_normalisation(cifar_tiny, tmp_path, seen):
    """A teacher trained on another image folder of the same classes (here: darker copies, so other
    mean and std) sees the student's batch in its own normalisation."""
    from PIL import Image

    dark = tmp_path / "dark"
    for split in ("train", "test"):
        for folder in sorted((cifar_tiny / split).iterdir()):
            (dark / split / folder.name).mkdir(parents=True)
            for file in sorted(folder.iterdir()):
                with Image.open(file) as img:
                    img.point(lambda v: v // 2).save(dark / split / folder.name / f"{file.stem}.png")
    data = {"dataset": "imagefolder", "crop_padding": 2}
    labelrep.train(tiny({"data": {**data, "data_dir": str(dark)}, "optim": {"batch_size": 50},
                         "train": {"epochs": 3}}), out=tmp_path / "teacher")
    student = labelrep.train(tiny({"data": {**data, "data_dir": str(cifar_tiny)}},
                                  teacher_target(str(tmp_path / "teacher"))))
    teacher = load_run(tmp_path / "teacher")
    mine, theirs = student.parts.normalize, teacher.parts.normalize
    x, _, target = seen["calls"][0]
    pixels = (x - mine.shift) / mine.scale  # back to [0, 255], then the teacher's own statistics
    with torch.no_grad():
        expected = torch.softmax(teacher.model(Normalize.__call__(theirs, pixels)), dim=1)
        unconverted = torch.softmax(teacher.model(x), dim=1)
    assert torch.allclose(target, expected, atol=1e-5)
    assert (target - unconverted).abs().max() > 0.01


# --- generations in a study ----------------------------------------------------------------------

STUDY_BASE = {"data": {"dataset": "digits"}, "model": {"name": "fastnet", "options": {"widths": [8, 16]}},
              "optim": {"batch_size": 64}, "train": {"device": "cpu", "epochs": 4}}


def _generation(parent, **options) -> dict:
    return teacher_target(parent if isinstance(parent, list) else {"study_run": {"generation": parent}}, **options)


def test_three_generations_killed_mid_r2_resume_to_identical_numbers(tmp_path):
    """R1 -> R2 (teacher in the official train mode) -> R3, SIGKILLed inside R2 and resumed."""
    axes = {"generation": {"R1": {}, "R2": _generation("R1", mode="train"), "R3": _generation("R2")}}
    file = tmp_path / "gens.yaml"
    file.write_text(yaml.safe_dump({"name": "gens", "base": STUDY_BASE, "axes": axes, "seeds": 1,
                                    "evaluations": ["accuracy", "teacher_agreement"]}))
    r1, r2, r3 = load_study(file).runs
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    child = killed / "runs" / r2.id
    epochs_at_kill = study_killed_in(child, ["study", str(file), "--out", str(killed), "--quiet", "--threads", "1"],
                                     epochs=1)
    assert 1 <= epochs_at_kill < 4 and not (killed / "runs" / r3.id / "config.yaml").exists()

    assert main(["study", str(file), "--out", str(killed), "--quiet", "--threads", "1"]) == 0
    assert main(["study", str(file), "--out", str(reference), "--quiet", "--threads", "1"]) == 0
    assert (killed / "results.csv").read_text() == (reference / "results.csv").read_text()
    rows = [json.loads(line) for line in (killed / "results.jsonl").read_text().splitlines()]
    agreement = {r["generation"]: r["value"] for r in rows if r["metric"] == "teacher_agreement"}
    accuracy = {r["generation"]: r["value"] for r in rows if r["evaluation"] == "accuracy"}
    assert sorted(agreement) == ["R2", "R3"] and min(agreement.values()) > 0.5  # R1 has no teacher
    assert min(accuracy.values()) > 0.8 and accuracy["R2"] != accuracy["R1"]  # learnt, from a teacher
    summary = (killed / "summary.csv").read_text()
    assert "teacher_agreement" in summary


def test_born_again_ensemble_of_all_earlier_generations_resolves_to_their_folders():
    axes = {"generation": {"G1": {}, "G2": _generation("G1"),
                           "G3": _generation([{"study_run": {"generation": "G1"}},
                                              {"study_run": {"generation": "G2"}}])}}
    from labelrep.study import parse_study

    g1, g2, g3 = parse_study({"base": STUDY_BASE, "axes": axes}).runs
    assert g3.parents == [g1.id, g2.id]
    cfg = g3.config_in(lambda run: f"/study/runs/{run}")
    assert cfg["target"]["options"]["run"] == [f"/study/runs/{g1.id}", f"/study/runs/{g2.id}"]


@pytest.mark.parametrize("file", sorted(p.name for p in CONFIGS.glob("*.yaml")
                                        if p.name.startswith(("refinery-", "born-again", "distill-"))))
def test_ready_study_files_parse_and_chain_their_runs(file):
    study = load_study(CONFIGS / file)
    children = [r for r in study.runs if r.parents]
    assert children and all(r.config["target"]["name"] == "teacher" for r in children)
    assert any(ev.name == "teacher_agreement" for ev in study.evaluations)
    by_id = {r.id: r for r in study.runs}
    for run in children:  # a parent is the same seed's run
        assert all(by_id[p].cell["seed"] == run.cell["seed"] for p in run.parents)


# --- SVHN ------------------------------------------------------------------------------------------

def _write_svhn(folder: Path, name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 1..10, 10 meaning the digit 0
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": x, "y": y})
    return x, y


def test_svhn_reads_the_mat_files_label_10_is_0(tmp_path, monkeypatch):
    x, y = _write_svhn(tmp_path / "svhn", "train_32x32.mat", 40, 0)
    _write_svhn(tmp_path / "svhn", "test_32x32.mat", 12, 1)

    def no_download(*args, **kwargs):
        raise AssertionError("fetched without --download")

    monkeypatch.setattr("labelrep.data.svhn.fetch", no_download)
    data = labelrep.load_dataset("svhn", tmp_path)
    assert data.classes == [str(i) for i in range(10)] and (data.in_chans, data.image_size) == (3, 32)
    assert data.train.images.shape == (40, 3, 32, 32) and len(data.test) == 12
    assert np.array_equal(data.train.images[5], x[..., 5].transpose(2, 0, 1))  # HWC of image 5 -> CHW
    assert np.array_equal(data.train.labels, np.where(y[:, 0] == 10, 0, y[:, 0]))
    assert 0 in data.train.labels and data.train.labels.max() <= 9
    with pytest.raises(UserError, match="extra_32x32.mat not found.*--download"):
        labelrep.load_dataset("svhn", tmp_path, extra=True)
    _write_svhn(tmp_path / "svhn", "extra_32x32.mat", 8, 2)
    assert len(labelrep.load_dataset("svhn", tmp_path, extra=True).train) == 48
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="not a readable SVHN"):
        labelrep.load_dataset("svhn", tmp_path)


def test_svhn_downloads_only_when_allowed_with_the_published_md5(tmp_path, monkeypatch):
    assert RESOURCES["train_32x32.mat"][1] == "md5:e26dedcc434d2e4c54c9b2d4a06d8373"
    assert RESOURCES["test_32x32.mat"][1] == "md5:eb5a983be6a315427106f1b164d9cef3"
    assert RESOURCES["extra_32x32.mat"][1] == "md5:a93ce644f1a588dc4d68dda5feec44a7"
    with pytest.raises(UserError, match="pass --download"):
        labelrep.load_dataset("svhn", tmp_path)
    fetched = []

    def fetch(name, directory):  # the network stays out of tests: write what the server would send
        fetched.append(name)
        _write_svhn(Path(directory), name, 6, len(fetched))
        return Path(directory) / name

    monkeypatch.setattr("labelrep.data.svhn.fetch", fetch)
    data = labelrep.load_dataset("svhn", tmp_path, download=True)
    assert fetched == ["train_32x32.mat", "test_32x32.mat"] and len(data.train) == 6
    run = labelrep.train(tiny({"data": {"dataset": "svhn", "data_dir": str(tmp_path)}}))
    assert run.summary["train_images"] == 6 and run.parts.data.augment["flip"] is False
