"""The report's page: a self-contained HTML file (figures embedded as PNG) and a markdown summary."""
from __future__ import annotations

import base64
import html

from ..evaluate.figures import format_stat
from .collect import StudyData
from .runner import FAILED
from .tables import SummaryTable


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;margin:0;
color:#1d2330;background:#f6f7f9;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid #d9dde3}
.sub{color:#5a6372;margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 16px;min-width:110px}
.card b{display:block;font-size:22px}.card span{color:#5a6372;font-size:13px}
.card.bad b{color:#b42318}
table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e8;font-size:13.5px;margin:8px 0}
th,td{padding:6px 12px;border-bottom:1px solid #eef0f3;text-align:left;white-space:nowrap}
th{background:#f0f2f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{font-weight:700}
tr:last-child td{border-bottom:none}
figure{background:#fff;border:1px solid #e1e4e8;border-radius:8px;margin:14px 0;padding:12px}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{color:#5a6372;font-size:13px;margin-top:6px}
.err{color:#b42318;font-family:ui-monospace,Menlo,monospace;font-size:12.5px;white-space:normal}
code{background:#eef0f3;padding:1px 5px;border-radius:4px;font-size:12.5px}
.scroll{overflow-x:auto}
.muted{color:#5a6372;font-size:13px}
.pics{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.pics figure{margin:0}.pics.wide{grid-template-columns:1fr}
summary{cursor:pointer;color:#30394a;font-size:14px;margin:6px 0}
"""


def _html_table(headers, rows, numeric_from: int, best: list[int | None] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        tds = []
        for j, v in enumerate(row):
            cls = "num" if j >= numeric_from else ""
            if best and j >= numeric_from and best[j - numeric_from] == i:
                cls += " best"
            tds.append(f'<td class="{cls.strip()}">{html.escape(str(v))}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _best_rows(table: SummaryTable, n_axes: int) -> list[int | None]:
    """Per accuracy column, the row with the highest mean (losses of different label spaces do not compare)."""
    best = []
    for j, key in enumerate(table.keys):
        means = [(line[n_axes + j][0], i) for i, line in enumerate(table.cells) if line[n_axes + j] is not None]
        best.append(max(means)[1] if len(means) > 1 and "accuracy" in key[1] else None)
    return best


def _label_name(stats: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in sorted(stats.get("options", {}).items()))
    return stats["label"] + (f" ({options})" if options else "")


def _label_rows(data: StudyData) -> tuple[list[str], list[list]]:
    datasets = {s["dataset"] for s in data.labels.values()}
    headers = ["label", "shape", *(["dataset"] if len(datasets) > 1 else []), "entropy (bits)", "mean L1",
               "mean L2", "values"]
    rows = [[_label_name(s), "x".join(map(str, s["shape"])), *([s["dataset"]] if len(datasets) > 1 else []),
             f"{s['entropy']:.3f}", f"{s['l1']:.4f}", f"{s['l2']:.4f}", f"[{s['min']:.3g}, {s['max']:.3g}]"]
            for s in data.labels.values()]
    return headers, rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pictures(data: StudyData, evaluation: str) -> list[dict]:
    mine = [im for im in data.images if im["evaluation"] == evaluation]
    first = min(im["cell"].get("seed", 0) for im in mine)
    return [im for im in mine if im["cell"].get("seed", 0) == first][:12]


def render(data: StudyData, table: SummaryTable, figures, files: list[str]) -> tuple[str, str]:
    """The HTML page and the markdown summary."""
    n_axes = len(data.axis_names)
    counts = {s: sum(r["status"] == s for r in data.runs) for s in ("done", "failed", "running", "pending")}
    seeds = sorted({r["cell"].get("seed") for r in data.runs if r["cell"].get("seed") is not None})
    text_rows = [[*line[:n_axes], *(format_stat(s) for s in line[n_axes:])] for line in table.cells]
    ci_note = (f"Mean ± 95 % confidence interval (Student t) over {len(seeds)} seeds; "
               "the best accuracy of each column is bold." if len(seeds) > 1 else
               "One seed per cell, so no confidence interval; the best accuracy of each column is bold.")
    grid = "; ".join(f"{a['name']}: {', '.join(map(str, a['values']))}" for a in data.axes) or "a single run"
    evals = ", ".join(e["name"] for e in data.evaluations) or "none (training numbers only)"

    h = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(data.name)} — labelrep study</title>"
         f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head><body><main>"]
    h.append(f"<h1>{html.escape(data.name)}</h1>")
    if data.description:
        h.append(f"<p class='sub'>{html.escape(data.description)}</p>")
    h.append("<div class='cards'>")
    h.append(f"<div class='card'><b>{len(data.runs)}</b><span>runs</span></div>")
    h.append(f"<div class='card'><b>{counts['done']}</b><span>done</span></div>")
    if counts["failed"]:
        h.append(f"<div class='card bad'><b>{counts['failed']}</b><span>failed</span></div>")
    if counts["running"] + counts["pending"]:
        h.append(f"<div class='card'><b>{counts['running'] + counts['pending']}</b><span>not finished</span></div>")
    h.append(f"<div class='card'><b>{len(seeds) or 1}</b><span>seeds per cell</span></div></div>")
    h.append(f"<p class='muted'><b>Grid</b>: {html.escape(grid)}. <b>Evaluations</b>: {html.escape(evals)}.</p>")

    h.append("<h2>Results</h2>")
    if table.cells:
        h.append(f"<p class='muted'>{ci_note}</p>")
        h.append(_html_table(table.headers, text_rows, n_axes, _best_rows(table, n_axes)))
    else:
        h.append("<p class='muted'>No run has finished yet.</p>")
    failed = [r for r in data.runs if r["status"] == FAILED]
    if failed:
        h.append("<h2>Failed runs</h2>")
        h.append(_html_table(["run", *data.axis_names, "seed", "error"],
                             [[r["id"], *(r["cell"].get(a) for a in data.axis_names), r["cell"].get("seed"),
                               r["error"] or ""] for r in failed], 99))
        h.append("<p class='muted'>The traceback is in <code>runs/&lt;run&gt;/error.txt</code>; "
                 "<code>labelrep study FILE --retry-failed</code> runs them again.</p>")
    for f in figures:
        h.append(f"<h2>{html.escape(f.title)}</h2><figure><img alt='{html.escape(f.title)}' "
                 f"src='data:image/png;base64,{base64.b64encode(f.png).decode()}'>"
                 f"<figcaption>{html.escape(f.caption)}</figcaption>")
        if f.notes:
            h.append("<p class='muted'>The evaluation's other numbers (mean ± 95 % CI over seeds):</p>"
                     + _html_table(f.notes[0], f.notes[1], 2))
        if f.numbers:
            numbers = f.numbers
            first_number = len(numbers[0]) - len(numbers[1][0]) + sum(
                1 for hd in numbers[0] if not _is_number(hd))  # the x columns come last
            h.append("<details><summary>The numbers (mean ± 95 % CI over seeds)</summary>"
                     + _html_table(numbers[0], numbers[1], first_number) + "</details>")
        h.append("</figure>")
    if data.labels:
        h.append("<h2>Label statistics</h2><p class='muted'>Of each label table the runs trained on: Shannon entropy "
                 "(bits, of each class label's histogram of values, mean over classes) and the mean entrywise L1 and L2 "
                 "distances between class labels after min-max scaling the table to [0, 1] (per entry, so sizes "
                 "compare).</p>")
        headers, rows = _label_rows(data)
        h.append(_html_table(headers, rows, headers.index("entropy (bits)")))
        pictures = [s for s in data.labels.values() if s.get("png")]
        if pictures:
            h.append("<div class='pics wide'>")
            for st in pictures:
                h.append(f"<figure><img alt='{html.escape(st['label'])} labels' "
                         f"src='data:image/png;base64,{base64.b64encode(st['png']).decode()}'>"
                         f"<figcaption>{html.escape(_label_name(st))}</figcaption></figure>")
            h.append("</div>")
    for name in dict.fromkeys(im["evaluation"] for im in data.images):
        shown = _pictures(data, name)
        h.append(f"<h2>Figures of evaluation '{html.escape(name)}'</h2>")
        h.append(f"<p class='muted'>As the evaluation drew them, one per run (seed {shown[0]['cell'].get('seed')}"
                 f"{', the first 12 runs' if len(shown) == 12 else ''}).</p><div class='pics'>")
        for im in shown:
            cell = ", ".join(f"{k} = {v}" for k, v in im["cell"].items() if k != "seed")
            h.append(f"<figure><img alt='{html.escape(name)} {html.escape(cell)}' "
                     f"src='data:image/png;base64,{base64.b64encode(im['png']).decode()}'>"
                     f"<figcaption>{html.escape(cell or im['run'])}</figcaption></figure>")
        h.append("</div>")
    h.append(f"<h2>Runs</h2><details><summary>{len(data.runs)} runs: cell, status, size and time of each "
             "(click to open)</summary>")
    run_rows = [[r["id"], *(r["cell"].get(a) for a in data.axis_names), r["cell"].get("seed"), r["status"],
                 r["epochs"] if r["epochs"] is not None else "-",
                 r["train_images"] if r["train_images"] is not None else "-",
                 f"{r['train_seconds']:.1f}" if r.get("train_seconds") is not None else "-",
                 f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"] for r in data.runs]
    h.append(_html_table(["run", *data.axis_names, "seed", "status", "epochs", "train images", "training s",
                          "last attempt s"],
                         run_rows, n_axes + 4))
    h.append("</details>")
    h.append(f"<p class='muted'>Files beside this page: {', '.join(f'<code>{f}</code>' for f in files)}; "
             "each run's folder is <code>runs/&lt;run&gt;</code> (its id is a hash of its resolved config). "
             "Rebuild this page with <code>labelrep report &lt;folder&gt;</code>.</p>")
    h.append("</main></body></html>")

    md = [f"# {data.name}", ""]
    if data.description:
        md += [data.description, ""]
    md += [f"{len(data.runs)} runs: {counts['done']} done, {counts['failed']} failed, "
           f"{counts['running'] + counts['pending']} not finished. Grid: {grid}. Evaluations: {evals}.", ""]
    if table.cells:
        md += [ci_note.replace("; the best accuracy of each column is bold", "").rstrip(".") + ".", ""]
        md.append("| " + " | ".join(table.headers) + " |")
        md.append("|" + "|".join("---" if j < n_axes else "---:" for j in range(len(table.headers))) + "|")
        md += ["| " + " | ".join(map(str, row)) + " |" for row in text_rows]
        md.append("")
    for f in figures:
        md += [f"## {f.title}", "", f"![{f.title}](figures/{f.name})", "", f.caption, ""]
        for table_ in (f.notes, f.numbers):
            if table_:
                md += ["| " + " | ".join(table_[0]) + " |", "|" + "---|" * len(table_[0])]
                md += ["| " + " | ".join(row) + " |" for row in table_[1]] + [""]
    if data.labels:
        headers, rows = _label_rows(data)
        md += ["## Label statistics", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        md += ["| " + " | ".join(r) + " |" for r in rows]
        md.append("")
    for name in dict.fromkeys(im["evaluation"] for im in data.images):
        md += [f"## Figures of evaluation '{name}'", ""]
        for im in _pictures(data, name):
            cell = ", ".join(f"{k} = {v}" for k, v in im["cell"].items() if k != "seed")
            md += [f"![{cell}]({im['file']})", ""]
    if failed:
        md += ["## Failed runs", ""]
        md += [f"- `{r['id']}` ({', '.join(f'{k}={v}' for k, v in r['cell'].items())}): {r['error']}" for r in failed]
        md.append("")
    return "".join(h), "\n".join(md)
