"""`facefactory` command: one entry point, subcommands contributed by modules in commands/.

Each module in facefactory.commands exposes `register(subparsers)`; a module that fails to
import (an optional extra missing) leaves its subcommand out instead of breaking the rest.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from facefactory import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facefactory", description="Face-swap video orders on Apache Airflow."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"facefactory.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
