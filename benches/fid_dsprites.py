"""FID (and KID, PRDC) of procedural dSprites: a "train" and a "test" split, i.e. the first N and
the next N images of one seeded permutation of the 737,280 images (dSprites has no official
split), scored with the FID Inception under a preprocessing protocol. Prints one JSON line and
appends it to benches/results/fid_dsprites_<date>.jsonl.

    python3 benches/fid_dsprites.py --num 2048 --protocol clean [--device cuda]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffrep import data
from diffrep.metrics import generation as G


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--num", type=int, default=2048)
    ap.add_argument("--protocol", default="clean")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", default="fid,kid,prdc")
    a = ap.parse_args(argv)
    ds = data.load("dsprites", source="procedural")
    perm = np.random.default_rng(a.seed).permutation(len(ds))
    train = torch.from_numpy(np.ascontiguousarray(ds.images(np.sort(perm[:a.num]))))
    test = torch.from_numpy(np.ascontiguousarray(ds.images(np.sort(perm[a.num:2 * a.num]))))
    if train.dtype != torch.uint8:
        train, test = [(t.float() * 255).round().clamp(0, 255).to(torch.uint8) for t in (train, test)]
    train, test = train.permute(0, 3, 1, 2), test.permute(0, 3, 1, 2)
    t0 = time.time()
    r = G.evaluate(train, test, metrics=tuple(a.metrics.split(",")), protocol=a.protocol, device=a.device,
                   batch_size=a.batch_size, kid_subset_size=min(1000, a.num), progress=True)
    r["seconds"] = round(time.time() - t0, 1)
    r["images_per_second"] = round(2 * a.num / r["seconds"], 2)
    r["split"] = f"numpy default_rng({a.seed}).permutation of the 737,280 images: train = [:{a.num}], test = [{a.num}:{2 * a.num}]"
    r["machine"] = f"{platform.node()} {platform.processor() or platform.machine()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} torch {torch.__version__}"
    r.pop("real"), r.pop("fake")
    line = json.dumps(r, default=str)
    print(line)
    out = Path(__file__).parent / "results" / f"fid_dsprites_{datetime.date.today().isoformat()}.jsonl"
    with open(out, "a") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
