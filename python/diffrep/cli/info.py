"""``diffrep info``: versions, native modules built and usable, and why not."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("info", help="show versions and which native kernels are usable here")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def format_info(report: dict) -> str:
    lines = [
        f"diffrep {report['diffrep']}  torch {report['torch']}  python {report['python']}",
        f"platform: {report['platform']}",
        f"torch CUDA: {report['torch_cuda'] or 'none (CPU build)'}   GPU: {report['gpu'] or 'none'}",
        f"forced backend (DIFFREP_BACKEND): {report['forced_backend'] or 'none (auto)'}",
        "native modules:",
    ]
    for name, mod in report["modules"].items():
        state = "usable" if mod["usable"] else ("built, not usable" if mod["built"] else "not built")
        extra = []
        if "openmp_threads" in mod:
            extra.append(f"threads={mod['openmp_threads']}")
        if "runtime_version" in mod:
            extra.append(f"cudart={mod['runtime_version']}")
        if "architectures" in mod:
            extra.append(f"archs={mod['architectures']}")
        line = f"  {name:6s} {state}" + (f" ({', '.join(extra)})" if extra else "")
        if mod["reason"]:
            line += f"\n         reason: {mod['reason']}"
        lines.append(line)
    return "\n".join(lines)


def run(args) -> int:
    from .. import info

    report = info()
    print(json.dumps(report, indent=2) if args.json else format_info(report))
    return 0
