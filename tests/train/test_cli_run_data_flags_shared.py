"""The model verbs of ``diffrep multibeta`` and ``diffrep paramrel`` take their data flags (--dataset, --pool,
--root, --option) from one helper, cli._common.add_run_data_flags, the flags that run_data_settings reads."""

import argparse

import pytest

from diffrep.cli import build_parser
from diffrep.cli._common import parse_options

VERBS = [("multibeta", v) for v in ("encode", "sweep", "traverse", "edit", "curve", "eval")] + \
        [("paramrel", v) for v in ("reconstruct", "traverse", "time-varying", "interpolate", "attributes-encoding",
                                   "eval")]


def _verb_parser(group: str, verb: str) -> argparse.ArgumentParser:
    def sub(p, name):
        action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        return action.choices[name]
    return sub(sub(build_parser(), group), verb)


def _help(p: argparse.ArgumentParser, flag: str) -> str:
    return next(a.help for a in p._actions if flag in a.option_strings)


@pytest.mark.parametrize("group, verb", VERBS)
def test_each_model_verb_has_the_four_shared_data_flags(group, verb):
    p = _verb_parser(group, verb)
    examples = ", e.g. dsprites, digits, shapes3d" if group == "paramrel" else ""
    assert _help(p, "--dataset") == f"a diffrep.data name{examples} (default: the one the model was trained on, from its run.json)"
    assert _help(p, "--pool") == "max-pool factor (default: the run's, else 1)"
    assert _help(p, "--root") == "folder of the dataset's files (default: the run's, else $DIFFREP_DATA)"
    assert _help(p, "--option") == ("dataset option of diffrep.data.load, over the run's (YAML value, repeatable), "
                                    "e.g. --option size=32")
    args = p.parse_args(["MODEL", "--dataset", "dsprites", "--pool", "2", "--root", "/data", "--option", "size=16",
                         "--option", "sigma=1e-3"] + (["--direction", "0"] if verb == "edit" else []))
    assert (args.dataset, args.pool, args.root) == ("dsprites", 2, "/data")
    assert parse_options(args.option) == {"size": 16, "sigma": 0.001}
    none = p.parse_args(["MODEL"] + (["--direction", "0"] if verb == "edit" else []))
    assert (none.dataset, none.pool, none.root, parse_options(none.option)) == (None, None, None, {})
