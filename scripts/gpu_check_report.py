"""The report of scripts/gpu_check.py: the Markdown of the steps run so far (step table, targets, limits, each
step's output), the summary printed last, and the writer that rewrites it after every step."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

from gpu_check_steps import short_limits
from gpu_check_targets import targets


def _excerpt(output: str, first_error: str, keep: int = 12000) -> str:
    """The output as the report keeps it: its last ``keep`` characters, and where the first error lies before
    them (a failed build's compiler error under minutes of CMake lines), the lines around it first."""
    out = output.rstrip()
    if len(out) <= keep:
        return out
    tail = out[-keep:]
    key = first_error[:80]
    if not key or key in tail or key not in out:
        return tail
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if key in line.strip())
    around = "\n".join(lines[max(0, i - 10):i + 20])
    return f"(the lines around the first error)\n{around}\n(...)\n(the last {keep} characters)\n{tail}"


def report(results: list[dict], *, dry_run: bool, gpu: str, total_s: float, pending: list[str] = (),
           facts: dict | None = None, notes: list[str] = ()) -> str:
    """The Markdown report of the steps run so far; ``pending`` names the steps still to run (the report is
    rewritten after every step, so a run cut off from outside leaves what it measured); ``facts``: the preflight's
    view of the GPU (``gpu_facts``); ``notes``: lines said before any step (a problem that stopped the run)."""
    torch_line = []
    if facts and facts.get("torch"):
        cap = "sm_{}{}".format(*facts["capability"]) if facts.get("capability") else "no GPU"
        torch_line = [f"- torch: {facts['torch']} (CUDA {facts.get('torch_cuda') or 'none'}; kernels for "
                      f"{', '.join(facts.get('arch_list') or []) or '-'}); the GPU: {cap}"]
    lines = [f"# GPU check{' (dry run on the CPU backends)' if dry_run else ''}: {gpu}", "",
             *[f"**{n}**" for n in notes], *([""] if notes else []),
             *([f"**In progress or cut off: {len(pending)} step(s) not run yet: {', '.join(pending)}.**", ""]
               if pending else []),
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), Python {platform.python_version()}",
             *torch_line,
             f"- total: {total_s:.0f} s", "",
             "| step | status | seconds | first error | target |", "|---|---|---|---|---|"]
    for r in results:
        err = r["first_error"].replace("|", "\\|")
        lines.append(f"| {r['step'].name} | {r['status']} | {r['seconds']:.1f} | {err} | {r['step'].target} |")
    outputs = {r["step"].name: r["output"] for r in results}
    outputs.update({r["step"].name + " argv": " ".join(r["step"].argv) for r in results})
    lines += ["", "## Targets" + (" (dry run: CPU numbers at tiny sizes, not the GPU targets)" if dry_run else ""), "",
              "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(outputs)]
    short = {s.name for s in short_limits([r["step"] for r in results])}
    lines += ["", "## Limits", "", "Each step ran under its own time limit; the estimate is the expected time on an "
              "H100 (a guess until a GPU has run the plan). Short limits (under 1.5x the estimate; a slow machine may "
              "cut these steps off first): " + (", ".join(sorted(short)) or "none") + ".", "",
              "| step | limit s | H100 estimate s | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['step'].name}{' (short)' if r['step'].name in short else ''} | {r['limit_s']:.0f} | "
              f"{r['step'].estimate_s or '-'} | {r['seconds']:.1f} |" for r in results]
    for r in results:
        if r["status"] == "not run":
            continue
        lines += ["", f"## {r['step'].name}", "", "`" + " ".join(r["step"].argv) + "`", "", "```",
                  _excerpt(r["output"], r["first_error"]), "```"]
    return "\n".join(lines) + "\n"


def summary(text: str) -> str:
    """The report's head (the step table and the targets), printed last: on a machine whose files may not come
    back, the end of the command's output still carries them."""
    return text.split("\n## Limits")[0].rstrip() + "\n"


class _Writer:
    """Writes the report after every step; a failed write (a full disk, the folder taken away) is said once and
    the run goes on (the summary printed at the end carries the results)."""

    def __init__(self, path: Path):
        self.path, self.failed = path, False

    def __call__(self, text: str) -> None:
        try:  # whole or not at all: a kill mid-write leaves the last complete report, never a truncated one
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            if not self.failed:
                print(f"gpu_check: warning: the report {self.path} cannot be written ({type(e).__name__}: {e}); "
                      "the summary at the end of this output holds the results", file=sys.stderr, flush=True)
            self.failed = True
