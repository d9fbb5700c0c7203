"""When DyGA's anchors are refitted during training (DyGA App. C.1.1, Alg. 1; docs/methods/dyga.md#schedule):
one schedule for every model that anchors its latent units (EncDiff's tokens; DisDiff's units, the DyGA
paper's Table 3, which plugs DyGA into DisDiff as configuration, not as a second copy of it).

Steps count optimiser steps of the anchored phase (0-based: ``step`` is the number already taken; DisDiff's
pre-training steps are not part of it). With E = ``steps_per_epoch`` and r = ``dyga.refresh_every``:

- a refit on the whole attached dataset at every step s > 0 with s % (r E) == 0, i.e. at the end of epochs
  r, 2r, ... (Alg. 1: "after every r epochs, anchor selection is performed for feature alignment in the
  subsequent r epochs"), with ``epoch`` = s // E (the epochs done; it seeds the fit);
- under ``compat="dis-dis"`` (row 10 of docs/methods/dyga.md#compat) also a fit at s = 0 on the first
  ``sanity_check_points`` images (Lightning's sanity-check batches), unless the anchors are already fitted
  (a loaded model); paper mode aligns nothing before the end of epoch r;
- at most one fit per step: the micro-batches of one optimiser step call the loss with the same step; a
  resumed run starts at the step its checkpoint was written before, so the refit due there, not yet in the
  checkpoint, runs once;
- only in training mode: a loss evaluated in eval mode leaves the anchors alone.

:class:`AnchorData` is what a model's ``attach_anchor_data`` keeps (checked once, at attach time), and
:class:`AnchorSchedule` the rule above. How a model reads its units from the images (eval mode, raw or,
under compat, aligned) stays its own: the schedule hands it a :class:`Refit` to run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from .._checks import map_style_dataset, non_negative_int, positive_int
from .dyga import DyGAConfig

__all__ = ["Refit", "AnchorData", "AnchorSchedule", "recipe_anchor_data", "EXTRACTION_BATCH"]

EXTRACTION_BATCH = 256  # images per extraction batch in paper mode (the features' values do not depend on it)


@dataclasses.dataclass(frozen=True)
class Refit:
    """One anchor fit the schedule asks for: ``epoch`` (the epochs done, the seed of DyGA.fit) on the first
    ``limit`` images of the dataset, or on all of them (``limit=None``)."""

    epoch: int
    limit: int | None = None


def least_points(cfg: DyGAConfig) -> int:
    """The fewest points DyGA.fit accepts (its own check: at least K0 and at least 2)."""
    return max(cfg.n_components, 2)


def _sanity(cfg: DyGAConfig) -> int:
    """Images of compat's fit before training (row 10), 0 in paper mode."""
    return cfg.sanity_check_points if cfg.compat == "dis-dis" else 0


def _check_config(dyga, who: str) -> DyGAConfig:
    if not isinstance(dyga, DyGAConfig):
        raise TypeError(f"{who}: dyga must be a DyGAConfig, got {type(dyga).__name__}")
    return dyga


class AnchorData(NamedTuple):
    """What a model's ``attach_anchor_data`` keeps: the images the anchors are fitted on (a map-style dataset),
    the optimiser steps of one epoch over them, and how many are read at a time."""

    dataset: Any
    steps_per_epoch: int
    batch_size: int

    @classmethod
    def checked(cls, dyga: DyGAConfig, dataset, steps_per_epoch: int, batch_size: int = EXTRACTION_BATCH, *,
                who: str = "attach_anchor_data") -> "AnchorData":
        """The arguments checked for DyGA ``dyga``: a dataset with enough images for every fit the schedule
        will ask for (refused at attach time rather than epochs into training). ``who`` prefixes the errors."""
        _check_config(dyga, who)
        steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
        batch_size = positive_int(batch_size, "batch_size")
        map_style_dataset(dataset, what="of images")
        need = least_points(dyga)
        if len(dataset) < need:
            raise ValueError(f"{who}: the anchors are fitted on the dataset's images, at least {need} (DyGA's fit: "
                             f"dyga.n_components and at least 2); it has {len(dataset)}")
        if _sanity(dyga) and min(_sanity(dyga), len(dataset)) < need:
            raise ValueError(f"{who}: the fit before training reads dyga.sanity_check_points="
                             f"{dyga.sanity_check_points} images, fewer than the {need} DyGA's fit needs (or set 0: "
                             f"no fit before training)")
        return cls(dataset, steps_per_epoch, batch_size)


class AnchorSchedule:
    """The refit schedule of DyGA ``dyga`` (a :class:`DyGAConfig`, read at every step), an epoch being
    ``steps_per_epoch`` optimiser steps; it remembers the step of its latest fit."""

    def __init__(self, dyga: DyGAConfig, steps_per_epoch: int):
        self.dyga = _check_config(dyga, "AnchorSchedule")
        self.steps_per_epoch = positive_int(steps_per_epoch, "steps_per_epoch")
        self.last_step: int | None = None  # the step of the latest fit (none yet)

    @property
    def every(self) -> int:
        """Steps between two refits: r epochs."""
        return self.steps_per_epoch * self.dyga.refresh_every

    def due(self, step: int, *, fitted: bool | Callable[[], bool]) -> Refit | None:
        """The fit due at ``step`` (steps of the anchored phase already taken) of a model whose anchors are
        ``fitted`` or not, or None; a step that already had its fit has none. ``fitted`` may be a function,
        called at step 0 only (reading a GPU flag every step would synchronise host and device)."""
        step = non_negative_int(step, "step")
        if step == self.last_step:
            return None
        if step == 0:
            sanity = _sanity(self.dyga)
            return Refit(0, sanity) if sanity and not (fitted() if callable(fitted) else fitted) else None
        return Refit(step // self.steps_per_epoch) if step % self.every == 0 else None

    def __call__(self, step: int, *, fitted: bool | Callable[[], bool], training: bool,
                 refit: Callable[[Refit], object]) -> Refit | None:
        """Run ``refit`` for the fit due at ``step`` (in training mode only) and remember the step; returns the
        fit it ran, or None."""
        if not training:
            return None
        todo = self.due(step, fitted=fitted)
        if todo is not None:
            refit(todo)
            self.last_step = step
        return todo


def recipe_anchor_data(dyga: DyGAConfig, n_images: int, train_batch_size: int) -> dict:
    """The recipes' ``attach_anchor_data`` arguments for a training set of ``n_images`` read in batches of
    ``train_batch_size``: an epoch of n // batch steps (at least one), extraction batches of 256 images, or
    under compat the training batch (the authors' alignment uses batch statistics, and their validation
    batch, where the fit's tokens come from, is the training batch)."""
    n_images, train_batch_size = non_negative_int(n_images, "n_images"), positive_int(train_batch_size, "train_batch_size")
    return {"steps_per_epoch": max(1, n_images // train_batch_size),
            "batch_size": train_batch_size if dyga.compat == "dis-dis" else EXTRACTION_BATCH}
