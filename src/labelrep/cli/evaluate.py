"""``labelrep attack``, ``labelrep efficiency``, ``labelrep features``, ``labelrep calibrate``.

Each writes its tidy rows (JSON) and a figure into the run folder (or --out) and prints a table.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .common import ProgressHooks, check_run_folder, check_unique, real, table, whole


def register(sub) -> None:
    a = sub.add_parser("attack", help="accuracy under adversarial attack of a run",
                       description="Accuracy under FGSM / BIM / PGD per eps, under the paper protocol (training-loss "
                                   "gradient, only correct images attacked) and the strong one (CE and margin on "
                                   "scores); writes RUN/robustness.json and RUN/robustness.png.")
    _run_args(a)
    a.add_argument("--protocols", nargs="+", default=["paper", "strong"], choices=["paper", "strong"])
    a.add_argument("--attacks", nargs="+", default=["fgsm", "bim", "pgd"], help="fgsm, bim, pgd (default all)")
    a.add_argument("--eps", nargs="+", type=real(0), help="budgets in 1/255 units (default 1 2 4 8 16)")
    a.add_argument("--paper-eps", nargs="+", type=real(0),
                   help="budgets in the paper's normalised units (e.g. 0.05 0.1 0.2 0.3), converted per channel")
    a.add_argument("--max-images", type=whole(1), default=1000, help="test images attacked (a fixed seeded choice)")
    a.add_argument("--steps", type=whole(1), default=10, help="steps of BIM and PGD")
    a.add_argument("--restarts", type=whole(1), default=1, help="PGD restarts")
    a.add_argument("--autoattack", choices=["apgd", "standard"], help="also run AutoAttack (strong protocol; "
                   "needs torchattacks installed with pip install --no-deps torchattacks)")
    a.add_argument("--batch-size", type=whole(1), default=250)
    a.set_defaults(handler=run_attack)

    e = sub.add_parser("efficiency", help="train a data-efficiency sweep (a study)",
                       description="Train every label space on each fraction of the training set with each seed "
                                   "(same schedule) as a study in --out, then print test accuracy per fraction and "
                                   "write the study's report; resumable.")
    _train_args(e, sweep=True)
    e.add_argument("--labels", nargs="+", required=True, help="label spaces to compare")
    e.add_argument("--fractions", nargs="+", type=real(0, 1, lo_open=True), default=[0.01, 0.02, 0.04, 0.08, 0.1, 0.2])
    e.add_argument("--seeds", nargs="+", type=whole(0), default=[0, 1])
    e.add_argument("--steps", type=whole(1), help="fixed optimiser steps per run (epochs follow from the data size)")
    e.add_argument("--unbalanced", action="store_true", help="seeded uniform draw instead of class-balanced "
                   "(the paper's 1 %% draw)")
    e.add_argument("--out", default="runs/efficiency", help="the sweep's study folder")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(handler=run_efficiency)

    f = sub.add_parser("features", help="feature geometry of a run (or train one with feature snapshots)",
                       description="Silhouette score and k-NN accuracy of the encoder's features of fixed test "
                                   "images, per training fraction when the run has snapshots; with --train, "
                                   "train RUN first while saving features at 10/30/50/70/100 %% of training.")
    _run_args(f)
    f.add_argument("--images", type=whole(2), default=500, help="fixed test images (class-balanced)")
    f.add_argument("--no-figure", action="store_true", help="skip the t-SNE figure")
    f.add_argument("--train", action="store_true", help="train RUN (a new folder) with feature snapshots first")
    _train_args(f, with_data_dir=False)
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(handler=run_features)

    c = sub.add_parser("calibrate", help="calibration of a run (ECE, reliability diagram, fitted temperature)",
                       description="ECE and NLL of softmax(scores / T) for T = 1 and T fitted on held-out images; "
                                   "writes RUN/calibration.json and RUN/reliability.png.")
    _run_args(c)
    c.add_argument("--bins", type=whole(1), default=15)
    c.add_argument("--max-images", type=whole(1), help="test images used (default all)")
    c.set_defaults(handler=run_calibrate)


def _run_args(p) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--weights", choices=["last", "best"], default="last")
    p.add_argument("--data-dir", help="folder holding the data, if it moved since training")


def _train_args(p, with_data_dir: bool = True, sweep: bool = False) -> None:
    """The flags ``labelrep train`` reads through its ``config_from_args`` (a sweep sets label and fraction)."""
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--dataset")
    if with_data_dir:
        p.add_argument("--data-dir")
    p.add_argument("--download", action="store_true", default=None)
    if not sweep:
        p.add_argument("--fraction", type=float)
        p.add_argument("--label")
    p.add_argument("--model")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    if not sweep:
        p.add_argument("--seed", type=int)
    p.add_argument("--device")


def _write(path: Path, rows) -> None:
    from ..files import atomic_write_json

    atomic_write_json(path, rows)


def run_attack(args) -> int:
    from ..evaluate.robustness import curve_table, masking_gaps, robustness
    from ..run import load_run

    if args.eps and args.paper_eps:
        raise UserError("give --eps (1/255 units) or --paper-eps (normalised units), not both")
    check_unique(args.eps, "--eps")
    check_unique(args.paper_eps, "--paper-eps")
    check_unique(args.attacks, "--attacks")
    check_run_folder(args.run, "the attack's rows and figure")
    run = load_run(args.run, weights=args.weights, data_dir=args.data_dir)
    rows = robustness(run, protocols=args.protocols, attacks=args.attacks, eps=args.eps, paper_eps=args.paper_eps,
                      max_images=args.max_images, steps=args.steps, restarts=args.restarts,
                      autoattack=args.autoattack, batch_size=args.batch_size,
                      figure=str(Path(args.run) / "robustness.png"))
    folder = Path(args.run)
    _write(folder / "robustness.json", rows)
    figure = folder / "robustness.png"
    print(table(*curve_table(rows)))
    gaps = masking_gaps(rows)
    if gaps:
        print("\nworst case, paper protocol minus strong (a large gap means gradient masking):")
        print(table(["eps/255", "paper", "strong", "gap"], [[g["eps"], g["paper"], g["strong"], g["gap"]]
                                                             for g in gaps]))
    print(f"rows: {folder / 'robustness.json'}  figure: {figure}")
    return 0


def run_efficiency(args) -> int:
    """A thin front: the sweep is a study (label x data.fraction x seeds) run by the study runner."""
    from ..evaluate.efficiency import efficiency_study
    from ..study import parse_study, run_study, write_report
    from .study import print_summary
    from .train import config_from_args

    check_unique(args.fractions, "--fractions")
    check_unique(args.seeds, "--seeds")
    check_unique(args.labels, "--labels")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; the sweep needs a folder")
    # parse_study checks every run's names before the first one trains
    study = parse_study(efficiency_study(config_from_args(args), args.labels, args.fractions, args.seeds,
                                         balanced=not args.unbalanced, steps=args.steps))
    outcome = run_study(study, out, hooks_factory=lambda run: ProgressHooks(args.quiet))
    report = write_report(out)
    print_summary(report)
    figure = out / "figures" / "sweep-data-fraction.png"
    print(f"rows: {out / 'results.csv'}  report: {out / 'report.html'}"
          + (f"  figure: {figure}" if figure.is_file() else ""))
    return 1 if outcome.count("failed") else 0


def run_features(args) -> int:
    from ..evaluate.features import features, train_with_features
    from ..run import load_run
    from .train import config_from_args

    folder = Path(args.run)
    if not args.train:
        check_run_folder(folder, "the feature rows")
    if args.train:
        train_with_features(config_from_args(args), out=folder, images=args.images,
                            hooks=ProgressHooks(args.quiet))
    run = load_run(folder, weights=args.weights, data_dir=None if args.train else args.data_dir)
    figure = None if args.no_figure else folder / "tsne.png"
    rows = features(run, images=args.images, figure=str(figure) if figure else None)
    _write(folder / "features.json", rows)
    by = {}
    for r in rows:
        by.setdefault(r["fraction"], {})[r["metric"]] = r["value"]
    print(table(["% of training", "silhouette", "k-NN accuracy"],
                [[f"{100 * f:g}", v["silhouette"], v["knn_accuracy"]] for f, v in sorted(by.items())]))
    print(f"rows: {folder / 'features.json'}" + (f"  figure: {figure}" if figure else ""))
    return 0


def run_calibrate(args) -> int:
    from ..evaluate.calibration import calibration_evaluation
    from ..run import load_run

    check_run_folder(args.run, "the calibration rows and figure")
    run = load_run(args.run, weights=args.weights, data_dir=args.data_dir)
    folder = Path(args.run)
    rows = calibration_evaluation(run, bins=args.bins, max_images=args.max_images,
                                  figure=str(folder / "reliability.png"))
    _write(folder / "calibration.json", rows)
    by = {(r["metric"], r.get("temperature")): r["value"] for r in rows}
    print(table(["temperature", "T", "ECE", "NLL", "mean confidence", "accuracy"],
                [[t, 1.0 if t == "1" else by[("temperature", "fitted")], by[("ece", t)], by[("nll", t)],
                  by[("mean_confidence", t)], by[("accuracy", None)]] for t in ("1", "fitted")]))
    print(f"temperature fitted on the {rows[0]['fit_on']}; rows: {folder / 'calibration.json'}  "
          f"figure: {folder / 'reliability.png'}")
    return 0
