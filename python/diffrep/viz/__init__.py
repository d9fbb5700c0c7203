"""Visual outputs without torchvision: grids, PNG/GIF saving, traversals, interpolations, latent swaps.

Pillow does all image I/O; matplotlib is needed only for :func:`labelled_grid` / :func:`training_curves`
and is imported lazily, without pyplot: the process-wide backend is never switched. The ``*_image`` /
``*_figure`` functions return a PIL image / a matplotlib ``Figure`` (shown inline in a notebook); the
``save_*`` / path-taking ones write files. Images are float tensors [B, C, H, W]; ``value_range`` says which values map to black and
white (diffusion outputs are usually in [-1, 1]).
"""

from .annotate import labelled_rows, labelled_rows_image
from .curves import training_curves
from .grids import grid_image, legible_scale, make_grid, save_gif, save_image, to_pil, upscale
from .latents import (interpolation_strip, labelled_grid, labelled_grid_figure, lerp, latent_swap_grid, slerp,
                      traversal_frames, traversal_grid)

__all__ = ["make_grid", "save_image", "save_gif", "to_pil", "lerp", "slerp", "interpolation_strip", "traversal_grid",
           "traversal_frames", "latent_swap_grid", "labelled_grid", "labelled_rows", "upscale", "legible_scale",
           "grid_image", "labelled_rows_image", "labelled_grid_figure", "training_curves"]
