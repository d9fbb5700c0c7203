"""Input sweep of diffrep.viz (tests/bad_inputs.py): grids, image saving, interpolations, traversals, latent
swaps, labelled figures and training curves, each called once validly on tiny images, then with one
argument at a time replaced by a bad value. A bad value must give a ValueError or TypeError naming the
argument, never a torch/PIL/matplotlib-internal error or a silently wrong picture."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from bad_inputs import Case, sweep_tests

import diffrep.viz as V

_TMP = tempfile.TemporaryDirectory(prefix="diffrep-sweep-viz-")  # removed when the session ends


def _imgs(b=4, c=3, s=4, seed=0):
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed))


def _decode(z):
    """A decoder of codes [n, 2] to images [n, 1, 4, 4] (pixel value = first code entry, squashed)."""
    return torch.sigmoid(z[:, :1, None, None]).expand(-1, 1, 4, 4)


def _path(name):
    return Path(_TMP.name) / name


# a grid takes any batch size (batch-1), [C, H, W] / [H, W] single images (ndim-1) and integer images
# (torchvision's make_grid takes uint8) are documented; pad_value may be any finite value ([-1, 1] images)
GRID = ("images:batch-1", "images:ndim-1", "images:int_dtype", "pad_value:negative")
CASES = [
    Case("make_grid", lambda: (V.make_grid, dict(images=_imgs(), nrow=2, padding=1, normalize=True,
                                                 value_range=(0.0, 1.0), scale_each=False, pad_value=0.0)),
         skip=("value_range:None",), accepted=GRID + ("padding:zero",)),
    Case("grid_image", lambda: (V.grid_image, dict(images=_imgs(), nrow=2, padding=1, value_range=(0.0, 1.0),
                                                   pad_value=0.0, scale=2)),
         skip=("pad_value:None", "scale:None"), accepted=GRID + ("padding:zero",)),
    Case("save_image", lambda: (V.save_image, dict(images=_imgs(), path=_path("g.png"), nrow=2, padding=1,
                                                   value_range=(0.0, 1.0), scale=1)),
         accepted=GRID + ("padding:zero",)),
    Case("save_gif", lambda: (V.save_gif, dict(frames=[_imgs(1)[0], _imgs(1, seed=1)[0]], path=_path("a.gif"),
                                               duration_ms=50, loop=0, value_range=(0.0, 1.0))),
         accepted=("loop:zero",)),
    Case("to_pil", lambda: (V.to_pil, dict(image=_imgs(1)[0], value_range=(0.0, 1.0))),
         accepted=("image:ndim-1", "image:int_dtype")),
    Case("upscale", lambda: (V.upscale, dict(img=V.to_pil(_imgs(1)[0]), scale=2))),
    Case("legible_scale", lambda: (V.legible_scale, dict(size=8, min_scale=2, min_pixels=32))),
    # t: a tensor, a sequence or one number of weights, any shape (flattened), integer weights too; integer
    # codes are numbers
    Case("lerp", lambda: (V.lerp, dict(a=torch.zeros(2), b=torch.ones(2), t=torch.tensor([0.0, 0.5, 1.0]))),
         accepted=("t:batch-1", "t:ndim+1", "t:ndim-1", "*:int_dtype")),
    Case("slerp", lambda: (V.slerp, dict(a=torch.tensor([1.0, 0.0]), b=torch.tensor([0.0, 1.0]),
                                         t=torch.tensor([0.0, 0.5, 1.0]), eps=1e-7)),
         accepted=("t:batch-1", "t:ndim+1", "t:ndim-1", "*:int_dtype")),
    Case("interpolation_strip", lambda: (V.interpolation_strip, dict(decode=_decode, z_a=torch.zeros(2),
                                                                     z_b=torch.ones(2), n=3, mode="lerp")),
         accepted=("*:int_dtype",)),
    Case("traversal_grid", lambda: (V.traversal_grid, dict(decode=_decode, z=torch.zeros(2), values=[-1.0, 1.0],
                                                           dims=[0, 1], padding=1, pad_value=0.0)),
         skip=("dims:None",), accepted=("padding:zero", "pad_value:negative")),
    Case("traversal_frames", lambda: (V.traversal_frames, dict(decode=_decode, z=torch.zeros(2), values=[-1.0, 1.0],
                                                               dims=[0], padding=1, pad_value=0.0)),
         skip=("dims:None",), accepted=("padding:zero", "pad_value:negative", "z:batch-1")),  # a 1-d code
    Case("latent_swap_grid", lambda: (V.latent_swap_grid, dict(
        decode=lambda t: _decode(t.reshape(len(t), -1)), targets=torch.randn(2, 3, 1), source=torch.randn(3, 1),
        inputs=_imgs(2, c=1), units=[0, 2], padding=1, pad_value=0.0)),
         skip=("inputs:None", "units:None"), accepted=("padding:zero", "pad_value:negative", "inputs:int_dtype")),
    Case("labelled_rows_image", lambda: (V.labelled_rows_image, dict(
        rows=_imgs(2 * 3).reshape(2, 3, 3, 4, 4), row_labels=["a", "b"], group_size=None, title="t",
        value_range=(0.0, 1.0), scale=1, padding=1, group_gap=2, font_size=8)),
         skip=("group_size:None", "title:None"),
         accepted=("padding:zero", "group_gap:zero", "rows:int_dtype", "title:unknown")),
    Case("training_curves", lambda: (V.training_curves, dict(
        source=[{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], keys=["loss"], log_y=("loss",),
        panel_inches=(2.0, 1.5))), skip=("keys:None",), errors=(FileNotFoundError,),
         names={"source": ("x",)}, accepted=("log_y:str",)),  # one name is a key (keys="x" is never logged)
    Case("labelled_grid_figure", lambda: (V.labelled_grid_figure, dict(
        rows=[_imgs(2), _imgs(2, seed=1)], row_labels=["a", "b"], col_labels=["x", "y"], value_range=(0.0, 1.0),
        title="t", cell_inches=0.5)), skip=("row_labels:None", "col_labels:None", "title:None"),
         accepted=("title:unknown",)),
]



test_valid_call, test_bad_input = sweep_tests(CASES)
