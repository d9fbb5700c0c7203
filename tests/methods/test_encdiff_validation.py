"""scripts/validate_dyga.py end to end at a tiny size (slow): both arms run, every recorded quantity is
in its range, and the claim check reads the summary it wrote."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_validate_dyga_runs_and_records_every_quantity(tmp_path):
    path = Path(__file__).resolve().parents[2] / "scripts" / "validate_dyga.py"
    spec = importlib.util.spec_from_file_location("validate_dyga", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "dyga.json"
    assert mod.main(["--seeds", "0", "--steps", "170", "--quick", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert [r["arm"] for r in rec["runs"]] == ["baseline", "dyga_sd"]
    for r in rec["runs"]:
        assert 0 <= r["sep_raw"]["separation"] <= 1 and 0 <= r["factor_vae"] <= 1
        assert 0 <= r["dci_disentanglement"] <= 1 and r["reliance"]["reliance"] > 0
        assert len(r["sep_raw"]["anchors"]) == 10
    dy = rec["runs"][1]
    assert len(dy["anchor_history"]) == 1 and dy["anchor_history"][0]["epoch"] == 1     # 160 steps per epoch
    s = rec["summary_mean_std"]
    assert rec["checks"]["reliance_higher"] == (s["dyga_sd"]["reliance"][0] > s["baseline"]["reliance"][0])
    assert rec["claim_holds"] == all(rec["checks"].values())
