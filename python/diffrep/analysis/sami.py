"""The analyses the SAMI paper reports, as functions on a trained :class:`~diffrep.methods.sami.SAMI`
(docs/methods/sami.md#analyses), gathered from their modules. Each returns plain Python numbers/lists
(JSON-ready) and, where the paper shows images, tensors in [-1, 1].

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
  guide's disk position; the Bayes-optimal eps-MSE each disks factor is worth per noise level is
  :func:`disks_bayes_eps_mse`;
- :func:`fid`: FID of prior and guided samples (10.7) from a user-supplied feature extractor (no
  Inception weights are bundled or downloaded; :mod:`diffrep.metrics.generation`).
"""

from .disks_bayes import disks_bayes_eps_mse
from .disks_probes import disk_centres, disk_position_transfer, posterior_mean_monotonicity
from .encoding import encode_batched
from .guidance import guidance_magnitude
from .posterior_geometry import global_axes, perturb_low_variance_axes, posterior_variance_spectrum
from .representation import attribute_metrics, factor_metrics, latent_straightness
from .sami_fid import fid
from .variability import variability, variability_reduction

__all__ = ["variability", "variability_reduction", "posterior_variance_spectrum", "perturb_low_variance_axes",
           "global_axes", "latent_straightness", "attribute_metrics", "factor_metrics", "guidance_magnitude",
           "posterior_mean_monotonicity", "disk_centres", "disk_position_transfer", "disks_bayes_eps_mse", "fid",
           "encode_batched"]
