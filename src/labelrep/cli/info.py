"""``labelrep models list`` and ``labelrep data info``."""
from __future__ import annotations

from .common import print_listing, table


def register(sub) -> None:
    models = sub.add_parser("models", help="encoders").add_subparsers(dest="models_command", metavar="ACTION")
    models.required = True
    p = models.add_parser("list", help="list the encoders")
    p.set_defaults(handler=list_models)

    data = sub.add_parser("data", help="data sources").add_subparsers(dest="data_command", metavar="ACTION")
    data.required = True
    p = data.add_parser("info", help="list data sources, or describe one")
    p.add_argument("--dataset", help="describe this data source (loads it)")
    p.add_argument("--data-dir", help="folder holding the data")
    p.set_defaults(handler=data_info)


def list_models(args) -> int:
    from ..models import list_encoders

    return print_listing(list_encoders())


def data_info(args) -> int:
    from ..data import list_datasets, load_dataset

    if not args.dataset:
        return print_listing(list_datasets())
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
