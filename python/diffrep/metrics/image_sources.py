"""Where the images of the generation metrics come from (docs/metrics.md, "Generation metrics"):
tensors and numpy arrays, image folders, diffrep dataset names, a model (or its saved directory)
with ``sample(n, generator=)``, or a batch callable ``(start, k) -> images``. Each becomes an
:class:`ImageSource`: a count, an identity dict (recorded with results and in the reference
statistics cache) and a batch iterator; :class:`Progress` reports the extraction on stderr."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import non_negative_int, positive_int, a_or_an


class Progress:
    """A one-line progress report on stderr (a tqdm bar when tqdm is installed and stderr is a TTY)."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled, self.n = total, label, enabled, 0
        self.t0 = self.last = time.time()
        self.bar = None
        if enabled and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE"):
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=label, unit="img", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, k: int) -> None:
        self.n += k
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(k)
            return
        now = time.time()
        if now - self.last >= 5.0 or self.n >= self.total:
            self.last = now
            rate = self.n / max(now - self.t0, 1e-9)
            print(f"[{self.label}] {self.n}/{self.total} images ({rate:.1f} img/s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ImageSource:
    """Images to score: ``count``, an ``identity`` dict (for results and the cache) and
    ``batches(batch_size)`` yielding [B, C, H, W] uint8 or float [-1, 1] tensors."""

    def __init__(self, count: int, identity: dict, batches: Callable):
        self.count, self.identity, self._batches = count, identity, batches

    def batches(self, batch_size: int):
        return self._batches(batch_size)


def array_sha1(x: torch.Tensor) -> str:
    """The SHA-1 of a tensor's bytes (C order, on the CPU): what identifies an in-memory image set in a
    cache key."""
    import hashlib

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"array_sha1: x must be a tensor, got {type(x).__name__}")
    return hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def tensor_source(x, num_samples, what: str = "images") -> ImageSource:
    """Images [N, C, H, W] (NHWC numpy accepted) checked here, before any image is scored: the
    preprocessing would refuse a wrong dtype or a NaN only at the batch that holds it, after the
    other set was extracted, in a message naming neither ``real`` nor ``fake``."""
    from .fid_preprocess import FLOAT_RANGE_LIMIT

    if isinstance(x, np.ndarray):
        if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = np.moveaxis(x, -1, 1)  # NHWC numpy images
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be uint8 or floating-point images, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} must be images: a tensor or array [N, C, H, W], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{what} must be images [N, C, H, W], got shape {tuple(x.shape)}")
    if not (x.dtype == torch.uint8 or x.is_floating_point()):
        raise TypeError(f"{what} must be uint8 images or floating-point images in [-1, 1], got {x.dtype}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"{what} must have 1 or 3 channels (the FID Inception sees RGB), got {x.shape[1]} channels "
                         f"in shape {tuple(x.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{what}: the images are empty, shape {tuple(x.shape)}")
    n = x.shape[0]
    if num_samples is not None:
        positive_int(num_samples, "num_samples")
        if num_samples > n:
            raise ValueError(f"num_samples={num_samples} exceeds the {n} images of {what}")
        x = x[:num_samples]
        n = num_samples
    if n < 1:
        raise ValueError(f"{what}: no images given (shape {tuple(x.shape)})")
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{what} contains NaN or inf")
        if float(x.abs().max()) > FLOAT_RANGE_LIMIT:
            raise ValueError(f"{what}: float images must lie in [-1, 1] (up to +-{FLOAT_RANGE_LIMIT:g} of sampler "
                             f"overshoot), got values up to {float(x.abs().max()):g}; images on the [0, 255] "
                             f"scale must be passed as uint8")
    ident = {"kind": "array", "shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", ""),
             "sha1": array_sha1(x)}
    return ImageSource(n, ident, lambda b: (x[s:s + b] for s in range(0, n, b)))


def folder_source(path: Path, num_samples) -> ImageSource:
    from ..data.image_folder import EXTENSIONS, open_image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{path} holds no image files ({', '.join(EXTENSIONS)})")
    if num_samples is not None:
        positive_int(num_samples, "num_samples")
        if num_samples > len(files):
            raise ValueError(f"num_samples={num_samples} exceeds the {len(files)} images in {path}")
        files = files[:num_samples]

    def batches(b):
        for s in range(0, len(files), b):
            ims = [np.array(open_image(f, "RGB"), dtype=np.uint8) for f in files[s:s + b]]  # writable copies
            shapes = {im.shape for im in ims}
            if len(shapes) == 1:
                yield torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)
            else:  # mixed sizes: one image at a time
                for im in ims:
                    yield torch.from_numpy(im[None]).permute(0, 3, 1, 2)

    ident = {"kind": "folder", "path": str(path.resolve()), "files": len(files)}
    return ImageSource(len(files), ident, batches)


def dataset_source(spec: str, num_samples, seed: int) -> ImageSource:
    from .. import data

    name, _, split = spec.partition(":")
    ds = data.load(name, split=split or None)
    n_all = len(ds)
    n = n_all if num_samples is None else num_samples
    positive_int(n, "num_samples")
    if n > n_all:
        raise ValueError(f"num_samples={n} exceeds the {n_all} images of dataset {spec!r}")
    # a seeded random subset (ground-truth datasets are stored in factor order)
    idx = np.arange(n_all) if n == n_all else np.random.default_rng(seed).permutation(n_all)[:n]

    def batches(b):
        for s in range(0, n, b):
            imgs = np.asarray(ds.images(idx[s:s + b]))
            t = torch.from_numpy(np.ascontiguousarray(imgs))
            if t.dtype != torch.uint8:  # float [0, 1]
                t = (t.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
            yield t.permute(0, 3, 1, 2)

    ident = {"kind": "dataset", "name": name, "split": split or None, "count": n,
             "subset": "all" if n == n_all else f"numpy default_rng({seed}).permutation[:{n}]",
             "class": type(ds).__name__}
    return ImageSource(n, ident, batches)


def model_source(model, num_samples, seed: int, what: str) -> ImageSource:
    """Images drawn from ``model.sample(n, generator=)`` (seeded by ``seed``) or, for a plain callable,
    ``model(start, count)``; drawn lazily, batch by batch."""
    if not (callable(getattr(model, "sample", None)) or callable(model)):
        raise TypeError(f"{what}: model must have sample(n, generator=) or be a batch callable, got "
                        f"{type(model).__name__}")
    non_negative_int(seed, "seed")  # a bad seed surfaced only at the first batch
    if num_samples is None:
        raise ValueError(f"{what}: a model (or a batch callable) needs num_samples")
    positive_int(num_samples, "num_samples")
    n = num_samples

    def batches(b):
        if hasattr(model, "sample"):
            dev = next((p.device for p in model.parameters()), torch.device("cpu")) \
                if isinstance(model, torch.nn.Module) else torch.device("cpu")
            gen = torch.Generator(device=dev).manual_seed(seed)
            for s in range(0, n, b):
                with torch.no_grad():
                    yield model.sample(min(b, n - s), generator=gen)
        else:
            for s in range(0, n, b):
                yield model(s, min(b, n - s))

    if hasattr(model, "sample"):
        ident = {"kind": "model", "class": type(model).__name__, "count": n, "seed": seed}
    else:
        ident = {"kind": "callable", "count": n}
    return ImageSource(n, ident, batches)


def resolve_source(source, num_samples, seed: int, what: str) -> ImageSource:
    """``source`` (a tensor or array, an image folder, a model directory, a dataset name, a model or a
    batch callable) as an :class:`ImageSource` of ``num_samples`` images (None: all there are)."""
    non_negative_int(seed, "seed")
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, (torch.Tensor, np.ndarray)):
        return tensor_source(source, num_samples, what)
    if isinstance(source, (str, os.PathLike)):
        p = Path(source).expanduser()
        if p.is_dir() and (p / "config.json").is_file():
            from ..nn.pretrained import load_pretrained

            model = load_pretrained(p).eval()
            src = model_source(model, num_samples, seed, what)
            src.identity["directory"] = str(p.resolve())
            return src
        if p.is_dir():
            return folder_source(p, num_samples)
        if p.is_file():
            raise ValueError(f"{what}: {p} is a file; give images, an image folder, a model directory or a dataset "
                             f"name (reference statistics .npz files go to cache=)")
        from .. import data

        name = str(source).partition(":")[0]
        if name in data.available():
            return dataset_source(str(source), num_samples, seed)
        import difflib

        close = difflib.get_close_matches(name, list(data.available()), n=3, cutoff=0.6)  # a typo such as dsprite
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{what}: {str(source)!r} is neither an existing folder (images or a saved model) nor a "
                         f"dataset name ({', '.join(sorted(data.available()))}){hint}")
    if hasattr(source, "sample") or callable(source):
        return model_source(source, num_samples, seed, what)
    raise TypeError(f"{what}: cannot score images from {a_or_an(type(source).__name__)}; give a tensor or array "
                    f"[N, C, H, W], an image folder, a dataset name, a model (directory) or a batch callable")
