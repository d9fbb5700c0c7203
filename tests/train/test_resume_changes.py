"""diffrep.train.config.resume_changes: what a resume refusal shows (the library's and diffrep train's)."""
import pytest

from diffrep.train.config import RESUMABLE, resume_changes


def test_changes_outside_the_resumable_fields():
    saved = {"lr": 1e-3, "steps": 10, "seed": 0, "old_field": 1}
    now = {"lr": 2e-3, "steps": 20, "seed": 0, "new_field": 2}
    assert resume_changes(saved, now, RESUMABLE) == "lr (0.001 -> 0.002)"
    assert resume_changes(saved, dict(saved), RESUMABLE) == ""


def test_at_most_four_shown_then_a_count():
    saved = {f"f{i}": i for i in range(6)}
    now = {f"f{i}": -i - 1 for i in range(6)}
    assert resume_changes(saved, now, ()) == ("f0 (0 -> -1), f1 (1 -> -2), f2 (2 -> -3), f3 (3 -> -4) and 2 more")


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="saved and now must be dicts, got list, dict"):
        resume_changes([], {}, ())
