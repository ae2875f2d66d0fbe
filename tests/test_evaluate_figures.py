"""Drawing rows as an evaluation declares: the CLI's figure is the report's; baseline rows start every
curve; metrics that are not curves (masking flags) become notes beside them."""
from __future__ import annotations

import pytest

from labelrep.evaluate.figures import evaluation_figure
from labelrep.evaluate.registry import DRAWINGS, Drawing
from labelrep.evaluate.robustness import DRAWING, masking_gaps, plot_curves, robustness

from evaluate_helpers import digits_result

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def rows():
    rows = robustness(digits_result(), attacks=["fgsm"], eps=[4, 16], max_images=100)
    # the kind of extra rows an evaluation may add: one number per eps that is not a curve
    return rows + [{"metric": "paper_minus_strong", "value": g["gap"], "eps": g["eps"]} for g in masking_gaps(rows)]


def test_rows_become_curves_with_baselines_and_notes(rows):
    assert DRAWINGS["robustness"] is DRAWING
    fig = evaluation_figure(rows, DRAWING, "robustness")
    assert fig.title == "Robustness" and fig.png.startswith(b"\x89PNG")
    headers, lines = fig.numbers
    assert headers == ["protocol · attack · loss", "0", "4", "16"]
    clean = {r["protocol"]: r["value"] for r in rows if r.get("attack") == "none"}
    by_curve = {line[0]: line[1:] for line in lines}
    # every curve starts at its protocol's clean accuracy (the baseline row, at eps 0)
    assert by_curve["paper · fgsm · train"][0] == f"{clean['paper']:.3f}"
    assert by_curve["strong · fgsm · margin"][0] == f"{clean['strong']:.3f}"
    # identical curves are shown once (categorical: the training loss is the CE on scores)
    assert "strong · fgsm · ce" not in by_curve
    fgsm16 = [r["value"] for r in rows if r.get("attack") == "fgsm" and r["loss"] == "train" and r["eps"] == 16.0][0]
    assert by_curve["paper · fgsm · train"][2] == f"{fgsm16:.3f}"
    notes_headers, notes = fig.notes
    assert notes_headers == ["metric", "where", "value"]
    gaps = {g["eps"]: g["gap"] for g in masking_gaps(rows)}
    assert notes == [["paper_minus_strong", f"eps={e}", f"{gaps[e]:.3f}"] for e in (4.0, 16.0)]


def test_the_cli_figure_is_the_report_figure(rows, tmp_path):
    path = plot_curves(rows, tmp_path / "robustness.png", group=None)
    assert path.read_bytes() == evaluation_figure(rows, DRAWING, "robustness").png


def test_rows_without_a_varying_x_are_not_curves(rows):
    clean = [r for r in rows if r.get("attack") == "none"]
    assert evaluation_figure(clean, DRAWING, "robustness") is None
    assert evaluation_figure(rows, Drawing(x="missing"), "x") is None
