"""The common method surface, written down as protocols (structural: a model need not inherit them).

Every model that :class:`diffrep.train.Trainer` trains and the analyses read has

* ``loss(batch, *, step, generator=None) -> dict``: ``batch`` is images [B, C, H, W] (or an
  ``(images, targets)`` pair), ``step`` the 0-based training step (None outside training: schedules
  inside the loss then take their final value), ``generator`` the source of the loss's random draws
  (None: the global RNG). The dict holds ``"loss"`` (the scalar to minimise) and detached entries to log.
  Method-specific keyword-only arguments may follow (e.g. SAMI's ``t``, ``noise``, ``z_noise``).
* ``save_pretrained(directory)`` / ``from_pretrained(directory)`` (:class:`diffrep.nn.PretrainedMixin`);

and, where the method has them,

* ``sample(n, *, generator=None, ...) -> images`` in [-1, 1] (a generative model);
* ``encode(x) -> representation`` and ``reconstruct(x) -> images`` (a representation model).

:class:`Method` is the full surface (ParamReL, SAMI); :class:`GenerativeModel` (BFN) and
:class:`RepresentationModel` (the VQ autoencoder) are its parts. ``isinstance`` checks only that the
methods exist; :func:`surface_problems` also reads the signatures. Image batches are validated by
:func:`diffrep.nn.images.check_images`, the one place that wording lives.
"""

from __future__ import annotations

import inspect
import os
from typing import Protocol, runtime_checkable

import torch

__all__ = ["TrainableModel", "GenerativeModel", "RepresentationModel", "Method", "surface_problems"]


@runtime_checkable
class TrainableModel(Protocol):
    """A model the trainer trains and ``load_pretrained`` loads."""

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict: ...

    def save_pretrained(self, directory: str | os.PathLike, **kwargs): ...

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **kwargs): ...


@runtime_checkable
class GenerativeModel(TrainableModel, Protocol):
    """A trainable model that draws images."""

    def sample(self, n: int, *, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor: ...


@runtime_checkable
class RepresentationModel(TrainableModel, Protocol):
    """A trainable model with a representation of an image and a way back to images."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def reconstruct(self, x: torch.Tensor, **kwargs) -> torch.Tensor: ...


@runtime_checkable
class Method(GenerativeModel, RepresentationModel, Protocol):
    """The full method surface: loss, sample, encode, reconstruct, save/load."""


def surface_problems(model_or_class, protocol: type = Method) -> list[str]:
    """What keeps ``model_or_class`` from the surface of ``protocol`` (empty when it conforms): missing
    methods, and a ``loss`` without keyword ``step`` and ``generator`` or a ``sample`` without ``n`` and
    keyword ``generator``."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    wanted = [n for n in ("loss", "save_pretrained", "from_pretrained", "sample", "encode", "reconstruct")
              if any(n in getattr(p, "__dict__", {}) for p in protocol.__mro__ if p is not object)]
    problems = [f"no {n}()" for n in wanted if not callable(getattr(cls, n, None))]

    def keywords(fn, names):
        params = inspect.signature(fn).parameters
        return [f"{fn.__name__}() lacks keyword {k!r}" for k in names
                if k not in params or params[k].kind not in (params[k].KEYWORD_ONLY, params[k].POSITIONAL_OR_KEYWORD)]

    if callable(getattr(cls, "loss", None)):
        problems += keywords(cls.loss, ("step", "generator"))
    if "sample" in wanted and callable(getattr(cls, "sample", None)):
        params = list(inspect.signature(cls.sample).parameters)
        if len(params) < 2 or params[1] != "n":
            problems.append("sample() does not take n first")
        problems += keywords(cls.sample, ("generator",))
    return problems
