"""The ``labelrep`` command: thin; it parses, calls the library and prints.

Each command group lives in its own module of this package with a ``register(subparsers)``
function; every such module is found and registered, so adding a command touches no other file.
"""
from __future__ import annotations

import argparse
import errno
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


# Failures of the place the user chose to write in, not of labelrep: said in a sentence.
PLACE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _close_progress_bars() -> None:
    """A message must start on its own line, not on a progress bar's."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a usage mistake (one sentence, status 2), --help or --version
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.handler(args) or 0
    except UserError as err:
        _close_progress_bars()
        print(f"labelrep: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        _close_progress_bars()
        print(f"labelrep: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno not in PLACE_ERRORS:
            raise
        _close_progress_bars()
        where = f" {err.filename}" if err.filename else ""
        print(f"labelrep: error: cannot write{where} ({err.strerror}); choose a place you can write to",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("labelrep: interrupted; finished epochs are checkpointed (rerun with --resume), a run stopped "
              "before its first checkpoint leaves nothing behind", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
