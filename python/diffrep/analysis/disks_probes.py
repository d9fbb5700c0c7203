"""Probes of a SAMI model trained on the procedural disks (:mod:`diffrep.data.disks`): posterior
means along factor sweeps (Fig. 2D-F), disk centres of images, and whether conditioning carries the
guide's disk position (Fig. 2C's claim, which the variability ratio alone cannot show). The
Bayes-optimal eps-MSE each factor is worth per noise level is :mod:`diffrep.analysis.disks_bayes`."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import finite_float, positive_int
from ._arrays import real_tensor
from ..data.disks import disks_geometry, render_disks
from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off
from .encoding import check_model, encode_batched, model_images, seeded

__all__ = ["posterior_mean_monotonicity", "disk_centres", "disk_position_transfer"]


def _contrast_background(rng: np.random.Generator, cfg, margin: float) -> float:
    """A background intensity in ``cfg.background_range`` at least ``margin`` from the foreground:
    darker or brighter with equal odds where the range allows both."""
    lo, hi = cfg.background_range
    fg = cfg.foreground
    sides = ((lo, min(hi, fg - margin)), (max(lo, fg + margin), hi))
    ok = [a <= b for a, b in sides]
    if not any(ok):
        raise ValueError(f"no background in {cfg.background_range} is {margin} away from the foreground {fg}")
    draws = [rng.uniform(a, b) if good else None for (a, b), good in zip(sides, ok)]
    k = int(rng.integers(2))
    return draws[k] if ok[k] else draws[1 - k]


def posterior_mean_monotonicity(model: SAMI, disks=None, *, num_lines: int = 16, num_points: int = 16,
                                seed: int = 0, background_margin: float = 0.15, num_readout: int = 2000) -> dict:
    """For each disks factor (c_x, c_y, I_bg): sweep it over its range with the other two fixed at
    random values (``num_lines`` sweeps of ``num_points``), encode, and report how the posterior
    means follow the factor. Position sweeps keep the background at least ``background_margin`` away
    from the foreground 0.5 (at equal intensities position is unidentifiable: Fig. 2E's singular
    point).

    Two read-outs per factor:

    - the latent axis most correlated with the factor: ``mean_abs_spearman`` (mean |Spearman rho|
      along sweeps), ``sign_consistent`` and ``fraction_strictly_monotone``. This asks for monotone
      *and* axis-aligned codes, so it drops when the code is spread over several axes (a latent
      wider than the three factors);
    - for c_x and c_y, the position read-out direction: least squares of (c_x, c_y) on the posterior
      means of ``num_readout`` independent disks, fitted separately for backgrounds darker and
      brighter than the foreground (the paper's polar code, Fig. 2E: the position code turns with
      the sign of the contrast). ``readout_spearman`` is the mean signed rho of the sweeps'
      projections on it (1: every sweep moves the posterior mean monotonically along one fixed
      latent direction), with ``readout_min_spearman``, ``readout_fraction_strictly_monotone`` and
      the fit's ``readout_r2``. It is invariant to rotations of the latent space.

    Also ``knn_r2``: a k-NN (k = 5) R^2 readout of each factor from the posterior means of the
    ``num_readout`` independent read-out disks, shuffled 5-fold cross-validation (the R^2 > 0.9 check of
    docs/methods/sami.md#validation-tiers; the code may be polar, so no linearity is asked). The read-out disks come from their own
    stream (``seed`` and 1), so the sweeps do not depend on ``num_readout``.
    """
    from scipy.stats import spearmanr
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neighbors import KNeighborsRegressor

    model = check_model(model)
    positive_int(num_lines, "num_lines")
    positive_int(num_readout, "num_readout")
    if not isinstance(num_points, int) or num_points < 3:
        raise ValueError(f"num_points must be an int >= 3, got {num_points!r}")
    if disks is None:
        disks = disks_geometry(model.config.denoiser.image_size)  # the training set's geometry at any size
    cfg = disks.config
    ranges = [cfg.x_range, cfg.y_range, cfg.background_range]

    def encode(vals):  # [n, 3] factors -> [n, d] posterior means
        img = render_disks(vals[:, 0], vals[:, 1], vals[:, 2], cfg)
        return encode_batched(model, torch.from_numpy(img).permute(0, 3, 1, 2) * 2 - 1)

    def with_bias(mu):
        return np.concatenate([mu, np.ones((mu.shape[0], 1))], 1)

    rr = np.random.default_rng([seed, 1])
    vals = np.stack([rr.uniform(*r, size=num_readout) for r in ranges], 1)
    vals[:, 2] = [_contrast_background(rr, cfg, background_margin) for _ in range(num_readout)]
    mu = encode(vals)
    readout_mu, readout_vals = mu, vals
    readout, readout_r2 = {}, {}
    for bright in (False, True):
        side = (vals[:, 2] > cfg.foreground) == bright
        if side.sum() <= mu.shape[1] + 1:
            continue  # too few to fit; a sweep on this side raises below
        X, Y = with_bias(mu[side]), vals[side, :2]
        readout[bright] = np.linalg.lstsq(X, Y, rcond=None)[0]  # [d + 1, 2]
        readout_r2[bright] = 1 - ((X @ readout[bright] - Y) ** 2).sum(0) / ((Y - Y.mean(0)) ** 2).sum(0)

    rng = np.random.default_rng(seed)
    names = ("x", "y", "background")
    out = {}
    for f in range(3):
        sweeps, projections = [], []
        for _ in range(num_lines):
            vals = np.stack([rng.uniform(*r, size=1).repeat(num_points) for r in ranges], 1)
            if f != 2:  # keep contrast for position sweeps
                vals[:, 2] = _contrast_background(rng, cfg, background_margin)
            vals[:, f] = np.linspace(*ranges[f], num_points)
            mu = encode(vals)
            sweeps.append(mu)
            if f != 2:
                bright = bool(vals[0, 2] > cfg.foreground)
                if bright not in readout:
                    raise ValueError(f"num_readout={num_readout} drew too few {'bright' if bright else 'dark'} "
                                     "backgrounds to fit the position read-out; raise it")
                projections.append(with_bias(mu) @ readout[bright][:, f])
        sweeps = np.stack(sweeps)  # [lines, points, d]
        rho = np.array([[spearmanr(np.arange(num_points), s[:, j])[0] if np.ptp(s[:, j]) > 0 else 0.0
                         for j in range(sweeps.shape[2])] for s in sweeps])
        rho = np.nan_to_num(rho)
        axis = int(np.argmax(np.abs(rho).mean(0)))
        diffs = np.diff(sweeps[:, :, axis], axis=1)
        mono = np.mean([(d > 0).all() or (d < 0).all() for d in diffs])
        out[names[f]] = {"axis": axis, "mean_abs_spearman": float(np.abs(rho[:, axis]).mean()),
                         "sign_consistent": float(np.mean(np.sign(rho[:, axis]) == np.sign(rho[:, axis].mean()))),
                         "fraction_strictly_monotone": float(mono)}
        if f != 2:
            prho = np.nan_to_num([spearmanr(np.arange(num_points), p)[0] if np.ptp(p) > 0 else 0.0
                                  for p in projections])
            out[names[f]].update(
                readout_spearman=float(prho.mean()), readout_min_spearman=float(prho.min()),
                readout_fraction_strictly_monotone=float(np.mean([(np.diff(p) > 0).all() for p in projections])),
                readout_r2={("bright" if b else "dark"): float(r[f]) for b, r in readout_r2.items()})
    # k-NN readout on the independent read-out disks (all three factors uniform), shuffled folds: the
    # sweep points are grouped by factor, and unshuffled folds over them hold near-constant targets
    folds = KFold(5, shuffle=True, random_state=seed)
    r2 = [float(cross_val_score(KNeighborsRegressor(5), readout_mu, readout_vals[:, f], cv=folds, scoring="r2").mean())
          for f in range(3)]
    out["knn_r2"] = dict(zip(names, r2))
    out.update(num_lines=num_lines, num_points=num_points, seed=seed, num_readout=num_readout)
    return out


# -- disks: does conditioning carry the position? ----------------------------------------------------
def disk_centres(images, foreground: float = 0.5) -> np.ndarray:
    """Disk centres (c_x, c_y) [N, 2] in pixel units (pixel i centred at i, as render_disks) of disks images
    [N, 1, S, S] in [-1, 1]: the background is the image median (the disk covers a small minority of
    the pixels), the disk mask is the clamped fraction (x - bg) / (fg - bg), the centre its centroid.
    Images with |bg - fg| < 0.1 (no visible disk) give NaN."""
    x = real_tensor(images, "images").to(torch.float64)
    foreground = finite_float(foreground, "foreground")
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[0] < 1:
        raise ValueError(f"images must be [N, 1, S, S], got {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images contain NaN or infinite values")
    x = (x[:, 0] + 1) / 2
    bg = x.flatten(1).median(1).values[:, None, None]
    contrast = foreground - bg
    ok = contrast.abs().flatten() >= 0.1
    mask = ((x - bg) / torch.where(contrast.abs() < 0.1, torch.ones_like(contrast), contrast)).clamp(0, 1)
    mask = mask * (mask > 0.25)  # drop sampling noise on the background
    idx = torch.arange(x.shape[-1], dtype=torch.float64)
    w = mask.sum((1, 2)).clamp_min(1e-12)
    cx, cy = (mask.sum(1) * idx).sum(1) / w, (mask.sum(2) * idx).sum(1) / w
    out = torch.stack([cx, cy], 1)
    out[~ok | (mask.sum((1, 2)) < 1)] = float("nan")
    return out.numpy()


def _finite_mean(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


@autocast_off  # the chains in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def disk_position_transfer(model: SAMI, disks=None, *, num_guides: int = 8, num_samples: int = 16,
                           min_contrast: float = 0.25, sampler: str | None = None, num_steps: int | None = None,
                           seed: int = 0) -> dict:
    """Does conditioning carry the disk position? For ``num_guides`` random disks with background
    at least ``min_contrast`` from the foreground, ``num_samples`` conditional samples each
    (Algorithm 1, z ~ q(z | x_0)); the mean |centre error| (pixels, :func:`disk_centres`) of the
    samples against their guide, and the same error for unconditional samples (the no-information
    baseline). Variability alone cannot tell: a pinned background already reduces it several-fold."""
    model = check_model(model)
    positive_int(num_guides, "num_guides")
    positive_int(num_samples, "num_samples")
    if not 0 < min_contrast <= 0.5:
        raise ValueError(f"min_contrast must be in (0, 0.5], got {min_contrast}")
    if disks is None:
        disks = disks_geometry(model.config.denoiser.image_size)
    cfg = disks.config
    rng = np.random.default_rng(seed)
    fg = cfg.foreground
    cx, cy = rng.uniform(*cfg.x_range, num_guides), rng.uniform(*cfg.y_range, num_guides)
    bg = np.array([_contrast_background(rng, cfg, min_contrast) for _ in range(num_guides)])
    guides = torch.from_numpy(render_disks(cx, cy, bg, cfg)).permute(0, 3, 1, 2).float() * 2 - 1
    gen = seeded(seed, model._device_dtype()[0])  # the chains draw on the model's device
    truth = disk_centres(guides, fg)
    on_model = model_images(model, guides, "guides")  # the model's device and dtype (the guides are rendered on the CPU)
    cond_err, missing = [], 0
    for i in range(num_guides):
        xs = model.conditional_sample(on_model[i:i + 1], num_samples, sampler=sampler, num_steps=num_steps,
                                      generator=gen).cpu()
        c = disk_centres(xs, fg)
        missing += int(np.isnan(c[:, 0]).sum())
        cond_err.append(_finite_mean(np.abs(c - truth[i])))
    unc = disk_centres(model.sample_unconditional(num_samples, sampler=sampler, num_steps=num_steps, generator=gen).cpu(), fg)
    unc_err = [_finite_mean(np.abs(unc - c)) for c in truth]
    # NaN (not a warning) where no sample shows a disk
    return {"cond_abs_error_px": _finite_mean(cond_err), "uncond_abs_error_px": _finite_mean(unc_err),
            "cond_abs_error_per_guide": cond_err, "guide_centres": truth.tolist(), "guide_background": bg.tolist(),
            "samples_without_disk": missing, "num_guides": num_guides, "num_samples": num_samples, "seed": seed}
