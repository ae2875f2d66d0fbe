"""``labelrep study FILE`` and ``labelrep report DIR``."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import config as config_mod
from .common import ProgressHooks, table, whole


def register(sub) -> None:
    p = sub.add_parser("study", help="run a grid of runs from a study file, then write its report",
                       description="Run every run of a study file that is not done yet (finished runs are "
                                   "skipped, a cut-off run resumes from its last epoch), then write the report.")
    p.add_argument("file", help="study file (YAML: base, axes, seeds, evaluations); see configs/")
    p.add_argument("--out", help="study folder (default runs/<study name>)")
    p.add_argument("--jobs", type=whole(1), default=1, help="runs in parallel, one process each (default 1)")
    p.add_argument("--threads", type=whole(1), help="torch CPU threads per run (default: the study file's 'threads', "
                                              "else all cores, or cores / jobs; 1 suits small models)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--dry-run", action="store_true", help="list the runs and estimate their cost; run nothing")
    p.add_argument("--no-measure", action="store_true",
                   help="with --dry-run: count steps only, do not time a few training steps per model")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the study's base config, e.g. --set train.device=cpu (repeatable)")
    p.add_argument("--data-dir", help="folder holding the data (not part of a run's identity)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_study_command)

    r = sub.add_parser("report", help="rebuild the report of a study (or run) folder from disk",
                       description="Rebuild results.csv, summary.csv, report.html and report.md from what is on disk.")
    r.add_argument("folder", help="study folder (made by labelrep study) or run folder")
    r.set_defaults(handler=run_report_command)


def _merge(base: dict, layer: dict) -> dict:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "options":
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def load(args):
    from ..study import parse_study

    from ..errors import UserError
    from ..study.spec import _nest

    data = config_mod.load_yaml(args.file)
    if not data:
        raise UserError(f"study file {args.file} is empty; give it at least 'base' or 'axes' (see configs/quick.yaml)")
    base = data.get("base")
    base = _nest(base, "'base'") if base is not None else {}
    layer = config_mod.parse_overrides(args.set)
    if args.data_dir:
        layer.setdefault("data", {})["data_dir"] = args.data_dir
    data = {**data, "base": _merge(base, layer)}
    return parse_study(data, default_name=Path(args.file).stem)


def _cell_text(cell: dict) -> str:
    return "  ".join(f"{k}={v}" for k, v in cell.items())


def run_study_command(args) -> int:
    from ..study import estimate, run_study, write_report
    from ..study.runner import format_seconds, run_folder

    study = load(args)
    out = Path(args.out) if args.out else Path("runs") / study.name
    if args.dry_run:
        return _dry_run(study, out, args, estimate, format_seconds)

    total = len(study.runs)
    done, skipped = [0], [0]
    width = len(str(total))
    started = time.perf_counter()

    def on_event(kind, run, status):
        if kind == "start":
            if args.jobs > 1:
                print(f"[{'':>{width}}/{total}] start   {_cell_text(run.cell)}", flush=True)
            return
        done[0] += 1
        state = status.get("status")
        if kind == "skip":
            if state == "failed":
                print(f"[{done[0]:>{width}}/{total}] {_cell_text(run.cell)}: failed before, skipped "
                      f"(--retry-failed runs it): {status.get('error', '')}", flush=True)
            else:
                skipped[0] += 1
            return
        if skipped[0]:
            print(f"{skipped[0]} run{'s' if skipped[0] > 1 else ''} done before: skipped", flush=True)
            skipped[0] = 0
        summary_file = run_folder(out, run) / "summary.json"
        if state == "done":
            acc = json.loads(summary_file.read_text()).get("test_accuracy") if summary_file.is_file() else None
            detail = (f"test accuracy {acc:.4f}, " if acc is not None else "") + f"{status.get('seconds', 0):.1f} s"
        else:
            detail = status.get("error", "")
        print(f"[{done[0]:>{width}}/{total}] {_cell_text(run.cell)}: {state} ({detail})", flush=True)

    print(f"study {study.name}: {total} runs -> {out}", flush=True)
    try:
        outcome = run_study(study, out, jobs=args.jobs, retry_failed=args.retry_failed, on_event=on_event,
                            hooks_factory=lambda run: ProgressHooks(args.quiet),
                            threads=args.threads or study.threads)
    except KeyboardInterrupt:
        print("labelrep: interrupted; run the same command again to continue (finished runs are kept, "
              "the cut-off run resumes from its last finished epoch)", file=sys.stderr)
        return 130
    if skipped[0]:
        print(f"{skipped[0]} run{'s' if skipped[0] > 1 else ''} done before: skipped", flush=True)
    report = write_report(out)
    print_summary(report)
    failed = outcome.count("failed")
    print(f"\n{outcome.count('done')} done, {failed} failed in {format_seconds(time.perf_counter() - started)}; "
          f"report: {out / 'report.html'}")
    return 1 if failed else 0


def _dry_run(study, out, args, estimate, format_seconds) -> int:
    rows = estimate(study, out, measure=not args.no_measure)
    axes = study.axis_names
    headers = ["run", *axes, "status", "epochs", "train images", "steps"] + ([] if args.no_measure else ["estimate"])
    lines = [[r["id"], *(str(r[a]) for a in axes), r["status"], r["epochs"], r["train_images"], r["steps"]]
             + ([] if args.no_measure else [format_seconds(r["seconds"])]) for r in rows]
    print(table(headers, lines))
    todo = [r for r in rows if r["status"] != "done"]
    steps = sum(r["steps"] for r in todo)
    msg = f"\n{len(rows)} runs ({len(rows) - len(todo)} done); {len(todo)} to run: {steps} training steps"
    if not args.no_measure:
        seconds = sum(r["seconds"] for r in todo)
        msg += (f", about {format_seconds(seconds)} of training on this machine"
                + (f" (about {format_seconds(seconds / args.jobs)} with --jobs {args.jobs})" if args.jobs > 1 else "")
                + "; timed from a few training steps per model, evaluations not included")
    evals = ", ".join(e.name for e in study.evaluations) or "none"
    print(msg + f".\nEvaluations after training: {evals}. Output folder: {out}")
    return 0


def print_summary(report) -> None:
    from ..study.report import format_stat

    t = report.table
    n_axes = len(report.data.axis_names)
    if t.cells:
        print()
        print(table(t.headers, [[*map(str, line[:n_axes]), *(format_stat(s) for s in line[n_axes:])]
                                for line in t.cells]))
        seeds = {r["cell"].get("seed") for r in report.data.runs}
        if len(seeds) > 1:
            print(f"(mean ± 95 % confidence interval over {len(seeds)} seeds)")
    for r in report.data.runs:
        if r["status"] == "failed":
            print(f"failed: {r['id']} ({_cell_text(r['cell'])}): {r['error']}")


def run_report_command(args) -> int:
    from ..study import write_report
    from .common import check_writable

    check_writable(args.folder, "the report")
    report = write_report(args.folder)
    print_summary(report)
    print(f"\nwrote {', '.join(report.files[:4])}{' ...' if len(report.files) > 4 else ''} in {args.folder}")
    print(f"report: {Path(args.folder) / 'report.html'}")
    return 0
