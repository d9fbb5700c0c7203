"""Periodic evaluation during training (docs/architecture.md#trainer-checkpoints-and-resume).

:class:`PeriodicEvaluation` is a trainer callback that, every ``every`` optimiser steps, calls each of
its metric functions ``fn(model) -> {name: float}`` on rank 0 with the model in eval mode (and the EMA
weights swapped in when asked), and returns the scores so the trainer logs them at that step (JSONL,
TensorBoard, W&B) under ``eval/<preset>/<name>``.

Metric functions come from presets, looked up by name in :data:`METRIC_PRESETS`: a preset is a
factory ``preset(dataset, config) -> fn``. Built in:

- ``"fast"``: MIG and SAP (robust mode, diffrep.metrics) of the model's ``encode`` on
  ``eval_num_samples`` factor rows drawn once (``RandomState(seed)``) from a dataset with ground-truth
  factors (``sample_factors`` / ``sample_observations_from_factors``), two thirds train, one third
  test; seconds on a CPU for a small encoder.

- ``"fid"``: FID (clean protocol, :mod:`diffrep.metrics.generation`, docs/metrics.md) of
  ``eval_num_samples`` samples of the model (``sample(n, generator=)``, seeded by ``seed``) against
  as many training images drawn once (``RandomState(seed)``); the real features are computed at the
  first evaluation and reused. Below 2048 samples the covariances are singular and the FID is biased
  upwards: comparable across the evaluations of one run, not with published values.

Other presets register under their name with :func:`register_metric_preset`. Any other callable can be
wrapped directly: ``PeriodicEvaluation(100, {"mine": fn})``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import numpy as np
import torch

from .._checks import flag, non_negative_int

__all__ = ["PeriodicEvaluation", "METRIC_PRESETS", "register_metric_preset", "metric_preset", "fast_preset", "fid_preset"]

MetricFn = Callable[[torch.nn.Module], dict]
METRIC_PRESETS: dict[str, Callable[..., MetricFn]] = {}


def register_metric_preset(name: str, factory: Callable[..., MetricFn]) -> None:
    """Make ``factory(dataset, config) -> fn(model) -> dict`` available as ``train.eval_metrics`` entry ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"metric preset name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"metric preset {name!r}: factory must be callable, got {type(factory).__name__}")
    METRIC_PRESETS[name] = factory


def metric_preset(name: str, dataset, config) -> MetricFn:
    """The metric function of preset ``name`` for ``dataset`` under train config ``config``."""
    if not isinstance(name, str) or name not in METRIC_PRESETS:
        raise ValueError(f"train.eval_metrics: unknown preset {name!r}; known: {sorted(METRIC_PRESETS)}")
    _check_config(config, f"train.eval_metrics {name!r}")
    return METRIC_PRESETS[name](dataset, config)


def _check_config(config, who: str) -> None:
    """The presets read ``config.eval_num_samples`` and ``config.seed`` of a TrainConfig."""
    from .config import TrainConfig

    if not isinstance(config, TrainConfig):
        raise TypeError(f"{who}: config must be a TrainConfig, got {type(config).__name__}")


def fast_preset(dataset, config) -> MetricFn:
    """MIG + SAP of ``model.encode`` on a fixed draw of ``config.eval_num_samples`` factor rows."""
    from ..data.base import format_images
    from ..metrics.mig import mig
    from ..metrics.sap import sap

    _check_config(config, "train.eval_metrics 'fast'")
    if not (hasattr(dataset, "sample_factors") and hasattr(dataset, "sample_observations_from_factors")):
        raise ValueError(f"train.eval_metrics 'fast': the dataset {type(dataset).__name__} has no ground-truth "
                         "factors (sample_factors / sample_observations_from_factors)")
    n = int(config.eval_num_samples)
    rng = np.random.RandomState(config.seed)
    factors = np.asarray(dataset.sample_factors(n, rng))
    images = format_images(np.asarray(dataset.sample_observations_from_factors(factors, rng)), "pm1")
    k = int(math.ceil(n * 2 / 3))

    def fn(model) -> dict:
        encode = getattr(model, "encode", None)
        if not callable(encode):
            raise TypeError(f"train.eval_metrics 'fast': {type(model).__name__} has no encode()")
        device = next(model.parameters()).device
        codes = []
        for b in range(0, n, 256):
            z = encode(images[b:b + 256].to(device)).reshape(min(256, n - b), -1)
            codes.append(z.to(torch.promote_types(z.dtype, torch.float32)).cpu())  # the model's precision, as evaluate()
        c = torch.cat(codes).numpy()
        return {"mig": float(mig(c, factors, mode="robust")["mig"]),
                "sap": float(sap(c[:k], factors[:k], c[k:], factors[k:], mode="robust")["sap"])}

    return fn


register_metric_preset("fast", fast_preset)


def _as_fid_images(x: torch.Tensor, item_format: str) -> torch.Tensor:
    """A dataset's items in the layout and range the FID features read: CHW, uint8 or float in [-1, 1]
    (docs/data.md#conventions lists the item formats)."""
    if item_format == "uint8":
        return x
    if item_format == "pm1":
        return x.float()
    if item_format == "01":
        return x.float() * 2 - 1
    if item_format == "hwc01":
        return x.float().permute(0, 3, 1, 2) * 2 - 1
    raise ValueError(f"train.eval_metrics 'fid': unknown dataset item_format {item_format!r}")


def fid_preset(dataset, config) -> MetricFn:
    """FID of ``config.eval_num_samples`` model samples against as many training images (seeded draw)."""
    from ..metrics import generation

    _check_config(config, "train.eval_metrics 'fid'")
    n = int(config.eval_num_samples)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(f"train.eval_metrics 'fid': the dataset must be a map-style dataset (len, indexing), got "
                        f"{type(dataset).__name__}")
    if n < 2 or len(dataset) < 2:
        raise ValueError(f"train.eval_metrics 'fid': needs at least 2 samples and 2 training images, got "
                         f"eval_num_samples={n} and a dataset of {len(dataset)}")
    idx = np.random.RandomState(config.seed).choice(len(dataset), size=min(n, len(dataset)), replace=False)
    items = [dataset[int(i)] for i in idx]
    real = _as_fid_images(torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items]),
                          getattr(dataset, "item_format", "pm1"))
    real_features = []

    def fn(model) -> dict:
        if not callable(getattr(model, "sample", None)):
            raise TypeError(f"train.eval_metrics 'fid': {type(model).__name__} has no sample()")
        if not real_features:
            real_features.append(generation.inception_features(real, progress=False))
        fake = generation.inception_features(model, num_samples=n, seed=config.seed, progress=False)
        return {"fid": generation.fid_from_features(real_features[0], fake, allow_singular=True)}

    return fn


register_metric_preset("fid", fid_preset)


class PeriodicEvaluation:
    """Trainer callback: every ``every`` steps (and at the last step) run ``metrics`` (name -> fn(model)
    -> dict of floats) on rank 0 and return ``{"eval/<name>/<key>": value}`` for the trainer to log.

    ``use_ema``: evaluate with the EMA weights swapped in (when the trainer keeps them). The model is
    put in eval mode under ``torch.no_grad`` and restored afterwards; the global RNG state is saved and
    restored, so evaluating never changes the training run (its losses stay bit-identical).
    """

    def __init__(self, every: int, metrics: dict[str, MetricFn], *, use_ema: bool = True, final: bool = True):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if not isinstance(metrics, dict) or not metrics:
            raise ValueError("metrics must be a non-empty dict of name -> fn(model)")
        for name, fn in metrics.items():
            if not callable(fn):
                raise TypeError(f"metric {name!r} is not callable")
        flag(use_ema, "use_ema")
        flag(final, "final")
        self.every, self.metrics, self.use_ema, self.final = every, dict(metrics), use_ema, final

    @classmethod
    def from_config(cls, config, dataset) -> "PeriodicEvaluation":
        """The evaluation a :class:`~diffrep.train.TrainConfig` asks for (``eval_every``, ``eval_metrics``)."""
        _check_config(config, "PeriodicEvaluation.from_config")
        return cls(config.eval_every, {name: metric_preset(name, dataset, config) for name in config.eval_metrics},
                   use_ema=config.sample_from_ema)

    def due(self, step: int, total: int) -> bool:
        """Whether it evaluates after optimiser step ``step`` of ``total``."""
        step, total = non_negative_int(step, "PeriodicEvaluation.due: step"), non_negative_int(total, "PeriodicEvaluation.due: total")
        return step % self.every == 0 or (self.final and step == total)

    def __call__(self, trainer, step: int, metrics: dict) -> dict | None:
        if not self.due(step, trainer.config.steps):
            return None
        if getattr(trainer, "rank", 0) != 0:
            return None
        model = trainer.model
        ema = getattr(trainer, "ema", None)
        ctx = ema.swapped(model) if (ema is not None and self.use_ema) else contextlib.nullcontext()
        was_training = model.training
        rng = torch.get_rng_state()
        np_rng = np.random.get_state()
        out = {}
        try:
            model.eval()
            with ctx, torch.no_grad():
                for name, fn in self.metrics.items():
                    scores = fn(model)
                    if not isinstance(scores, dict):
                        raise TypeError(f"metric {name!r} returned {type(scores).__name__}, not a dict")
                    out.update({f"eval/{name}/{k}": float(v) for k, v in scores.items()})
        finally:
            model.train(was_training)
            torch.set_rng_state(rng)
            np.random.set_state(np_rng)
        return out
