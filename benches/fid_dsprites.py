"""FID (and KID, PRDC) of procedural dSprites: a "train" and a "test" split, i.e. the first N and
the next N images of one seeded permutation of the 737,280 images (dSprites has no official
split), scored with the FID Inception under a preprocessing protocol. Prints one JSON line and
appends it to ``--out`` (default benches/results/fid_dsprites_<date>.jsonl, a log of such records).

    python3 benches/fid_dsprites.py --num 2048 --protocol clean [--device cuda]
    python3 benches/fid_dsprites.py --num 16 --metrics prdc --out /tmp/fid_check.jsonl   # a quick check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffrep import data
from diffrep.metrics import generation as G

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # harness.py, for a test that loads this file by path
from harness import choice_list, parse_device, positive_int, writable_out  # noqa: E402

METRICS = ("fid", "kid", "prdc")
PROTOCOLS = ("clean", "legacy_tf", "legacy_pytorch")


def main(argv=None):
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=positive_int, default=2048, help="images per split (>= 4: PRDC's k + 1; <= 368640)")
    ap.add_argument("--protocol", default="clean", choices=PROTOCOLS)
    ap.add_argument("--device", default=None, help="default: a GPU when one is usable, else the CPU")
    ap.add_argument("--batch-size", type=positive_int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", default="fid,kid,prdc", help="comma-separated: " + ",".join(METRICS))
    ap.add_argument("--out", default=None, help="the JSON-lines file the record is appended to (default "
                    "benches/results/fid_dsprites_<date>.jsonl)")
    a = ap.parse_args(argv)
    if not 4 <= a.num <= 737280 // 2:
        ap.error(f"--num {a.num}: each split needs 4 to 368640 images (PRDC's k + 1 = 4; two splits of 737,280)")
    metrics = choice_list(ap, "--metrics", a.metrics, METRICS)
    if not metrics:
        ap.error("--metrics: name at least one of " + ", ".join(METRICS))
    if a.device is not None:
        a.device = str(parse_device(ap, a.device))
    out = Path(a.out) if a.out else Path(__file__).parent / "results" / f"fid_dsprites_{datetime.date.today().isoformat()}.jsonl"
    writable_out(ap, "--out", str(out), append=True)
    ds = data.load("dsprites", source="procedural")
    perm = np.random.default_rng(a.seed).permutation(len(ds))
    train = torch.from_numpy(np.ascontiguousarray(ds.images(np.sort(perm[:a.num]))))
    test = torch.from_numpy(np.ascontiguousarray(ds.images(np.sort(perm[a.num:2 * a.num]))))
    if train.dtype != torch.uint8:
        train, test = [(t.float() * 255).round().clamp(0, 255).to(torch.uint8) for t in (train, test)]
    train, test = train.permute(0, 3, 1, 2), test.permute(0, 3, 1, 2)
    t0 = time.time()
    r = G.evaluate(train, test, metrics=tuple(m for m in METRICS if m in metrics), protocol=a.protocol, device=a.device,
                   batch_size=a.batch_size, kid_subset_size=min(1000, a.num), progress=True)
    r["seconds"] = round(time.time() - t0, 1)
    r["images_per_second"] = round(2 * a.num / r["seconds"], 2)
    r["split"] = f"numpy default_rng({a.seed}).permutation of the 737,280 images: train = [:{a.num}], test = [{a.num}:{2 * a.num}]"
    r["machine"] = f"{platform.node()} {platform.processor() or platform.machine()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} torch {torch.__version__}"
    r.pop("real"), r.pop("fake")
    line = json.dumps(r, default=str)
    print(line)
    with open(out, "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
