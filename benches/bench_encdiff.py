"""EncDiff + DyGA benches (issue 19): a training step of the Table 8 U-Net + Table 9 extractor, the
anchor refresh (DyGA anchor selection on N units x n points), DDIM-100 sampling.

    python benches/bench_encdiff.py                                   # CPU sizes (batch 4, 20 x 20k)
    python benches/bench_encdiff.py --device cuda --batch 512 --n 100000   # the issue's sizes on a GPU

Rows (ratios are measured side by side, interleaved, in one run):

* ``step``: loss + backward + AdamW of the paper model (VQ f = 4 first stage frozen, Table 8 U-Net,
  Table 9 extractor, N = 20) on 64 x 64 images: baseline (no DyGA, no Skip Dropout) vs DyGA (fitted
  anchors, Gumbel alignment) + Skip Dropout; ratio = the DyGA + SD overhead.
* ``refresh``: ``DyGA.fit`` (paper mode: HDDC AkjBkQkDk, K0 = 8 -> <= 32, 30 iterations, splits,
  filter, final EM) on features (n, 20, 32) of 20 units, each a planted 12-mode mixture squashed
  by a ReLU as the extractor's tokens are; vs the plain EM of the same K0 (no split passes).
* ``ddim``: DDIM with 100 steps (eta 0) for a batch of tokens, vs 100 bare U-Net forwards (the
  sampler's own overhead), plus the first stage's decode.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness import banner, interleaved_medians, load_average, parse_device, positive_int, sync
from diffrep.cluster import fit as hddc_fit
from diffrep.methods.dyga import DyGA, DyGAConfig
from diffrep.methods.encdiff import EncDiff, EncDiffConfig
from diffrep.nn.unet import unet_preset


def paper_model(dyga: bool, sd: float, dev):
    cfg = EncDiffConfig(unet=unet_preset("dyga-table8", skip_dropout_placement="reference_code", skip_dropout=sd),
                        conditioning="dyga" if dyga else "none")
    model = EncDiff(cfg)
    model.use_untrained_frozen_parts()  # timing: a step costs the same whatever the first stage's weights
    return model.to(dev).train()


def main():
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=positive_int, default=4)
    ap.add_argument("--units", type=positive_int, default=20)
    ap.add_argument("--n", type=positive_int, default=20000, help="points per unit for the refresh row (issue: 100000; "
                    ">= 16, two points per cluster of the plain EM's K = 8)")
    ap.add_argument("--sample-batch", type=positive_int, default=2)
    ap.add_argument("--ddim-steps", type=positive_int, default=100, help="DDIM steps of the ddim row (the paper's 100; "
                    "fewer for a quick check of the code path, scripts/gpu_check.py --dry-run)")
    ap.add_argument("--repeat", type=positive_int, default=3, help="interleaved rounds (at least 3 are run)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["step", "refresh", "ddim"])
    args = ap.parse_args()
    if args.n < 16:
        ap.error(f"--n {args.n}: the refresh row's plain EM at K = 8 needs at least 16 points per unit")
    dev = parse_device(ap, args.device)
    print(banner(dev, f"load {load_average()}"))
    g = torch.Generator().manual_seed(0)

    if "step" not in args.skip:
        x = (torch.rand(args.batch, 3, 64, 64, generator=g) * 2 - 1).to(dev)
        base, dy = paper_model(False, 0.0, dev), paper_model(True, 0.2, dev)
        with torch.no_grad():
            feats = dy.extractor.eval()(x.repeat(max(1, 64 // args.batch), 1, 1, 1))[1]
        dy.extractor.train()
        dy.dyga.config = DyGAConfig(**{**dy.dyga.config.to_dict(), "min_mass": 2.0})
        dy.dyga.fit(feats.float())
        opts = [torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (base, dy)]

        def step(m, opt):
            def run():
                out = m.loss(x, step=1)
                out["loss"].backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            return run

        tb, td = interleaved_medians([step(base, opts[0]), step(dy, opts[1])], dev, args.repeat, budget=60.0)
        print(f"step    batch {args.batch:4d}  baseline {tb * 1e3:9.1f} ms  DyGA+SD {td * 1e3:9.1f} ms  "
              f"ratio {td / tb:5.2f}  ({sum(p.numel() for p in base.parameters()) / 1e6:.1f}M params)")
        del base, dy, opts

    if "refresh" not in args.skip:
        U, n, d = args.units, args.n, 32
        centres = torch.randn(U, 12, d, generator=g) * 2 + 1
        lab = torch.randint(0, 12, (U, n), generator=g)
        raw = (torch.gather(centres, 1, lab[..., None].expand(-1, -1, d)) + 0.3 * torch.randn(U, n, d, generator=g)).relu()
        feats = raw.permute(1, 0, 2).contiguous().to(dev)
        dy = DyGA(DyGAConfig(num_units=U, token_dim=d)).to(dev)
        stats = {}

        def refresh():
            stats.update(dy.fit(feats))

        xn = ((raw - raw.amin(dim=(1, 2), keepdim=True))
              / (raw.amax(dim=(1, 2), keepdim=True) - raw.amin(dim=(1, 2), keepdim=True) + 1e-6)).to(dev)

        def plain():
            hddc_fit(xn, 8, 8, max_iter=30, split=False)

        tr, tp = interleaved_medians([refresh, plain], dev, max(1, args.repeat - 1), budget=5.0)
        sync(dev)
        print(f"refresh {U} units x {n} points x {d}: DyGA.fit {tr:8.2f} s  plain EM K=8 {tp:8.2f} s  ratio {tr / tp:5.2f}  "
              f"anchors/unit mean {stats['anchors_mean']:.1f} (min {min(stats['n_anchors'])}, max {max(stats['n_anchors'])}), "
              f"units above psi {sum(1 for c in stats['clusters_above_psi'] if c)}")

    if "ddim" not in args.skip:
        m = paper_model(True, 0.2, dev).eval()
        tok = torch.rand(args.sample_batch, 20, 32, generator=g).to(dev)
        zT = torch.randn(args.sample_batch, 3, 16, 16, generator=g).to(dev)
        t = torch.full((args.sample_batch,), 500, device=dev)

        def ddim():
            with torch.no_grad():
                m.from_latent(m._ddim(tok, zT, args.ddim_steps))

        def bare():
            with torch.no_grad():
                for _ in range(args.ddim_steps):
                    m.unet(zT, t, context=tok)

        t0 = time.perf_counter()
        td, tb = interleaved_medians([ddim, bare], dev, max(1, args.repeat - 1), budget=30.0)
        print(f"ddim    batch {args.sample_batch:4d}  DDIM-{args.ddim_steps} + decode {td:8.2f} s  {args.ddim_steps} U-Net "
              f"forwards {tb:8.2f} s  "
              f"ratio {td / tb:5.2f}  (wall {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
