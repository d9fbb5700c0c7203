"""The ``diffrep`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace, returning an exit
code). The list below is the order shown in ``diffrep --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("info", "demo", "quickstart", "data", "train", "sample", "eval", "encode", "aggregate", "bfn", "paramrel",
               "sami", "multibeta", "encdiff", "diffae", "infodiffusion", "disdiff", "study")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffrep",
        description="Representation learning with diffusion and Bayesian flow models.",
    )
    from .._version import __version__

    parser.add_argument("--version", action="version", version=f"diffrep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"diffrep.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"diffrep.cli.{name}":
                continue  # that subcommand is not part of this version
            raise
        module.register(sub)
    _mark_parsers(parser)
    return parser


def _mark_parsers(parser: argparse.ArgumentParser) -> None:
    """Each (sub)parser records itself as the namespace's ``_parser`` (the deepest one chosen wins),
    so that an unknown flag is reported with the usage of the verb it was given to, not the top
    level's (argparse leaves unrecognised arguments to the top-level parser)."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark_parsers(child)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        hint = getattr(args, "_unknown_hint", None)  # a verb that knows why a flag lands here
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}" + (f"; {hint}" if hint else ""))
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into a reader that stopped (| head): end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ImportError as exc:  # an optional package (tensorboard, wandb, ...) that is not installed
        if (exc.name or "").startswith("diffrep"):
            raise
        print(f"diffrep {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:  # OSError: missing, unreadable, not a folder ...
        print(f"diffrep {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # the trainer's non-finite loss (a diverged run): its message names the step
        print(f"diffrep {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C outside a training loop (which saves and says how to resume)
        print(f"diffrep {args.command}: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130


def _message(exc: BaseException) -> str:
    """The one-line text of an error, with the file name an ``OSError`` carries."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
