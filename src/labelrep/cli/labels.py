"""``labelrep labels ...``: list the label spaces (statistics, pictures and exports join here)."""
from __future__ import annotations

from .common import print_listing


def register(sub) -> None:
    labels = sub.add_parser("labels", help="label spaces").add_subparsers(dest="labels_command", metavar="ACTION")
    labels.required = True
    p = labels.add_parser("list", help="list the label spaces")
    p.set_defaults(handler=list_labels)


def list_labels(args) -> int:
    from ..labels import list_label_spaces

    return print_listing(list_label_spaces())
