"""How SAMI's posterior q(z | x_t) is organised: its variance spectrum over noise levels (Fig. 3C-D,
docs/methods/sami.md#analyses), generation along its low-variance axes (Fig. 3E, 10.3) and the A.8 coherence of
its axes (10.4)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .._checks import non_negative_int, positive_int
from .._progress import progress
from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off
from .encoding import check_model, encode_batched, model_images, seeded

__all__ = ["posterior_variance_spectrum", "perturb_low_variance_axes", "global_axes"]


@autocast_off  # sigma^2(x_t) in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def posterior_variance_spectrum(model: SAMI, image, timesteps: Sequence[int] | None = None, *,
                                num_noise: int = 16, seed: int = 0) -> dict:
    """sigma_j^2(x_t) per latent axis for one image over noise levels (Fig. 3C-D, docs/methods/sami.md#analyses).

    ``var[k][j]`` is the mean over ``num_noise`` draws of x_t at ``timesteps[k]`` (default 10 levels
    spread over [0, T-1]); ``var_clean`` the clean image's spectrum; ``order_clean`` axes sorted by
    increasing clean variance; ``rank_at_largest_t`` the rank of each axis at the largest t;
    ``rank_spearman`` the Spearman correlation of axis ranks at the smallest and largest t (1 when
    the rank order is kept); ``mean_var_nondecreasing`` whether the axis-mean variance rises with t.
    """
    model = check_model(model)
    x = model_images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError(f"image must be a single image [1, C, H, W], got batch {x.shape[0]}")
    positive_int(num_noise, "num_noise")
    T = model.schedule.num_timesteps
    if timesteps is not None and not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                                         for t in timesteps):
        raise ValueError(f"timesteps must be integer steps in [0, {T - 1}], got {list(timesteps)}")
    ts = list(np.linspace(0, T - 1, 10).round().astype(int)) if timesteps is None else [int(t) for t in timesteps]
    if not ts or any(not 0 <= t < T for t in ts):
        raise ValueError(f"timesteps must lie in [0, {T - 1}], got {ts}")
    ts = sorted({int(t) for t in ts})
    gen = seeded(seed)
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
@autocast_off  # the posterior and the chains in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def perturb_low_variance_axes(model: SAMI, image, alphas: Sequence[float] = (-2.0, -1.0, 0.0, 1.0, 2.0), *,
                              num_axes: int = 2, axes: Sequence[int] | None = None, seed: int = 0,
                              sampler: str | None = None, num_steps: int | None = None) -> dict:
    """Generate from z = mu_0 + alpha e_i for the ``num_axes`` axes of smallest sigma_i^2(x_0) (or the
    given ``axes``), and from z = mu_0 + alpha e_i + alpha' e_j for the first two (Fig. 3E).

    All chains share one x_T and one noise seed so that rows differ only through z. ``alpha`` is in
    units of the axis' posterior standard deviation sigma_i(x_0) (the paper gives no range).
    Returns ``axes``, ``rows`` [num_axes, len(alphas), C, H, W] and ``pair`` [len, len, C, H, W] (or None).
    """
    model = check_model(model)
    x = model_images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError("image must be a single image [1, C, H, W]")
    given = alphas
    try:
        alphas = [float(a) for a in alphas]
    except (TypeError, ValueError):  # None, a str, nested lists
        alphas = None
    if not alphas or not all(math.isfinite(a) for a in alphas):
        raise ValueError(f"alphas must be a non-empty list of finite numbers, got {given!r}")
    with torch.no_grad():
        mu, lv = model.posterior(x)
    sd = (0.5 * lv[0]).exp()
    d = model.latent_dim
    if axes is None:
        positive_int(num_axes, "num_axes")
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
    seed = non_negative_int(seed, "seed")  # seed and seed + 1: one for x_T, one for the chains' noise
    x_T = torch.randn((1, *model.image_shape), generator=seeded(seed)).to(mu).expand(z.shape[0], -1, -1, -1).contiguous()
    imgs = model.generate(z, x_T=x_T, generator=seeded(seed + 1, mu.device), sampler=sampler, num_steps=num_steps).cpu()
    rows = imgs[: len(zs)].reshape(len(axes), A, *imgs.shape[1:])
    pair = imgs[len(zs):].reshape(A, A, *imgs.shape[1:]) if pair_z else None
    return {"axes": axes, "alphas": alphas, "posterior_std": sd[axes].tolist(), "rows": rows, "pair": pair}


# -- 10.4 globally preserved axes (A.8) -------------------------------------------------------------
@autocast_off  # sigma^2(x_t) and its gradients in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def global_axes(model: SAMI, images, t: int | None = None, *, num_noise: int = 1, seed: int = 0,
                batch_size: int = 64) -> dict:
    """A.8's global-axes measure (docs/methods/sami.md#analyses, diffrep's single-number definition):
    N_i = sqrt(2 Var_{x_0}[mu_i(x_0)]) * E_{x_t}[ ||grad_{x_t} sigma_i^2(x_t)||_2 / sigma_i^4(x_t)],
    G_i = -log N_i (larger = more global). x_t is drawn from ``images`` at ``t`` (default T - 1).
    Returns the ingredients (Fig. 3F) and the axes sorted by decreasing coherence. N_i = 0 (G = inf)
    when sigma does not depend on x.
    """
    model = check_model(model)
    x = model_images(model, images)
    if x.shape[0] < 2:
        raise ValueError("images must hold at least 2 images (Var over x_0)")
    positive_int(num_noise, "num_noise")
    T = model.schedule.num_timesteps
    t = T - 1 if t is None else int(t)
    if not 0 <= t < T:
        raise ValueError(f"t must lie in [0, {T - 1}], got {t}")
    gen = seeded(seed)
    mu0 = torch.from_numpy(encode_batched(model, x, batch_size))
    var_mu = mu0.var(0, unbiased=True)
    d = model.latent_dim
    ratio_sum = torch.zeros(d, dtype=torch.float64)
    grad_sum = torch.zeros(d, dtype=torch.float64)
    s2_sum = torch.zeros(d, dtype=torch.float64)
    count = 0
    for _ in progress(range(num_noise), total=num_noise, desc="posterior geometry: noise draws", unit="draw"):
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
