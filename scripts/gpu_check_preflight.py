"""The preflight of scripts/gpu_check.py: what torch sees of the GPU, and whether a tiny op runs on it, asked in a
child process before any step (without a GPU, or with a torch that has no kernels for it, nothing can run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gpu_check_steps import KILL_GRACE_S, ROOT, _first_error

PREFLIGHT_LIMIT_S = 120


def gpu_facts() -> dict:
    """What torch sees of the GPU, and whether it can run on it: run in its own process by ``preflight`` (so a hung
    driver costs a time limit, and the parent never holds a CUDA context). ``problem`` is None when a tiny op on the
    GPU gave the right answer; else why nothing of the plan can run (no GPU visible, torch without kernels for this
    GPU's architecture, a driver older than torch's CUDA)."""
    facts = {"gpu": None, "capability": None, "torch": None, "torch_cuda": None, "arch_list": [], "problem": None}
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        facts["problem"] = f"torch does not import: {type(e).__name__}: {e}"
        return facts
    facts["torch"], facts["torch_cuda"] = torch.__version__, torch.version.cuda
    try:
        if not torch.cuda.is_available():
            facts["problem"] = (f"no CUDA device is visible to torch {torch.__version__} (its CUDA: "
                                f"{torch.version.cuda or 'none, a CPU build'}; CUDA_VISIBLE_DEVICES="
                                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}; nvidia-smi -L: {_smi()})")
            return facts
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["capability"] = list(torch.cuda.get_device_capability(0))
        facts["arch_list"] = list(torch.cuda.get_arch_list())
        n = 1024
        got = float((torch.arange(n, device="cuda", dtype=torch.float32) * 2).sum().item())
        if got != n * (n - 1):
            facts["problem"] = f"a tiny torch op on the GPU gave {got}, not {n * (n - 1)}"
    except Exception as e:  # noqa: BLE001 - whatever stops torch on this GPU, the report says it
        msg = (str(e).strip().splitlines() or [""])[0]
        cap = "sm_{}{}".format(*facts["capability"]) if facts["capability"] else "unknown architecture"
        facts["problem"] = (f"torch {torch.__version__} cannot run on this GPU ({facts['gpu'] or '?'}, {cap}; torch's "
                            f"kernels are built for {', '.join(facts['arch_list']) or '?'}): {type(e).__name__}: {msg}")
    return facts


def _smi() -> str:
    """What ``nvidia-smi -L`` says (the driver's own list of GPUs): tells a GPU torch cannot see from no GPU."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, errors="replace", timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"did not run ({type(e).__name__})"
    said = " / ".join(x.strip() for x in (done.stdout + done.stderr).splitlines() if x.strip())
    return f"{said[:200] or '(nothing)'}" + (f" (exit {done.returncode})" if done.returncode else "")


def gpu_name() -> str:
    """The GPU's name for the dry run's report (in this process: the dry run touches no GPU); "no GPU" without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the report still gets written without torch
        pass
    return "no GPU"


#: what the preflight's child runs: ``gpu_facts``, printed as one JSON line
FACTS_CODE = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import gpu_check_preflight; "
              "print('GPU_FACTS ' + json.dumps(gpu_check_preflight.gpu_facts()))")


def preflight(env: dict) -> dict:
    """``gpu_facts`` in a child process under ``PREFLIGHT_LIMIT_S``: a hang or a crash is a ``problem`` too. A hung
    child is killed and waited on for ``KILL_GRACE_S`` only: one stuck in the driver (beyond SIGKILL) is left
    behind, and the run still writes its report (``subprocess.run`` would wait on it past the machine's limit)."""
    proc = subprocess.Popen([sys.executable, "-c", FACTS_CODE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        out, err = proc.communicate(timeout=PREFLIGHT_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        return {"gpu": None, "problem": f"asking torch for the GPU hung for {PREFLIGHT_LIMIT_S} s (the driver?)"}
    for line in out.splitlines():
        if line.startswith("GPU_FACTS "):
            return json.loads(line[len("GPU_FACTS "):])
    return {"gpu": None, "problem": f"asking torch for the GPU failed (exit {proc.returncode}): "
                                    + _first_error(out + err)}
