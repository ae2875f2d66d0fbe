"""``labelrep train`` and ``labelrep eval``."""
from __future__ import annotations

import time
from pathlib import Path

from .. import config as config_mod
from ..errors import UserError
from .common import ProgressHooks, table

# command-line flag -> config key
FLAGS = {
    "dataset": "data.dataset", "data_dir": "data.data_dir", "fraction": "data.fraction", "download": "data.download",
    "label": "label.name", "model": "model.name", "epochs": "train.epochs", "seed": "train.seed",
    "device": "train.device", "lr": "optim.lr", "batch_size": "optim.batch_size",
    "eval_every": "train.eval_every",
}


def register(sub) -> None:
    import argparse

    from ..schema import help_text, key_listing

    p = sub.add_parser("train", help="train one run", description="Train one run and write its run folder.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config keys (--set KEY=VALUE, or a --config file), with their defaults:\n"
                              + key_listing())
    p.add_argument("--config", help="YAML config file (sections data, label, model, optim, train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.lr=0.05 (repeatable; listed below)")
    p.add_argument("--dataset", help=help_text("data.dataset"))
    p.add_argument("--data-dir", help=help_text("data.data_dir"))
    p.add_argument("--download", action="store_true", default=None, help=help_text("data.download"))
    p.add_argument("--fraction", type=float, help=help_text("data.fraction"))
    p.add_argument("--label", help=help_text("label.name"))
    p.add_argument("--model", help=help_text("model.name"))
    p.add_argument("--epochs", type=int, help=help_text("train.epochs"))
    p.add_argument("--lr", type=float, help=help_text("optim.lr"))
    p.add_argument("--batch-size", type=int, help=help_text("optim.batch_size"))
    p.add_argument("--eval-every", type=int, help=help_text("train.eval_every"))
    p.add_argument("--seed", type=int, help=help_text("train.seed"))
    p.add_argument("--device", help=help_text("train.device"))
    p.add_argument("--out", help="run folder (default runs/<dataset>-<label>-<model>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)

    e = sub.add_parser("eval", help="evaluate a run folder", description="Evaluate a trained run on its test set.")
    e.add_argument("run", help="run folder")
    e.add_argument("--weights", choices=["last", "best"], default="last", help="last epoch, or best validation epoch")
    e.add_argument("--data-dir", help="folder holding the data, if it moved since training")
    e.set_defaults(handler=run_eval)


def config_from_args(args) -> dict:
    layers = [config_mod.load_yaml(args.config)] if args.config else []
    # Flag values go in as argparse typed them: re-reading them as YAML text would turn 1e-05 into a string.
    layer: dict = {}
    for flag, key in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            section, name = key.split(".")
            layer.setdefault(section, {})[name] = value
    layers += [layer, config_mod.parse_overrides(args.set)]
    return config_mod.resolve(*layers)


def run_train(args) -> int:
    from ..train import train

    cfg = config_from_args(args)
    if args.resume and not args.out:
        raise UserError("--resume needs --out, the run folder to continue")
    if args.resume and not Path(args.out).exists():
        raise UserError(f"--resume: there is no run folder {args.out} to continue")
    out = Path(args.out) if args.out else Path("runs") / (
        f"{cfg['data']['dataset']}-{cfg['label']['name']}-{cfg['model']['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = train(cfg, out=out, resume=args.resume, hooks=ProgressHooks(args.quiet))
    s = result.summary
    print(table(["dataset", "label", "model", "epochs", "train images", "test accuracy", "seconds"],
                [[s["dataset"], s["label"], s["model"], s["epochs"], s["train_images"], s["test_accuracy"],
                  round(s["seconds"], 1)]]))
    print(f"run folder: {out}")
    return 0


def run_eval(args) -> int:
    from ..evaluate.accuracy import accuracy
    from ..run import load_run
    from ..files import atomic_write_json
    from .common import check_run_folder

    check_run_folder(args.run, "the evaluation")
    run = load_run(args.run, weights=args.weights, data_dir=args.data_dir)
    acc = accuracy(run.model, run.label_space, run.parts.loader(run.parts.data.test))
    result = {"weights": args.weights, "test_images": len(run.parts.data.test), "test_accuracy": acc}
    atomic_write_json(Path(args.run) / f"eval-{args.weights}.json", result)
    print(table(["run", "weights", "test images", "test accuracy"],
                [[args.run, args.weights, result["test_images"], acc]]))
    return 0
