"""The ``labelrep`` command: thin; it parses, calls the library and prints.

Each command group lives in its own module of this package with a ``register(subparsers)``
function; every such module is found and registered, so adding a command touches no other file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import NonFiniteLossError, UserError


def command_modules() -> list:
    modules = [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]
    return [m for m in modules if hasattr(m, "register")]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one sentence, exit status 2, no usage dump."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="labelrep", description="Label representations for image classification.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"labelrep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for module in command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except UserError as err:
        print(f"labelrep: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"labelrep: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("labelrep: interrupted; the last finished epoch is checkpointed, rerun with --resume", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
