"""The ``diffrep`` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace, returning an exit
code). The list below is the order shown in ``diffrep --help``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

SUBCOMMANDS = ("info", "demo", "quickstart", "data", "train", "sample", "eval", "encode", "aggregate", "bfn", "paramrel",
               "sami", "multibeta", "encdiff", "diffae", "infodiffusion", "disdiff", "study")


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose refusal of a mistyped verb or choice also names the closest one
    ("diffrep trian": did you mean 'train'?); Python 3.11's argparse only lists them. Sub-parsers are of
    the same class (``add_subparsers`` makes its parsers with the class of the parser it belongs to).

    Flags are never abbreviated: argparse's default takes ``--over`` for ``--overwrite`` and ``--res 3`` for
    ``--resume 3``, so a new flag, or a mistyped one, could silently mean another; a prefix is refused with the
    flag it is a prefix of (``unknown_flag_hint``)."""

    def __init__(self, *args, allow_abbrev: bool = False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            names = [c for c in action.choices if isinstance(c, str)]
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.75) if isinstance(value, str) else []
            if not close:
                raise
            raise argparse.ArgumentError(action, f"{exc.message}; did you mean {close[0]!r}?") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        hint = getattr(args, "_unknown_hint", None) or unknown_flag_hint(args._parser, unknown)
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}" + (f"; {hint}" if hint else ""))
    verbs = _verbs_of(args._parser)
    if verbs is not None and getattr(args, verbs.dest) is None:  # "diffrep" or a group ("diffrep bfn") alone
        return _no_verb(args._parser, verbs)
    # a runtime error starts as argparse's usage errors do, with the full verb ("diffrep multibeta decode"),
    # not only its group, so that both kinds of refusal of one verb read alike
    prog = args._parser.prog
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into a reader that stopped (| head): end quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ImportError as exc:  # an optional package (tensorboard, wandb, ...) that is not installed
        if (exc.name or "").startswith("diffrep"):
            raise
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:  # OSError: missing, unreadable, not a folder ...
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # the trainer's non-finite loss (a diverged run): its message names the step
        print(f"{prog}: error: {_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C outside a training loop (which saves and says how to resume)
        print(f"{prog}: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        return 130


def unknown_flag_hint(parser: argparse.ArgumentParser, unknown: list[str]) -> str | None:
    """'did you mean --overwrite?' for the first unrecognised ``--flag`` (or ``--flag=value``) that is a prefix
    of exactly one of ``parser``'s flags or is close to one; None when none is (docs/architecture.md,
    "Configuration and command line": flags are never abbreviated)."""
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"unknown_flag_hint: parser must be an argparse.ArgumentParser, got {type(parser).__name__}")
    if isinstance(unknown, str) or not all(isinstance(t, str) for t in unknown):
        raise TypeError("unknown_flag_hint: unknown must be a list of the command-line words argparse left over")
    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    for token in unknown:
        if not token.startswith("--"):
            continue
        typed = token.split("=", 1)[0]
        longer = [f for f in flags if f.startswith(typed)]
        if len(longer) == 1:
            return f"did you mean {longer[0]}? (flags are not abbreviated)"
        close = difflib.get_close_matches(typed, flags, n=1, cutoff=0.75)
        if close:
            return f"did you mean {close[0]}?"
    return None


def _verbs_of(parser: argparse.ArgumentParser):
    """The sub-command action of ``parser`` (a group such as ``diffrep bfn``), None for a verb."""
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _no_verb(parser: argparse.ArgumentParser, verbs) -> int:
    """A group given without its verb: its help (the verbs and what each does) on stdout, then a usage
    error naming them on stderr, exit 2 (the exit of argparse's usage errors)."""
    parser.print_help()
    noun = "command" if parser.prog == "diffrep" else "verb"
    print(f"{parser.prog}: error: no {noun} given; choose one of {', '.join(verbs.choices)} ('{parser.prog} "
          f"{verbs.metavar or verbs.dest.upper()} --help' shows its flags)", file=sys.stderr)
    return 2


def _message(exc: BaseException) -> str:
    """The one-line text of an error, with the file name an ``OSError`` carries."""
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
