"""Multi-label label space and metrics: smoothing values (timm's), masked entries out of loss and AP,
class-wise AP against a hand-computed case and scikit-learn's macro AP, PR curves, predictions CSV,
five/ten-crop scoring."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelrep.errors import UserError
from labelrep.evaluate import multilabel as ml
from labelrep.labels import create_label_space

CLASSES = [f"c{i}" for i in range(5)]


def test_scheme_1_equals_timm_binary_cross_entropy_smoothing():
    space = create_label_space("multihot", CLASSES, alpha=0.1, scheme=1)
    y = torch.tensor([0, 3, 4, 1])
    hard = torch.eye(5)[y]
    torch.testing.assert_close(space.smoothed(hard)[0], torch.tensor([0.92, 0.02, 0.02, 0.02, 0.02]))
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)) * 3
    try:
        from timm.loss import BinaryCrossEntropy
    except ImportError:  # the same values by formula
        expected = F.binary_cross_entropy_with_logits(logits, hard * 0.9 + 0.02)
    else:
        expected = BinaryCrossEntropy(smoothing=0.1)(logits, y)
    torch.testing.assert_close(space.loss(logits, hard), expected)


def test_scheme_2_and_no_smoothing():
    hard = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]])
    two = create_label_space("multihot", CLASSES, alpha=0.1, scheme=2)
    torch.testing.assert_close(two.smoothed(hard), torch.tensor([[0.9, 0.0, 0.9, 0.0, 0.0]]))
    none = create_label_space("multihot", CLASSES)
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0, -3.0]])
    torch.testing.assert_close(none.loss(logits, hard), F.binary_cross_entropy_with_logits(logits, hard))
    with pytest.raises(UserError, match="scheme must be 1"):
        create_label_space("multihot", CLASSES, alpha=0.1, scheme=3)


def test_difficult_entries_change_neither_loss_nor_gradient():
    space = create_label_space("multihot", CLASSES, alpha=0.1, scheme=1)
    target = torch.tensor([[1.0, float("nan"), 0.0, 0.0, 1.0], [0.0, 0.0, float("nan"), 1.0, 0.0]])
    logits = torch.randn(2, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    loss = space.loss(logits, target)
    loss.backward()
    keep = ~torch.isnan(target)
    # the mean BCE over the 8 entries that count, smoothed as scheme 1 smooths
    expected = F.binary_cross_entropy_with_logits(logits.detach()[keep], (target[keep] * 0.9 + 0.02))
    torch.testing.assert_close(loss.detach(), expected)
    assert logits.grad[~keep].abs().max() == 0 and logits.grad[keep].abs().min() > 0
    moved = logits.detach().clone()
    moved[~keep] = torch.tensor([50.0, -50.0])
    torch.testing.assert_close(space.loss(moved, target), loss.detach())


def test_multihot_decides_by_threshold_and_refuses_class_ids():
    space = create_label_space("multihot", CLASSES, threshold=0.7)
    logits = torch.tensor([[3.0, 0.5, 1.0, -2.0, 0.9]])  # sigmoid: .95 .62 .73 .12 .71
    assert space.multi_label
    assert space.predict(logits).tolist() == [[True, False, True, False, True]]
    with pytest.raises(UserError, match="per_image"):
        space.targets(torch.tensor([0]))
    with pytest.raises(UserError, match="assumes one class per image"):
        space.require_single_label("calibration")
    create_label_space("categorical", CLASSES).require_single_label("calibration")  # single-label: fine


def test_average_precision_by_hand_and_voc_interpolation():
    # class 0: ranks + - + -: P@1 = 1 (R .5), P@3 = 2/3 (R 1) -> AP = .5 + .5 * 2/3
    # class 1: ranks - + + : P@2 = 1/2 (R .5), P@3 = 2/3 (R 1) -> AP = .25 + 1/3; VOC envelope 2/3 -> 2/3
    scores = np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.6, 0.1]])
    targets = np.array([[1, 0], [0, 1], [1, 1], [0, np.nan]])
    np.testing.assert_allclose(ml.class_average_precision(scores, targets), [0.5 + 1 / 3, 0.25 + 1 / 3])
    np.testing.assert_allclose(ml.voc_average_precision(scores, targets), [0.5 + 1 / 3, 2 / 3])
    rows = {r["metric"]: r["value"] for r in ml.metric_rows(scores, targets, ["a", "b"]) if "class" not in r}
    assert rows["map"] == pytest.approx((0.5 + 1 / 3 + 0.25 + 1 / 3) / 2)
    assert rows["map_voc"] == pytest.approx((0.5 + 1 / 3 + 2 / 3) / 2)


def test_map_matches_scikit_learn_and_torchmetrics_macro_ap():
    from sklearn.metrics import average_precision_score
    from torchmetrics.functional.classification import multilabel_average_precision

    rng = np.random.default_rng(0)
    targets = (rng.random((200, 6)) < 0.3).astype(float)
    scores = targets * 0.8 + rng.normal(size=targets.shape)
    ours = float(np.mean(ml.class_average_precision(scores, targets)))
    assert ours == pytest.approx(average_precision_score(targets, scores, average="macro"), abs=1e-12)
    tm = multilabel_average_precision(torch.tensor(scores), torch.tensor(targets).long(), num_labels=6,
                                      average="macro", thresholds=None)
    assert ours == pytest.approx(float(tm), abs=1e-6)
    # the seed's per-image mean is another number, under its own name
    assert abs(ml.per_image_ap_mean(scores, targets) - ours) > 0.01


def test_difficult_entries_do_not_change_ap():
    rng = np.random.default_rng(1)
    targets = (rng.random((100, 4)) < 0.4).astype(float)
    scores = targets + rng.normal(size=targets.shape)
    difficult = rng.random(targets.shape) < 0.15
    masked = np.where(difficult, np.nan, targets)
    ap = ml.class_average_precision(scores, masked)
    shuffled = scores.copy()
    shuffled[difficult] = rng.normal(size=difficult.sum()) * 10  # whatever the model says there
    np.testing.assert_allclose(ml.class_average_precision(shuffled, masked), ap)
    np.testing.assert_allclose(ml.voc_average_precision(shuffled, masked), ml.voc_average_precision(scores, masked))
    # the same as removing those images class by class
    for c in range(4):
        keep = ~difficult[:, c]
        sub = ml.class_average_precision(scores[keep, c:c + 1], targets[keep, c:c + 1])
        assert sub[0] == pytest.approx(ap[c])
    # counting them as negatives (the seed's mistake) gives other numbers
    as_negative = np.where(difficult, 0.0, targets)
    assert not np.allclose(ml.class_average_precision(shuffled, as_negative), ap)


def test_f1_at_threshold_skips_masked_entries():
    decisions = np.array([[1, 0], [1, 1], [0, 1]], dtype=bool)
    targets = np.array([[1, np.nan], [0, 1], [1, 0]])
    macro, micro = ml.f1_scores(decisions, targets)
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 1 fp 1 fn 0 -> 2/3; micro: tp 2 fp 2 fn 1 -> 4/7
    assert macro == pytest.approx((0.5 + 2 / 3) / 2) and micro == pytest.approx(4 / 7)


def test_predictions_csv_round_trip_and_pr_figure(tmp_path):
    scores = np.array([[0.5, -1.25], [2.0, 0.125], [-0.75, 3.0]])
    targets = np.array([[1, 0], [np.nan, 1], [0, 1]])
    path = tmp_path / "pred.csv"
    path.write_text(ml.predictions_csv(["cat", "dog"], scores, targets, [7, 8, 9]))
    classes, s, t, images = ml.read_predictions(path)
    assert classes == ["cat", "dog"] and images.tolist() == [7, 8, 9]
    np.testing.assert_allclose(s, scores)
    np.testing.assert_array_equal(t, targets)
    png = ml.plot_pr_curves(s, t, classes, tmp_path / "pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    curves = ml.interpolated_precision(scores, targets)
    assert curves.shape == (2, 11) and np.all(np.diff(curves, axis=1) <= 1e-12)  # an envelope falls
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="not a predictions file"):
        ml.read_predictions(tmp_path / "bad.csv")


def test_five_and_ten_crops_average_scores_over_resized_crops():
    from torchvision.transforms.v2 import functional as TF

    from labelrep.data import DeviceLoader, Normalize
    from labelrep.evaluate.accuracy import predict_scores
    from labelrep.evaluate.test_time import predict_scores_crops
    from labelrep.models import create_model

    torch.manual_seed(0)
    space = create_label_space("multihot", CLASSES)
    model = create_model("fastnet", space, 3, 16, widths=[8, 8, 8]).eval()
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    loader = DeviceLoader(images, torch.zeros(6, dtype=torch.long), 4, Normalize([0.5] * 3, [0.25] * 3))
    torch.testing.assert_close(predict_scores_crops(model, space, loader, "none"), predict_scores(model, space, loader))
    x = torch.cat([b for b, _, _ in loader])
    big = TF.resize(x, [18, 18], antialias=True)  # 16 * 8 / 7 rounds to 18
    with torch.no_grad():
        five = torch.stack([model(v) for v in TF.five_crop(big, [16, 16])]).mean(0)
        ten = torch.stack([model(v) for v in TF.ten_crop(big, [16, 16])]).mean(0)
    torch.testing.assert_close(predict_scores_crops(model, space, loader, "five"), five)
    torch.testing.assert_close(predict_scores_crops(model, space, loader, "ten"), ten)
    assert not torch.allclose(five, ten)
    with pytest.raises(UserError, match="resize of at least"):
        predict_scores_crops(model, space, loader, "five", resize=12, crop=16)
    assert math.isfinite(float(five.sum()))
