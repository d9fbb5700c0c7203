"""Two gloo ranks under the real torchrun launcher reach the same parameters as one process with the
same global batch (docs/architecture.md#distributed-training: assert on what matters). The one-process
run is the script's ``main`` in this process; the ranks are torchrun's child processes."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffrep.train import read_metrics

SCRIPT = Path(__file__).with_name("_ddp_script.py")


# Launcher-level failures (a port taken between torchrun choosing it and binding it, a rendezvous
# timing out on a loaded machine) are retried once; any other failure fails the test.
_TRANSIENT = ("EADDRINUSE", "Address already in use", "Connection refused", "RendezvousTimeoutError",
              "rendezvous", "Connection reset")


def _run(cmd, tmp):
    # TMPDIR: the launcher's log folders (torchelastic_*, never removed) go into the test's own folder, not /tmp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "TMPDIR": str(tmp)}
    for attempt in range(2):
        shutil.rmtree(cmd[-1], ignore_errors=True)  # the output folder: a retry starts clean
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp)
        if r.returncode == 0 or not any(m in r.stderr for m in _TRANSIENT):
            break
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]


def _run_here(*args):
    """The script alone (world size 1) in this process; torch's thread count is put back afterwards."""
    spec = importlib.util.spec_from_file_location("_ddp_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    try:
        script.main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)


def test_two_rank_gloo_ddp_matches_single_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run_here(single)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(SCRIPT), str(ddp)], tmp_path)
    p_single = torch.load(single / "params-0.pt")
    p0, p1 = torch.load(ddp / "params-0.pt"), torch.load(ddp / "params-1.pt")
    for k in p_single:
        assert torch.equal(p0[k], p1[k]), k  # ranks agree exactly
        torch.testing.assert_close(p0[k], p_single[k], rtol=1e-5, atol=1e-6)
    # logged losses are the all-reduced means over ranks: equal to the single-process ones
    ls = [r["loss"] for r in read_metrics(single / "run" / "metrics.jsonl")]
    ld = [r["loss"] for r in read_metrics(ddp / "run" / "metrics.jsonl")]
    assert len(ls) == 4
    torch.testing.assert_close(torch.tensor(ld), torch.tensor(ls), rtol=1e-5, atol=1e-6)
    # rank 0 wrote the checkpoints with both ranks' RNG states
    state = torch.load(ddp / "run" / "checkpoints" / "step-00000008" / "trainer_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2


@pytest.mark.slow
def test_ddp_with_gradient_accumulation_skips_the_sync_and_matches_one_process(tmp_path):
    """2 ranks x 2 micro-batches of 2 = the single process's batch of 8: the same parameters; gradients are
    all-reduced once per step (no_sync on the first micro-batch of each of the 8 steps)."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _run_here(single)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(SCRIPT), str(ddp),
          "2"], tmp_path)
    p_single = torch.load(single / "params-0.pt")
    p0, p1 = torch.load(ddp / "params-0.pt"), torch.load(ddp / "params-1.pt")
    for k in p_single:
        assert torch.equal(p0[k], p1[k]), k
        torch.testing.assert_close(p0[k], p_single[k], rtol=1e-5, atol=1e-6)
    assert (ddp / "no_sync-0.txt").read_text() == (ddp / "no_sync-1.txt").read_text() == "8"
    assert (single / "no_sync-0.txt").read_text() == "0"
