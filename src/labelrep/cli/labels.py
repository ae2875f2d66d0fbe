"""``labelrep labels ...``: list the label spaces, their statistics, pictures and exported tables."""
from __future__ import annotations

import inspect
from pathlib import Path

from ..errors import UserError
from ..files import atomic_path
from .common import print_listing, table, whole

DIGITS = [str(i) for i in range(10)]
# datasets whose classes and image side are known without loading any images
KNOWN = {
    "digits": (DIGITS, 8),
    "mnist5k": (DIGITS, 28),
    "mnist": (DIGITS, 28),
    "cifar10": (["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"], 32),
}


def register(sub) -> None:
    labels = sub.add_parser("labels", help="label spaces").add_subparsers(dest="labels_command", metavar="ACTION")
    labels.required = True
    p = labels.add_parser("list", help="list the label spaces")
    p.set_defaults(handler=list_labels)

    s = labels.add_parser("stats", help="entropy and pairwise distances of label spaces",
                          description="Per label space: the mean Shannon entropy (bits) of a class label's values and "
                                      "the mean pairwise entrywise L1/L2 distance between class labels, after min-max "
                                      "scaling the table to [0, 1] (L1 / D, L2 / sqrt(D), D = entries per label).")
    s.add_argument("names", nargs="+", metavar="NAME", help="label spaces (see: labelrep labels list)")
    _common(s)
    s.set_defaults(handler=stats_labels)

    sh = labels.add_parser("show", help="draw the class labels of a label space as a grid of images")
    sh.add_argument("name", metavar="NAME")
    sh.add_argument("-o", "--output", required=True, help="image file to write (.png, .pdf, .svg)")
    _common(sh)
    sh.set_defaults(handler=show_labels)

    e = labels.add_parser("export", help="write a label space's table [C, ...] as a .npy file",
                          description="Write the label table exactly as training uses it (before any normalisation "
                                      "inside the head).")
    e.add_argument("name", metavar="NAME")
    e.add_argument("-o", "--output", required=True, help=".npy file to write")
    _common(e)
    e.set_defaults(handler=export_labels)


def _common(p) -> None:
    p.add_argument("--dataset", default="cifar10", help="whose classes and image size (default cifar10)")
    p.add_argument("--data-dir", help="data folder, for datasets whose class names must be read from disk")
    p.add_argument("--voice", help="speech voice: espeak, paper, piper or folder")
    p.add_argument("--speech-dir", help="folder of recordings (paper voice: holding cifar10/<class>.wav)")
    p.add_argument("--size", type=whole(1), help="label side N (default 2 x the image side)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a label option, e.g. --set seed=3 (repeatable)")


def dataset_facts(dataset: str, data_dir: str | None) -> tuple[list[str], int]:
    if dataset in KNOWN:
        classes, size = KNOWN[dataset]
        return list(classes), size
    from ..data import load_dataset

    data = load_dataset(dataset, data_dir, False)
    return list(data.classes), data.image_size


def build_space(name: str, args, strict: bool = True):
    """The label space ``name`` for the dataset of ``args``; flags it does not take are an error when strict."""
    from .. import config as config_mod
    from ..labels import LABEL_SPACES, create_label_space

    classes, image_size = dataset_facts(args.dataset, args.data_dir)
    options = config_mod.parse_overrides(args.set)
    accepted = inspect.signature(LABEL_SPACES.get(name)).parameters
    for key in ("voice", "speech_dir", "size"):
        value = getattr(args, key)
        if value is not None:
            if key not in accepted:
                if not strict:
                    continue
                raise UserError(f"label space {name!r} takes no --{key.replace('_', '-')}")
            options[key] = value
    return create_label_space(name, classes, context={"dataset": args.dataset, "image_size": image_size}, **options)


def list_labels(args) -> int:
    from ..labels import list_label_spaces

    return print_listing(list_label_spaces())


def stats_labels(args) -> int:
    from ..evaluate.label_stats import label_stats

    rows = []
    for name in args.names:
        s = label_stats(build_space(name, args, strict=len(args.names) == 1).table.numpy())
        rows.append([name, "x".join(map(str, s["shape"])), round(s["min"], 3), round(s["max"], 3),
                     s["entropy"], s["entropy_std"], s["l1"], s["l2"]])
    print(table(["label", "shape", "min", "max", "entropy (bits)", "entropy std", "mean L1", "mean L2"], rows))
    return 0


def _output(output: str) -> Path:
    """Refuse, before the table is built, an output the command could not write."""
    from .common import check_writable

    out = Path(output)
    if out.is_dir():
        raise UserError(f"{out} is a folder; -o names the file to write")
    check_writable(out.parent, str(out.name))
    return out


def _atomic(output: str, write) -> Path:
    out = _output(output)
    with atomic_path(out) as tmp:
        write(tmp)
    return out


def show_labels(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluate.label_stats import draw_labels

    _output(args.output)
    space = build_space(args.name, args)
    fig = draw_labels(space)
    try:
        out = _atomic(args.output, lambda tmp: fig.savefig(tmp, dpi=120, format=Path(args.output).suffix[1:] or "png"))
    except ValueError as err:  # matplotlib: unknown format
        raise UserError(f"cannot write {args.output} ({err})") from None
    finally:
        plt.close(fig)
    print(f"wrote {out}")
    return 0


def export_labels(args) -> int:
    import numpy as np

    if not args.output.endswith(".npy"):
        raise UserError(f"the export is a numpy file; name it *.npy, not {args.output}")
    _output(args.output)
    space = build_space(args.name, args)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, space.table.numpy())

    out = _atomic(args.output, write)
    print(f"wrote {out}: {space.name} table of shape {tuple(space.table.shape)}")
    return 0
