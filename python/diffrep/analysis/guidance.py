"""Where along the reverse chain SAMI's latents act: per-step guidance vs denoiser norms (Fig. 6-7)."""

from __future__ import annotations

import torch

from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off
from .encoding import check_model, model_images, seeded

__all__ = ["guidance_magnitude"]


@autocast_off  # the chain's eps and guidance in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def guidance_magnitude(model: SAMI, image, *, z_mode: str = "posterior_mean", sampler: str | None = None,
                       num_steps: int | None = None, seed: int = 0) -> dict:
    """Per reverse step: ||k_t g|| (the guidance's contribution in eps units) and ||eps_theta||, and
    the ratio (Fig. 6-7 diagnostic: where along the chain the latents act), for one guide image.

    k_t is the coefficient the chain applied: gamma_t = sqrt(1 - abar_t) (Eq. 8), or Algorithm 1's
    printed step when the DDPM chain runs with ``config.alg1_literal`` (``literal_step`` says which).

    Fig. 6 plots "the magnitude of the prior and posterior scores ... and their difference", in score
    units (score = -eps / sqrt(1 - abar_t), Eq. 3 and 6), which weights the steps differently from the
    eps units above: ``prior_score_norm`` ||eps_theta|| / sqrt(1 - abar_t), ``posterior_score_norm``
    ||eps_theta - k_t g|| / sqrt(1 - abar_t) and ``score_difference_norm`` ||k_t g|| / sqrt(1 - abar_t)
    (= ||g|| for the Eq. 8 coefficient), each the mean over the batch."""
    model = check_model(model)
    x = model_images(model, image, "image")
    if x.shape[0] != 1:
        raise ValueError("image must be a single image [1, C, H, W]")
    rec: dict[str, list] = {"t": [], "guidance_norm": [], "eps_norm": [], "prior_score_norm": [],
                            "posterior_score_norm": [], "score_difference_norm": []}
    literal = model.chain_uses_literal_step(sampler, num_steps)

    def cb(i, t, xt, eps, g):
        tt = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        k = model.guidance_coefficient(tt, xt, literal=literal)
        rec["t"].append(int(t))
        rec["guidance_norm"].append(float((k * g).flatten(1).norm(dim=1).mean()))
        rec["eps_norm"].append(float(eps.flatten(1).norm(dim=1).mean()))
        gamma = model.guidance_coefficient(tt, xt, literal=False)  # sqrt(1 - abar_t): eps -> score units
        rec["prior_score_norm"].append(float((eps / gamma).flatten(1).norm(dim=1).mean()))
        rec["posterior_score_norm"].append(float(((eps - k * g) / gamma).flatten(1).norm(dim=1).mean()))
        rec["score_difference_norm"].append(float((k * g / gamma).flatten(1).norm(dim=1).mean()))

    model.conditional_sample(x, 1, z_mode=z_mode, sampler=sampler, num_steps=num_steps, generator=seeded(seed, x.device), callback=cb)
    rec["ratio"] = [g / e if e > 0 else float("inf") for g, e in zip(rec["guidance_norm"], rec["eps_norm"])]
    rec["literal_step"] = literal
    return rec
