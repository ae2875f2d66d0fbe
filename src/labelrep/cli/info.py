"""``labelrep labels list``, ``labelrep models list``, ``labelrep data info``."""
from __future__ import annotations

from .common import table


def register(sub) -> None:
    labels = sub.add_parser("labels", help="label spaces").add_subparsers(dest="labels_command", metavar="ACTION")
    labels.required = True
    p = labels.add_parser("list", help="list the label spaces")
    p.set_defaults(handler=lambda args: _list(__import__("labelrep.labels", fromlist=["x"]).list_label_spaces()))

    models = sub.add_parser("models", help="encoders").add_subparsers(dest="models_command", metavar="ACTION")
    models.required = True
    p = models.add_parser("list", help="list the encoders")
    p.set_defaults(handler=lambda args: _list(__import__("labelrep.models", fromlist=["x"]).list_encoders()))

    data = sub.add_parser("data", help="data sources").add_subparsers(dest="data_command", metavar="ACTION")
    data.required = True
    p = data.add_parser("info", help="list data sources, or describe one")
    p.add_argument("--dataset", help="describe this data source (loads it)")
    p.add_argument("--data-dir", help="folder holding the data")
    p.set_defaults(handler=data_info)
    LABELS_SUBPARSERS.append(labels)


# Other command modules (label statistics, pictures, exports) add actions to ``labels`` through this.
LABELS_SUBPARSERS: list = []


def _list(entries: dict[str, str]) -> int:
    print(table(["name", "description"], sorted(entries.items())))
    return 0


def data_info(args) -> int:
    from ..data import list_datasets, load_dataset

    if not args.dataset:
        return _list(list_datasets())
    data = load_dataset(args.dataset, args.data_dir)
    mean, std = data.mean_std()
    rows = [
        ["name", data.name],
        ["classes", f"{len(data.classes)}: {', '.join(data.classes[:12])}{' ...' if len(data.classes) > 12 else ''}"],
        ["train images", len(data.train)],
        ["test images", len(data.test)],
        ["image shape", "x".join(map(str, data.train.images.shape[1:]))],
        ["mean", ", ".join(f"{m:.4f}" for m in mean)],
        ["std", ", ".join(f"{s:.4f}" for s in std)],
        ["augment", ", ".join(f"{k}={v}" for k, v in data.augment.items())],
    ]
    print(table(["field", "value"], rows))
    return 0
