"""Visual outputs without torchvision: grids, PNG/GIF saving, traversals, interpolations, latent swaps.

Pillow does all image I/O; matplotlib is needed only for :func:`labelled_grid` and is imported
lazily. Images are float tensors [B, C, H, W]; ``value_range`` says which values map to black and
white (diffusion outputs are usually in [-1, 1]).
"""

from .annotate import labelled_rows
from .grids import legible_scale, make_grid, save_gif, save_image, to_pil, upscale
from .latents import interpolation_strip, labelled_grid, lerp, latent_swap_grid, slerp, traversal_frames, traversal_grid

__all__ = ["make_grid", "save_image", "save_gif", "to_pil", "lerp", "slerp", "interpolation_strip", "traversal_grid",
           "traversal_frames", "latent_swap_grid", "labelled_grid", "labelled_rows", "upscale", "legible_scale"]
