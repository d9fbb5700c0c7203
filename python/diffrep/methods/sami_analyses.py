"""The analyses the SAMI paper reports, as functions on a trained :class:`~diffrep.methods.sami.SAMI`
(sami.md section 10). Each returns plain Python numbers/lists (JSON-ready) and, where the paper
shows images, tensors in [-1, 1].

- :func:`variability` / :func:`variability_reduction`: V = mean ||x - xbar||^2 (Sec. 3, A.6, 10.1);
- :func:`posterior_variance_spectrum`: sigma_j^2(x_t) over t (Fig. 3C-D, 10.2);
- :func:`perturb_low_variance_axes`: z = mu_0 + alpha e_i on the smallest-variance axes (Fig. 3E, 10.3);
- :func:`global_axes`: the A.8 coherence score N_i, G_i = -log N_i (10.4);
- :func:`latent_straightness`: straightness of posterior-mean trajectories (Fig. 4B-C, 10.5);
- :func:`attribute_metrics`: TAD, latent AUROC and the LR participation ratio (Fig. 3H, Table 2);
- :func:`factor_metrics`: Modularity/explicitness and DCI on ground-truth data (dSprites, A.7);
- :func:`guidance_magnitude`: per-step guidance vs denoiser norms (Fig. 6-7);
- :func:`posterior_mean_monotonicity`: disks posterior means along factor sweeps (Fig. 2D-F);
- :func:`disk_centres` / :func:`disk_position_transfer`: whether conditional disks samples keep the
  guide's disk position (Fig. 2C's claim, which the variability ratio alone cannot show); the
  Bayes-optimal eps-MSE each disks factor is worth per noise level is :mod:`diffrep.methods.disks_bayes`;
- :func:`frechet_distance`, :func:`load_feature_extractor`, :func:`fid`: FID from a user-supplied
  feature extractor (no Inception weights are bundled or downloaded).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch

from .sami import SAMI, check_count

__all__ = ["variability", "variability_reduction", "posterior_variance_spectrum", "perturb_low_variance_axes",
           "disk_centres", "disk_position_transfer", "global_axes", "latent_straightness", "attribute_metrics", "factor_metrics", "guidance_magnitude",
           "posterior_mean_monotonicity", "frechet_distance", "load_feature_extractor", "fid", "encode_batched"]


def _check_model(model) -> SAMI:
    if not isinstance(model, SAMI):
        raise TypeError(f"model must be a diffrep.methods.sami.SAMI, got {type(model).__name__}")
    return model


def _images(model: SAMI, x, name: str = "images") -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = model._check_images(x, name)
    device, dtype = model._device_dtype()
    return x.to(device=device, dtype=dtype)


def _gen(seed) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(int(seed))


def encode_batched(model: SAMI, images, batch_size: int = 256, *, with_logvar: bool = False):
    """Posterior means (and log-variances) of ``images`` [N, C, H, W], in batches; numpy float64."""
    model = _check_model(model)
    check_count(batch_size, "batch_size")
    x = _images(model, images)
    mus, lvs = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            mu, lv = model.posterior(x[i:i + batch_size])
            mus.append(mu.double().cpu())
            lvs.append(lv.double().cpu())
    mu = torch.cat(mus).numpy()
    return (mu, torch.cat(lvs).numpy()) if with_logvar else mu


# -- 10.1 variability ---------------------------------------------------------------------------
def variability(samples) -> dict:
    """V = (1/N) sum_n ||x_n - xbar||^2 of a sample set [N, ...] (sami.md 10.1).

    ``v_per_pixel`` divides by the dimension D (diffrep default), ``v_sum`` does not; ``sem_per_pixel``
    is the standard error of the per-sample squared distances / D.
    """
    x = torch.as_tensor(samples).double()
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"samples must be [N >= 2, ...], got {tuple(x.shape)}")
    x = x.flatten(1)
    sq = ((x - x.mean(0, keepdim=True)) ** 2).sum(1)
    D = x.shape[1]
    return {"v_per_pixel": float(sq.mean() / D), "v_sum": float(sq.mean()),
            "sem_per_pixel": float(sq.std(unbiased=True) / math.sqrt(len(sq)) / D), "num_samples": int(x.shape[0]),
            "dim": int(D)}


def variability_reduction(model: SAMI, guides, num_samples: int = 64, *, reference=None,
                          z_mode: str = "fixed", sampler: str | None = None, num_steps: int | None = None,
                          batch_size: int = 256, seed: int = 0) -> dict:
    """Variability of unconditional samples vs samples conditioned on each guide image (Fig. 5, A.6).

    For each guide, ``num_samples`` chains of Algorithm 1 (``z_mode`` as in
    :meth:`SAMI.conditional_sample`); the same number of unconditional chains (g = 0) give
    V_uncond; ``reference`` images (e.g. the test set) give V_data. Reports per-pixel values, the
    mean over guides of V_cond and ``ratio_uncond_over_cond`` (the paper: 0.56 -> 0.004 on disks).
    The paper draws 4100 samples per guide; ``num_samples`` sets this.
    """
    model = _check_model(model)
    check_count(num_samples, "num_samples")
    check_count(batch_size, "batch_size")
    if num_samples < 2:
        raise ValueError("num_samples must be >= 2 to measure variability")
    g = _images(model, guides, "guides")
    gen = _gen(seed)
    per_guide = []
    for i in range(g.shape[0]):
        chunks = []
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            chunks.append(model.conditional_sample(g[i:i + 1], n, z_mode=z_mode, sampler=sampler,
                                                   num_steps=num_steps, generator=gen).cpu())
        per_guide.append(variability(torch.cat(chunks)))
    unc = torch.cat([model.sample_unconditional(min(batch_size, num_samples - s), sampler=sampler, num_steps=num_steps,
                                                generator=gen).cpu() for s in range(0, num_samples, batch_size)])
    v_unc = variability(unc)
    v_cond = float(np.mean([p["v_per_pixel"] for p in per_guide]))
    out = {"v_uncond": v_unc["v_per_pixel"], "v_uncond_sem": v_unc["sem_per_pixel"], "v_cond_mean": v_cond,
           "v_cond_per_guide": [p["v_per_pixel"] for p in per_guide],
           "v_cond_sem_per_guide": [p["sem_per_pixel"] for p in per_guide],
           "ratio_uncond_over_cond": v_unc["v_per_pixel"] / v_cond if v_cond > 0 else float("inf"),
           "num_guides": int(g.shape[0]), "num_samples_per_guide": num_samples, "z_mode": z_mode,
           "sampler": sampler or model.config.sampler, "num_steps": num_steps, "seed": seed, "normalisation": "per_pixel"}
    if reference is not None:
        out["v_data"] = variability(torch.as_tensor(reference))["v_per_pixel"]
    return out


# -- 10.2 posterior variance spectrum ------------------------------------------------------------
def posterior_variance_spectrum(model: SAMI, image, timesteps: Sequence[int] | None = None, *,
                                num_noise: int = 16, seed: int = 0) -> dict:
    """sigma_j^2(x_t) per latent axis for one image over noise levels (Fig. 3C-D, sami.md 10.2).

    ``var[k][j]`` is the mean over ``num_noise`` draws of x_t at ``timesteps[k]`` (default 10 levels
    spread over [0, T-1]); ``var_clean`` the clean image's spectrum; ``order_clean`` axes sorted by
    increasing clean variance; ``rank_at_largest_t`` the rank of each axis at the largest t;
    ``rank_spearman`` the Spearman correlation of axis ranks at the smallest and largest t (1 when
    the rank order is kept); ``mean_var_nondecreasing`` whether the axis-mean variance rises with t.
    """
    model = _check_model(model)
    x = _images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError(f"image must be a single image [1, C, H, W], got batch {x.shape[0]}")
    check_count(num_noise, "num_noise")
    T = model.schedule.num_timesteps
    ts = list(np.linspace(0, T - 1, 10).round().astype(int)) if timesteps is None else [int(t) for t in timesteps]
    if not ts or any(not 0 <= t < T for t in ts):
        raise ValueError(f"timesteps must lie in [0, {T - 1}], got {ts}")
    ts = sorted({int(t) for t in ts})
    gen = _gen(seed)
    with torch.no_grad():
        var0 = model.posterior(x)[1].exp()[0].double().cpu()
        var = []
        for t in ts:
            xs = x.expand(num_noise, *x.shape[1:])
            tt = torch.full((num_noise,), t, dtype=torch.long, device=x.device)
            noise = torch.randn(xs.shape, generator=gen).to(xs)
            var.append(model.posterior(model.schedule.q_sample(xs, tt, noise))[1].exp().mean(0).double().cpu())
    var = torch.stack(var)
    from scipy.stats import spearmanr

    rho = float(spearmanr(var[0].numpy(), var[-1].numpy())[0]) if var.shape[1] > 1 else 1.0
    means = var.mean(1)
    return {"timesteps": ts, "var": var.tolist(), "var_clean": var0.tolist(),
            "order_clean": torch.argsort(var0).tolist(),
            "rank_at_largest_t": torch.argsort(torch.argsort(var[-1])).tolist(), "rank_spearman": rho,
            "mean_var": means.tolist(), "mean_var_nondecreasing": bool((means[1:] >= means[:-1] - 1e-12).all()),
            "num_noise": num_noise, "seed": seed}


# -- 10.3 perturbation along low-variance axes ----------------------------------------------------
def perturb_low_variance_axes(model: SAMI, image, alphas: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0), *,
                              num_axes: int = 2, axes: Sequence[int] | None = None, seed: int = 0,
                              sampler: str | None = None, num_steps: int | None = None) -> dict:
    """Generate from z = mu_0 + alpha e_i for the ``num_axes`` axes of smallest sigma_i^2(x_0) (or the
    given ``axes``), and from z = mu_0 + alpha e_i + alpha' e_j for the first two (Fig. 3E).

    All chains share one x_T and one noise seed so that rows differ only through z. ``alpha`` is in
    units of the axis' posterior standard deviation sigma_i(x_0) (the paper gives no range).
    Returns ``axes``, ``rows`` [num_axes, len(alphas), C, H, W] and ``pair`` [len, len, C, H, W] (or None).
    """
    model = _check_model(model)
    x = _images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError("image must be a single image [1, C, H, W]")
    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ValueError("alphas must be non-empty")
    with torch.no_grad():
        mu, lv = model.posterior(x)
    sd = (0.5 * lv[0]).exp()
    d = model.latent_dim
    if axes is None:
        check_count(num_axes, "num_axes")
        axes = torch.argsort(lv[0])[: min(num_axes, d)].tolist()
    else:
        axes = list(model._axes(tuple(int(a) for a in axes)))
    A = len(alphas)
    zs = []
    for i in axes:
        for a in alphas:
            z = mu[0].clone()
            z[i] += a * sd[i]
            zs.append(z)
    pair_z = []
    if len(axes) >= 2:
        i, j = axes[:2]
        for a in alphas:
            for b in alphas:
                z = mu[0].clone()
                z[i] += a * sd[i]
                z[j] += b * sd[j]
                pair_z.append(z)
    z = torch.stack(zs + pair_z)
    x_T = torch.randn((1, *model.image_shape), generator=_gen(seed)).to(mu).expand(z.shape[0], -1, -1, -1).contiguous()
    imgs = model.generate(z, x_T=x_T, generator=_gen(seed + 1), sampler=sampler, num_steps=num_steps).cpu()
    rows = imgs[: len(zs)].reshape(len(axes), A, *imgs.shape[1:])
    pair = imgs[len(zs):].reshape(A, A, *imgs.shape[1:]) if pair_z else None
    return {"axes": axes, "alphas": alphas, "posterior_std": sd[axes].tolist(), "rows": rows, "pair": pair}


# -- 10.4 globally preserved axes (A.8) -------------------------------------------------------------
def global_axes(model: SAMI, images, t: int | None = None, *, num_noise: int = 1, seed: int = 0,
                batch_size: int = 64) -> dict:
    """A.8's global-axes measure (sami.md 10.4, diffrep's single-number definition):
    N_i = sqrt(2 Var_{x_0}[mu_i(x_0)]) * E_{x_t}[ ||grad_{x_t} sigma_i^2(x_t)||_2 / sigma_i^4(x_t)],
    G_i = -log N_i (larger = more global). x_t is drawn from ``images`` at ``t`` (default T - 1).
    Returns the ingredients (Fig. 3F) and the axes sorted by decreasing coherence. N_i = 0 (G = inf)
    when sigma does not depend on x.
    """
    model = _check_model(model)
    x = _images(model, images)
    if x.shape[0] < 2:
        raise ValueError("images must hold at least 2 images (Var over x_0)")
    check_count(num_noise, "num_noise")
    T = model.schedule.num_timesteps
    t = T - 1 if t is None else int(t)
    if not 0 <= t < T:
        raise ValueError(f"t must lie in [0, {T - 1}], got {t}")
    gen = _gen(seed)
    mu0 = torch.from_numpy(encode_batched(model, x, batch_size))
    var_mu = mu0.var(0, unbiased=True)
    d = model.latent_dim
    ratio_sum = torch.zeros(d, dtype=torch.float64)
    grad_sum = torch.zeros(d, dtype=torch.float64)
    s2_sum = torch.zeros(d, dtype=torch.float64)
    count = 0
    for _ in range(num_noise):
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            tt = torch.full((xb.shape[0],), t, dtype=torch.long, device=xb.device)
            xt = model.schedule.q_sample(xb, tt, torch.randn(xb.shape, generator=gen).to(xb)).requires_grad_(True)
            with torch.enable_grad():
                s2 = model.posterior(xt)[1].exp()
                # one VJP per axis; per-sample rows because the encoder has no cross-sample coupling
                norms = torch.stack([torch.autograd.grad(s2[:, i].sum(), xt, retain_graph=i < d - 1)[0].flatten(1).norm(dim=1)
                                     for i in range(d)], 1)
            s2 = s2.detach()
            ratio_sum += (norms / s2 ** 2).double().sum(0).cpu()
            grad_sum += norms.double().sum(0).cpu()
            s2_sum += s2.double().sum(0).cpu()
            count += xb.shape[0]
    N = (2 * var_mu).sqrt() * ratio_sum / count
    G = -torch.log(N)
    return {"t": t, "N": N.tolist(), "coherence": G.tolist(), "var_mu": var_mu.tolist(),
            "sigma2_xt": (s2_sum / count).tolist(), "grad_sigma2_norm": (grad_sum / count).tolist(),
            "order_by_coherence": torch.argsort(G, descending=True).tolist(), "num_images": int(x.shape[0]),
            "num_noise": num_noise, "seed": seed}


# -- 10.5 / 10.6 / 10.7 / 10.8 metrics through the suite ---------------------------------------------
def latent_straightness(model: SAMI, videos, *, batch_size: int = 256) -> dict:
    """Straightness of posterior-mean trajectories of frame sequences ``videos`` [N, F, C, H, W]
    (Fig. 4B-C), with the pixel-space straightness of the same frames for comparison."""
    from ..metrics import straightness

    model = _check_model(model)
    v = torch.as_tensor(videos)
    if v.dim() != 5 or v.shape[1] < 3:
        raise ValueError(f"videos must be [N, F >= 3, C, H, W], got {tuple(v.shape)}")
    N, Fr = v.shape[:2]
    codes = encode_batched(model, v.reshape(N * Fr, *v.shape[2:]), batch_size).reshape(N, Fr, -1)
    lat = straightness(codes)
    pix = straightness(v.reshape(N, Fr, -1).double().numpy())
    return {"latent_straightness": lat["straightness"], "latent_curvature_deg": lat["curvature_deg"],
            "pixel_straightness": pix["straightness"], "pixel_curvature_deg": pix["curvature_deg"],
            "num_videos": int(N), "num_frames": int(Fr)}


def attribute_metrics(model: SAMI, images, attributes, *, tad_variant: str = "infodiffusion", seed: int = 0,
                      batch_size: int = 256) -> dict:
    """TAD, latent AUROC and the logistic-regression participation ratio (Fig. 3H, Table 2) of the
    posterior means for binary ``attributes`` [N, A]."""
    from ..metrics import latent_auroc, lr_participation_ratio, tad

    codes = encode_batched(_check_model(model), images, batch_size)
    attrs = np.asarray(attributes)
    out = {}
    for res in (tad(codes, attrs, variant=tad_variant, seed=seed), latent_auroc(codes, attrs, seed=seed),
                lr_participation_ratio(codes, attrs)):
        out.update({k: float(v) for k, v in res.items() if isinstance(v, (int, float))})
    out["num_images"] = int(codes.shape[0])
    return out


def _observations_to_images(obs) -> torch.Tensor:
    a = np.asarray(obs)
    x = torch.from_numpy(a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0))
    if x.dim() == 3:
        x = x[..., None]
    return x.permute(0, 3, 1, 2).contiguous() * 2 - 1


def factor_metrics(model: SAMI, dataset, *, num_train: int = 10000, num_test: int = 5000, seed: int = 0,
                   batch_size: int = 256) -> dict:
    """Modularity/explicitness and DCI of the posterior means on a ground-truth dataset
    (``sample_factors`` / ``sample_observations_from_factors``; dSprites in A.7 with 10,000 train
    and 5,000 test samples). Observations in [0, 1] (or uint8) HWC are mapped to [-1, 1] CHW."""
    from ..metrics import dci, modularity_explicitness

    model = _check_model(model)
    for name in ("sample_factors", "sample_observations_from_factors"):
        if not callable(getattr(dataset, name, None)):
            raise TypeError(f"dataset must be a ground-truth dataset with {name}()")
    check_count(num_train, "num_train")
    check_count(num_test, "num_test")
    rng = np.random.RandomState(seed)
    splits = []
    for n in (num_train, num_test):
        f = dataset.sample_factors(n, rng)
        x = _observations_to_images(dataset.sample_observations_from_factors(f, rng))
        splits += [encode_batched(model, x, batch_size), np.asarray(f)]
    out = {}
    for res in (modularity_explicitness(*splits), dci(*splits, seed=seed)):
        out.update({k: float(v) for k, v in res.items() if isinstance(v, (int, float))})
    out.update(num_train=num_train, num_test=num_test, seed=seed)
    return out


def guidance_magnitude(model: SAMI, image, *, z_mode: str = "posterior_mean", sampler: str | None = None,
                       num_steps: int | None = None, seed: int = 0) -> dict:
    """Per reverse step: ||k_t g|| (the guidance's contribution in eps units) and ||eps_theta||, and
    the ratio (Fig. 6-7 diagnostic: where along the chain the latents act), for one guide image."""
    model = _check_model(model)
    x = _images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError("image must be a single image [1, C, H, W]")
    rec: dict[str, list] = {"t": [], "guidance_norm": [], "eps_norm": []}

    def cb(i, t, xt, eps, g):
        tt = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        k = model.guidance_coefficient(tt, xt, literal=False)
        rec["t"].append(int(t))
        rec["guidance_norm"].append(float((k * g).flatten(1).norm(dim=1).mean()))
        rec["eps_norm"].append(float(eps.flatten(1).norm(dim=1).mean()))

    model.conditional_sample(x, 1, z_mode=z_mode, sampler=sampler, num_steps=num_steps, generator=_gen(seed), callback=cb)
    rec["ratio"] = [g / e if e > 0 else float("inf") for g, e in zip(rec["guidance_norm"], rec["eps_norm"])]
    return rec


# -- disks: posterior means along factor sweeps (Fig. 2D-F) ------------------------------------------
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

    Also a 5-fold k-NN R^2 readout of the factors from the posterior means of all sweep points. The
    read-out disks come from their own stream (``seed`` and 1), so the sweeps do not depend on
    ``num_readout``.
    """
    from scipy.stats import spearmanr
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsRegressor

    from ..data.disks import render_disks

    model = _check_model(model)
    check_count(num_lines, "num_lines")
    check_count(num_readout, "num_readout")
    if not isinstance(num_points, int) or num_points < 3:
        raise ValueError(f"num_points must be an int >= 3, got {num_points!r}")
    if disks is None:
        from .sami_recipes import disks_geometry

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
    out, all_vals, all_mu = {}, [], []
    for f in range(3):
        sweeps, projections = [], []
        for _ in range(num_lines):
            vals = np.stack([rng.uniform(*r, size=1).repeat(num_points) for r in ranges], 1)
            if f != 2:  # keep contrast for position sweeps
                vals[:, 2] = _contrast_background(rng, cfg, background_margin)
            vals[:, f] = np.linspace(*ranges[f], num_points)
            mu = encode(vals)
            sweeps.append(mu)
            all_vals.append(vals)
            all_mu.append(mu)
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
    X, Y = np.concatenate(all_mu), np.concatenate(all_vals)
    r2 = [float(cross_val_score(KNeighborsRegressor(5), X, Y[:, f], cv=5, scoring="r2").mean()) for f in range(3)]
    out["knn_r2"] = dict(zip(names, r2))
    out.update(num_lines=num_lines, num_points=num_points, seed=seed, num_readout=num_readout)
    return out


# -- disks: does conditioning carry the position? ----------------------------------------------------
def disk_centres(images, foreground: float = 0.5) -> np.ndarray:
    """Disk centres (c_x, c_y) [N, 2] in pixel units (pixel i centred at i, as render_disks) of disks images
    [N, 1, S, S] in [-1, 1]: the background is the image median (the disk covers a small minority of
    the pixels), the disk mask is the clamped fraction (x - bg) / (fg - bg), the centre its centroid.
    Images with |bg - fg| < 0.1 (no visible disk) give NaN."""
    x = torch.as_tensor(images, dtype=torch.float64)
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


def disk_position_transfer(model: SAMI, disks=None, *, num_guides: int = 8, num_samples: int = 16,
                           min_contrast: float = 0.25, sampler: str | None = None, num_steps: int | None = None,
                           seed: int = 0) -> dict:
    """Does conditioning carry the disk position? For ``num_guides`` random disks with background
    at least ``min_contrast`` from the foreground, ``num_samples`` conditional samples each
    (Algorithm 1, z ~ q(z | x_0)); the mean |centre error| (pixels, :func:`disk_centres`) of the
    samples against their guide, and the same error for unconditional samples (the no-information
    baseline). Variability alone cannot tell: a pinned background already reduces it several-fold."""
    from ..data.disks import render_disks

    model = _check_model(model)
    check_count(num_guides, "num_guides")
    check_count(num_samples, "num_samples")
    if not 0 < min_contrast <= 0.5:
        raise ValueError(f"min_contrast must be in (0, 0.5], got {min_contrast}")
    if disks is None:
        from .sami_recipes import disks_geometry

        disks = disks_geometry(model.config.denoiser.image_size)
    cfg = disks.config
    rng = np.random.default_rng(seed)
    fg = cfg.foreground
    cx, cy = rng.uniform(*cfg.x_range, num_guides), rng.uniform(*cfg.y_range, num_guides)
    bg = np.array([_contrast_background(rng, cfg, min_contrast) for _ in range(num_guides)])
    guides = torch.from_numpy(render_disks(cx, cy, bg, cfg)).permute(0, 3, 1, 2).float() * 2 - 1
    gen = _gen(seed)
    truth = disk_centres(guides, fg)
    cond_err, missing = [], 0
    for i in range(num_guides):
        xs = model.conditional_sample(guides[i:i + 1], num_samples, sampler=sampler, num_steps=num_steps, generator=gen).cpu()
        c = disk_centres(xs, fg)
        missing += int(np.isnan(c[:, 0]).sum())
        cond_err.append(_finite_mean(np.abs(c - truth[i])))
    unc = disk_centres(model.sample_unconditional(num_samples, sampler=sampler, num_steps=num_steps, generator=gen).cpu(), fg)
    unc_err = [_finite_mean(np.abs(unc - c)) for c in truth]
    # NaN (not a warning) where no sample shows a disk
    return {"cond_abs_error_px": _finite_mean(cond_err), "uncond_abs_error_px": _finite_mean(unc_err),
            "cond_abs_error_per_guide": cond_err, "guide_centres": truth.tolist(), "guide_background": bg.tolist(),
            "samples_without_disk": missing, "num_guides": num_guides, "num_samples": num_samples, "seed": seed}


# -- FID (10.7) ------------------------------------------------------------------------------------
def frechet_distance(feats_a, feats_b) -> float:
    """||m_a - m_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2}) of two feature sets [N, k] (Heusel et al. 2017).

    The matrix square root uses the symmetric form (C_a^{1/2} C_b C_a^{1/2})^{1/2}, which has the
    same trace and stays real."""
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features must be [N >= 2, k] with equal k, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("features contain NaN or inf")
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def psd_sqrt(c):
        w, v = np.linalg.eigh((c + c.T) / 2)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    ra = psd_sqrt(ca)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross)


def load_feature_extractor(path: str | os.PathLike | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A TorchScript feature extractor from ``path`` (or ``$DIFFREP_FID_EXTRACTOR``), e.g. a locally
    saved Inception-v3 pool3 network. diffrep bundles no Inception weights and downloads nothing:
    without a file this raises FileNotFoundError saying how to provide one. The extractor is called
    on images in [-1, 1], [B, C, H, W] (1-channel images are repeated to 3) and must return [B, k]."""
    path = path or os.environ.get("DIFFREP_FID_EXTRACTOR")
    if not path:
        raise FileNotFoundError("FID needs a feature extractor: pass a TorchScript file (e.g. an Inception-v3 pool3 "
                                "network saved with torch.jit.save) or a callable; diffrep ships no Inception weights "
                                "and cannot download them. Set DIFFREP_FID_EXTRACTOR or use --fid-extractor.")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"FID feature extractor {p} does not exist")
    try:
        net = torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as exc:
        raise ValueError(f"{p} is not a TorchScript module loadable with torch.jit.load: {exc}") from None

    def extract(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            return net(x.float().cpu()).reshape(x.shape[0], -1)

    return extract


def fid(model: SAMI, real_images, extractor: Callable | str | os.PathLike | None = None, *,
        protocol: Literal["prior", "reconstruction", "both"] = "both", num_samples: int | None = None,
        batch_size: int = 64, sampler: str | None = None, num_steps: int | None = None, seed: int = 0) -> dict:
    """FID of generated images against ``real_images`` (sami.md 10.7; the paper's protocol is
    unstated). ``prior``: z ~ N(0, I); ``reconstruction``: one sample guided by z ~ q(z | x_0) for
    each real image; ``both`` (default) reports both. ``extractor``: a callable images -> [B, k]
    or a TorchScript path (:func:`load_feature_extractor`)."""
    model = _check_model(model)
    if protocol not in ("prior", "reconstruction", "both"):
        raise ValueError(f"protocol must be prior, reconstruction or both, got {protocol!r}")
    fe = extractor if callable(extractor) else load_feature_extractor(extractor)
    real = _images(model, real_images, "real_images")
    n = real.shape[0] if num_samples is None else num_samples
    check_count(n, "num_samples")
    check_count(batch_size, "batch_size")
    gen = _gen(seed)

    def feats(make) -> np.ndarray:
        out = []
        for s in range(0, n, batch_size):
            out.append(np.asarray(fe(make(s, min(batch_size, n - s))).detach().cpu(), dtype=np.float64))
        return np.concatenate(out)

    real_f = feats(lambda s, k: real[s % real.shape[0]:][:k])
    res = {"num_samples": n, "protocol": protocol, "seed": seed}
    if protocol in ("prior", "both"):
        res["fid_prior"] = frechet_distance(real_f, feats(lambda s, k: model.sample(k, generator=gen, sampler=sampler,
                                                                                    num_steps=num_steps)))
    if protocol in ("reconstruction", "both"):
        res["fid_reconstruction"] = frechet_distance(real_f, feats(lambda s, k: model.conditional_sample(
            real[s % real.shape[0]:][:k], 1, z_mode="fixed", generator=gen, sampler=sampler, num_steps=num_steps)))
    return res
