"""Analyses that combine a trained method with data and metrics: the SAMI paper's analyses
(:mod:`.sami` gathers them) and the probes of models trained on the procedural disks.

- :mod:`.encoding`: posterior means in batches and the checks the SAMI analyses share;
- :mod:`.variability`, :mod:`.posterior_geometry`, :mod:`.representation`, :mod:`.guidance`,
  :mod:`.sami_fid`: SAMI sections 10.1-10.7;
- :mod:`.disks_probes`, :mod:`.disks_bayes`: what a disks model carries, and what it could carry;
- :mod:`.traversal`: what a latent traversal shows (the quickstart's figure and centroid shifts);
- :mod:`.multibeta`: how much each latent space of a multi-beta VAE keeps, the informative-beta rule and the
  nearest-real-image distance (docs/methods/multibeta.md#recipes).
"""
