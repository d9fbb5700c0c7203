"""DyGA (Jun et al., "Disentangling Disentangled Representations: Towards Improved Latent Units
via Diffusion Models"), where the EncDiff + DyGA method will live. For now: the feature alignment
of Eq. 6 (Alg. 3) on the Gaussian anchors that :func:`diffrep.cluster.fit` finds (DyGA §3.2.1, Alg. 2).
"""

from __future__ import annotations

import math

import torch

from ..ops import _validate as V

__all__ = ["align"]


def align(mixture, features, lam=0.1, tau=1e-4, *, generator=None, gumbel=True, gumbel_input="log",
          detach_assignment=False):
    """DyGA feature alignment (Eq. 6, Alg. 3), differentiable w.r.t. ``features``.

    ``mixture``: the per-unit anchors, a :class:`diffrep.cluster.HDDCResult`; ``features``
    (B, U, d) in the space the mixture was fitted in. Per (sample, unit): logits l = log t
    (``gumbel_input="log"``, the standard Gumbel-softmax input; ``"responsibility"`` is Alg. 3's
    literal t), y = softmax((l + g)/tau) with Gumbel noise g (none when ``gumbel=False``:
    y = one-hot argmax, for evaluation), anchor mu_hat = sum_k y_k mu_k,
    delta = lam exp(-mean_j |(c_j - mu_hat_j)/(|c_j| + 1e-6)|), and c_tilde = c + delta (mu_hat - c).
    ``detach_assignment`` stops the gradient through y. Returns c_tilde (B, U, d).
    """
    V.tensor("features", features)
    if features.dim() != 3:
        raise ValueError(f"features must have shape (B, U, d), got {tuple(features.shape)}")
    lam = V.positive_scalar("lam", lam)
    tau = V.positive_scalar("tau", tau)
    if gumbel_input not in ("log", "responsibility"):
        raise ValueError(f"gumbel_input must be 'log' or 'responsibility', got {gumbel_input!r}")
    c = features.transpose(0, 1)                                   # (U, B, d)
    lp = mixture.log_prob(c)
    logt = lp - torch.logsumexp(lp, -1, keepdim=True)
    logits = logt if gumbel_input == "log" else logt.exp()
    logits = torch.where(mixture.active[:, None], logits, torch.full_like(logits, -math.inf))
    if gumbel:
        u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device="cpu").to(logits.device)
        g = -torch.log(-torch.log(u.clamp(1e-20, 1 - 1e-7)))
        y = torch.softmax((logits + g) / tau, -1)
    else:
        y = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    if detach_assignment:
        y = y.detach()
    mu_hat = y @ mixture.means.to(c.dtype)                          # (U, B, d)
    delta = lam * torch.exp(-((c - mu_hat) / (c.abs() + 1e-6)).abs().mean(-1, keepdim=True))
    return (c + delta * (mu_hat - c)).transpose(0, 1)
