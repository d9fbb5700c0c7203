"""``diffrep.config.differing_fields``: the leaves where two configs differ, as a refusal to load a saved part
names them (DisDiff.load_pretrained_diffusion, DiffAE's stage 2)."""

import dataclasses

import pytest

from diffrep.config import Config, differing_fields


@dataclasses.dataclass
class _Inner(Config):
    a: int = 1
    b: tuple = (1, 2)


@dataclasses.dataclass
class _Outer(Config):
    x: float = 0.5
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_nested_leaves_sorted_with_both_values():
    given = _Outer(x=0.25, inner=_Inner(a=3))
    wanted = _Outer()
    # flatten_dict writes sequences as strings: (1, 2) is "[1, 2]" on both sides, so b is not listed
    assert differing_fields(given, wanted) == [("inner.a", 3, 1), ("x", 0.25, 0.5)]
    assert differing_fields(wanted, wanted) == []


def test_a_dict_of_parts_and_a_field_only_one_side_has():
    assert differing_fields({"n": 2, "cfg": _Inner(b=(1,))}, {"n": 2, "cfg": _Inner(), "extra": 7}) == [
        ("cfg.b", "[1]", "[1, 2]"), ("extra", None, 7)]


@pytest.mark.parametrize("bad", [3, None, _Outer])
def test_refuses_what_is_not_a_config(bad):
    with pytest.raises(TypeError, match="differing_fields: given must be a config instance or a dict"):
        differing_fields(bad, {})
