"""The ground-truth dataset interface shared by every diffrep dataset.

Conventions (docs/data.md#conventions, #groundtruthdata-interface):

* factor index order = the order of the original file, slowest axis first;
* the flat index is row-major (C order) mixed radix, ``idx = sum_i f_i * B_i`` with
  ``B_i = prod_{j>i} s_j`` (disentanglement_lib ``SplitDiscreteStateSpace`` / disent ``StateSpace``);
* factor *classes* (int64, ``0..s_i-1``) are kept apart from factor *values* (float64, the physical grid);
* observations for metrics are float32 in [0, 1], HWC (``sample_observations_from_factors``);
* torch item access (``ds[i]``) returns ``(image, target)`` with the image in the layout chosen by
  ``item_format`` (default ``"pm1"``: float32 CHW in [-1, 1], what diffusion training consumes) and the
  target the int64 factor classes (ground-truth data) or the label/attribute tensor (plain image data).

``sample_*`` methods accept a :class:`numpy.random.Generator`, a :class:`numpy.random.RandomState`,
an ``int`` seed, ``None`` (fresh entropy) or a :class:`torch.Generator`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import numpy as np
import torch

from .. import _checks

ITEM_FORMATS = ("pm1", "01", "uint8", "hwc01")


def check_item_format(item_format: str) -> str:
    if item_format not in ITEM_FORMATS:
        raise ValueError(f"item_format must be one of {ITEM_FORMATS}, got {item_format!r}")
    return item_format


def as_generator(rng) -> np.random.Generator | np.random.RandomState:
    """Normalise an RNG argument: Generator/RandomState pass through, int/None seed a Generator,
    a torch.Generator seeds a numpy Generator from one draw of its stream."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if isinstance(rng, (bool, np.bool_)):  # True was seed 1
        raise TypeError(f"rng must be a numpy Generator/RandomState, a torch.Generator, an int seed or None, got {rng!r}")
    if rng is None or isinstance(rng, (int, np.integer)):
        if rng is not None and int(rng) < 0:
            raise ValueError(f"rng: a seed must be non-negative, got {rng}")
        return np.random.default_rng(rng)
    if isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng).item())
        return np.random.default_rng(seed)
    raise TypeError(
        "rng must be a numpy Generator/RandomState, a torch.Generator, an int seed or None, "
        f"got {type(rng).__name__}"
    )


def check_rng(rng) -> None:
    """The kinds of rng :func:`as_generator` takes, checked without drawing from it (for a method that
    takes an rng for interface compatibility and does not use it)."""
    if isinstance(rng, (bool, np.bool_)) or not (
            rng is None or isinstance(rng, (int, np.integer, np.random.Generator, np.random.RandomState, torch.Generator))):
        raise TypeError(f"rng must be a numpy Generator/RandomState, a torch.Generator, an int seed or None, got {rng!r}")
    if isinstance(rng, (int, np.integer)) and rng < 0:
        raise ValueError(f"rng: a seed must be non-negative, got {rng}")


def integers(rng, high: int, size) -> np.ndarray:
    """Uniform int64 draws in [0, high) from either numpy RNG flavour."""
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size=size).astype(np.int64)
    return rng.integers(0, high, size=size, dtype=np.int64)


def images_to_float01(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 /255; float input is returned as float32 unchanged."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.asarray(images, dtype=np.float32)


def format_images(images: np.ndarray, item_format: str) -> torch.Tensor:
    """Convert a batch (n, H, W, C) of uint8 0..255 or float [0,1] images to a torch tensor.

    ``"pm1"``: float32 (n, C, H, W) in [-1, 1]; ``"01"``: float32 (n, C, H, W) in [0, 1];
    ``"uint8"``: uint8 (n, C, H, W) in 0..255 (float data is rounded); ``"hwc01"``: float32 (n, H, W, C)
    in [0, 1].
    """
    t = torch.from_numpy(np.ascontiguousarray(images))
    if item_format == "uint8":
        if t.dtype != torch.uint8:
            t = (t.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        return t.permute(0, 3, 1, 2).contiguous()
    if t.dtype == torch.uint8:
        t = t.to(torch.float32).mul_(1.0 / 255.0)
    else:
        t = t.to(torch.float32)
    if item_format == "hwc01":
        return t
    t = t.permute(0, 3, 1, 2).contiguous()
    if item_format == "pm1":
        t = t.mul_(2.0).sub_(1.0)
    return t


def check_indices(indices, n: int, what: str = "index") -> np.ndarray:
    """Validate integer indices into a dataset of length ``n`` (negative indices wrap once)."""
    arr = np.asarray(indices)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{what} must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < -n or arr.max() >= n):
        bad = arr[(arr < -n) | (arr >= n)][0]
        raise IndexError(f"{what} {bad} out of range for a dataset of length {n}")
    return np.where(arr < 0, arr + n, arr)


class LRUCache:
    """A small bounded cache of per-index images (used by the procedural renderers)."""

    def __init__(self, capacity: int):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity < 0:
            raise ValueError(f"cache capacity (cache_size) must be an int >= 0, got {capacity!r}")
        self.capacity = int(capacity)
        self._d: OrderedDict[int, np.ndarray] = OrderedDict()

    def get_many(self, indices: np.ndarray, render) -> np.ndarray:
        """Return images for ``indices``, rendering the missing ones with ``render(idx_array)``."""
        if self.capacity == 0:
            return render(indices)
        hits = [self._d.get(int(i)) for i in indices]
        missing = np.array([k for k, h in enumerate(hits) if h is None], dtype=np.int64)
        if missing.size:
            uniq, inv = np.unique(indices[missing], return_inverse=True)
            new = render(uniq)
            for k, m in enumerate(missing):
                hits[m] = new[inv[k]]
            for j, i in enumerate(uniq):
                self._d[int(i)] = new[j]
                self._d.move_to_end(int(i))
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)
        if not hits:
            return render(indices)
        return np.stack(hits)


class ImageDataset(torch.utils.data.Dataset):
    """Base of every diffrep dataset: batched image access plus torch item access.

    Subclasses implement ``__len__``, ``_images(idx)`` returning (n, H, W, C) uint8 0..255 or float32 in
    [0, 1], and ``_targets(idx)`` returning an array with a leading axis n (labels, attributes or factor
    classes). ``ds[i]`` returns ``(image, target)`` formatted by ``item_format``; ``ds.__getitems__``
    (used by torch DataLoader for batched fetching) and :meth:`get_batch` return a stacked batch.
    """

    name: str = "images"
    source: str = "file"
    item_format: str = "pm1"
    target_names: tuple[str, ...] = ()

    # ---- to implement ----
    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _images(self, idx: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _targets(self, idx: np.ndarray) -> np.ndarray:
        return np.zeros((len(idx), 0), dtype=np.int64)

    # ---- shared ----
    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one observation."""
        return tuple(self._images(np.zeros(1, dtype=np.int64)).shape[1:])

    def images(self, indices) -> np.ndarray:
        """Raw images for ``indices``: (n, H, W, C), uint8 0..255 or float32 [0,1] (dataset-dependent)."""
        idx = check_indices(indices, len(self))
        return self._images(idx.reshape(-1))

    def observations(self, indices) -> np.ndarray:
        """float32 (n, H, W, C) in [0, 1] for ``indices`` (the metric convention, docs/data.md#conventions)."""
        return images_to_float01(self.images(indices))

    def targets(self, indices) -> np.ndarray:
        """The targets of ``indices`` (labels, attributes or factor classes; leading axis n) without
        reading an image: what ``diffrep eval --codes F.npz --dataset NAME`` scores codes against."""
        idx = check_indices(indices, len(self)).reshape(-1)
        return np.asarray(self._targets(idx))

    def get_batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, targets) for a sequence of indices, images formatted by ``item_format``."""
        idx = check_indices(indices, len(self)).reshape(-1)
        x = format_images(self._images(idx), self.item_format)
        y = torch.from_numpy(np.ascontiguousarray(self._targets(idx)))
        return x, y

    def __getitems__(self, indices: Sequence[int]) -> list:
        """Batched fetch for torch DataLoader (fetches the batch at once, returns a list of samples)."""
        x, y = self.get_batch(indices)
        return list(zip(x.unbind(0), y.unbind(0)))

    def __getitem__(self, index):
        """``ds[i]`` -> (image, target); ``ds[list or array or slice]`` -> stacked (images, targets)."""
        if isinstance(index, slice):
            return self.get_batch(np.arange(len(self))[index])
        if isinstance(index, (bool, np.bool_)):
            raise TypeError(f"index must be an int, a sequence of ints or a slice, got {type(index).__name__}")
        if isinstance(index, (int, np.integer)) or (torch.is_tensor(index) and index.ndim == 0):
            x, y = self.get_batch([int(index)])
            return x[0], y[0]
        if isinstance(index, (list, tuple, np.ndarray)) or torch.is_tensor(index):
            return self.get_batch(np.asarray(index))
        raise TypeError(f"index must be an int, a sequence of ints or a slice, got {type(index).__name__}")

    def describe(self) -> dict:
        """A short description used by ``diffrep data info``."""
        return {
            "name": self.name,
            "source": self.source,
            "length": len(self),
            "observation_shape": self.observation_shape,
            "targets": list(self.target_names),
        }


class GroundTruthData(ImageDataset):
    """A dataset whose images are indexed by a full grid of discrete generative factors.

    Subclasses set ``factor_names``, ``factor_sizes``, ``factor_values`` (a list of float64 arrays, the
    physical value of each class) and implement ``_images(idx)``. ``ds[i]`` returns
    ``(image, factor_classes)`` with the classes an int64 tensor of shape (num_factors,).
    """

    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    factor_values: list[np.ndarray] = []

    def _init_factors(self, names: Sequence[str], sizes: Sequence[int], values=None) -> None:
        # a str was taken letter by letter, None failed with "not iterable", int() truncated 2.5 to 2
        if (isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray))
                or not all(isinstance(n, (str, bytes)) for n in names)):
            raise TypeError(f"factor_names must be a sequence of str, got {names!r}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]  # a pickled file's names
        if (not isinstance(sizes, (Sequence, np.ndarray)) or isinstance(sizes, (str, bytes))
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in sizes)):
            raise TypeError(f"factor_sizes must be a sequence of ints, got {sizes!r}")
        names = tuple(names)
        sizes = tuple(int(s) for s in sizes)
        if len(names) != len(sizes):
            raise ValueError(f"{len(names)} factor_names for {len(sizes)} factor_sizes")
        if any(s < 1 for s in sizes):
            raise ValueError(f"factor_sizes must be >= 1, got {sizes}")
        if values is None:
            values = [np.arange(s, dtype=np.float64) for s in sizes]
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) or len(values) != len(sizes):
            raise TypeError(f"factor_values must be one array of values per factor ({len(sizes)}), got {values!r:.80}")
        try:
            values = [np.asarray(v, dtype=np.float64) for v in values]
        except (TypeError, ValueError):
            raise TypeError(f"factor_values must hold real numbers, got {values!r:.80}") from None
        for n, s, v in zip(names, sizes, values):
            if v.shape != (s,):
                raise ValueError(f"factor {n!r}: {v.shape[0] if v.ndim else 0} values for size {s}")
        self.factor_names, self.factor_sizes, self.factor_values = names, sizes, values
        self._sizes_arr = np.asarray(sizes, dtype=np.int64)
        bases = np.ones(len(sizes), dtype=np.int64)
        for i in range(len(sizes) - 2, -1, -1):
            bases[i] = bases[i + 1] * sizes[i + 1]
        self.factor_bases = bases
        self.target_names = names

    # ---- naming aliases (disentanglement_lib / disent) ----
    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_sizes)

    def __len__(self) -> int:
        return int(np.prod(self._sizes_arr)) if self.factor_sizes else 0

    # ---- index math ----
    def check_factors(self, factors) -> np.ndarray:
        """Validate a (n, num_factors) or (num_factors,) array of factor classes; returns int64 (n, F)."""
        arr = np.asarray(factors)
        if arr.dtype == bool or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            if arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise TypeError(f"factors: factor classes must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.ndim == 1 and arr.size == self.num_factors:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.num_factors:
            raise ValueError(
                f"factors must have shape (n, {self.num_factors}) for {self.name} "
                f"(factors {list(self.factor_names)}), got {np.asarray(factors).shape}"
            )
        bad = (arr < 0) | (arr >= self._sizes_arr)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"factor {self.factor_names[c]!r} class {arr[r, c]} out of range [0, {self.factor_sizes[c]}) "
                f"(row {r})"
            )
        return arr

    def factors_to_index(self, factors) -> np.ndarray:
        """Row-major flat indices (int64, shape (n,)) of factor class rows (docs/data.md#conventions)."""
        f = self.check_factors(factors)
        return f @ self.factor_bases

    def index_to_factors(self, indices) -> np.ndarray:
        """int64 (n, num_factors) factor classes of flat indices (the inverse of factors_to_index)."""
        idx = np.asarray(indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise ValueError(f"index {bad} out of range [0, {n}) for {self.name}")
        return np.stack(np.unravel_index(idx, self.factor_sizes), axis=1).astype(np.int64)

    def factor_classes_to_values(self, factors) -> np.ndarray:
        """float64 (n, F) physical values of factor class rows."""
        f = self.check_factors(factors)
        return np.stack([self.factor_values[i][f[:, i]] for i in range(self.num_factors)], axis=1)

    # ---- sampling (disentanglement_lib GroundTruthData) ----
    def sample_factors(self, n: int, rng=None) -> np.ndarray:
        """int64 (n, num_factors): each factor class uniform and independent.

        The parameters are named ``(n, rng)`` (docs/data.md#groundtruthdata-interface); disentanglement_lib
        passes its ``(num, random_state)`` by position, so its calls work unchanged."""
        n = check_count(n)
        rng = as_generator(rng)
        # reshape(n, -1) could not infer the width of an empty sample (n = 0)
        return np.stack([integers(rng, s, n) for s in self.factor_sizes], axis=1).reshape(n, self.num_factors)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """float32 (n, H, W, C) in [0, 1] images for factor class rows. ``rng`` is accepted for interface
        compatibility (datasets with one image per factor combination do not use it)."""
        check_rng(rng)
        return self.observations(self.factors_to_index(factors))

    def sample(self, n: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """(factor classes int64 (n, F), observations float32 (n, H, W, C) in [0, 1])."""
        rng = as_generator(rng)
        f = self.sample_factors(n, rng)
        return f, self.sample_observations_from_factors(f, rng)

    def sample_observations(self, n: int, rng=None) -> np.ndarray:
        return self.sample(n, rng)[1]

    def _targets(self, idx: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(idx, self.factor_sizes), axis=1).astype(np.int64)

    def describe(self) -> dict:
        d = super().describe()
        d["factors"] = [
            {"name": n, "size": s, "values": [float(x) for x in v[:3]] + ([float(v[-1])] if s > 3 else [])}
            for n, s, v in zip(self.factor_names, self.factor_sizes, self.factor_values)
        ]
        return d


class ArrayGroundTruthData(GroundTruthData):
    """Ground-truth data over an in-memory image array in canonical factor order (handy for tests).

    ``images``: (N, H, W, C) uint8 0..255 or float32 [0, 1] with N = prod(factor_sizes), row k the image
    of factor classes ``unravel_index(k, factor_sizes)``.
    """

    def __init__(self, images, factor_names, factor_sizes, factor_values=None, item_format="pm1", name="array"):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str (the dataset's name in descriptions), got {name!r}")
        self.name, self.source = name, "array"
        self._init_factors(factor_names, factor_sizes, factor_values)
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[0] != len(self):
            raise ValueError(f"images must be (N={len(self)}, H, W, C), got {images.shape}")
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise TypeError(f"images must be uint8 or float, got {images.dtype}")
        if images.dtype != np.uint8 and images.size and not (np.isfinite(images).all() and images.min() >= 0
                                                             and images.max() <= 1):
            # float images are read as [0, 1] intensities (observations, item formats): 0..255 or [-1, 1]
            # data would be scaled wrongly without a sign
            raise ValueError(f"float images must be finite and in [0, 1], got the range [{images.min()}, "
                             f"{images.max()}] (pass uint8 for 0..255 data)")
        self._data = images
        self.item_format = check_item_format(item_format)

    def _images(self, idx):
        return self._data[idx]


def check_count(n, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} (the number of samples) must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} (the number of samples) must be >= 0, got {n}")
    return int(n)


def check_flag(value, name: str) -> bool:
    """A boolean option (``True``/``False``, numpy bools too). Anything else is a TypeError: a string such as
    ``"no"`` would otherwise be truthy and switch the option on."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_file(path, name: str = "path", what: str = "a file"):
    """``path`` (str or os.PathLike) as a Path to an existing file: a TypeError naming ``name`` for anything
    else, a FileNotFoundError naming the path when it is missing or a folder (open() on a folder is an
    IsADirectoryError that names neither the argument nor what was expected)."""
    return _existing(path, name, what, folder=False)


def check_folder(path, name: str = "root", what: str = "a folder"):
    """``path`` as a Path to an existing folder (the folder-shaped twin of :func:`check_file`)."""
    return _existing(path, name, what, folder=True)


def _existing(path, name: str, what: str, folder: bool):
    """``path`` as a Path to an existing folder (``folder``) or file; the other kind is named as such."""
    p = _checks.path(path, name)
    if p.is_file() if folder else p.is_dir():
        raise FileNotFoundError(f"{name}: {str(p)!r} is a {'file' if folder else 'folder'}, expected {what}")
    if not (p.is_dir() if folder else p.is_file()):
        raise FileNotFoundError(f"{name}: {str(p)!r} does not exist (expected {what})")
    return p


def setting_text(flag: str, value: str | None = None) -> str:
    """How to give ``value`` to the setting ``flag`` in the caller's own terms: a command-line flag
    (``"--source"`` -> ``--source procedural``; one ending in ``=``, e.g. ``"--option source="``, takes the
    value joined) or a Python argument (``"source"`` -> ``source='procedural'``); no ``value``: the setting
    alone (``--root``, ``root=``). The data loaders' hints name the flag a command-line user can type
    (docs/data.md, "Dataset roots") rather than the API argument behind it."""
    if flag.startswith("--"):
        return flag if value is None else f"{flag}{value}" if flag.endswith("=") else f"{flag} {value}"
    return f"{flag}=" if value is None else f"{flag}={value!r}"


class MissingFilesError(FileNotFoundError):
    """:func:`missing_file_error`'s error. It keeps what it names (``dataset``, ``expected``, ``root``) so that
    :func:`diffrep.data.load` can word a reader's own error (files a found folder lacks) in its caller's terms:
    a reader constructed directly names the API's arguments, one loaded from a command line that verb's flags."""


def missing_file_error(dataset: str, expected: Sequence[str], root, *, root_flag: str = "root",
                       source_flag: str = "source", generated: bool = False) -> MissingFilesError:
    """A FileNotFoundError naming the dataset, the expected files and where they were looked for; the hint
    names ``root_flag`` and ``source_flag`` as :func:`setting_text` writes them (the API's arguments by
    default, a verb's flags from the command line); it offers the procedural source only when ``generated``
    (the dataset has a generator: :func:`diffrep.data.load` says; LSUN, CelebA, MNIST, CIFAR-10, Cars3D, whose
    readers raise this error themselves, have none)."""
    if not isinstance(generated, bool):
        raise TypeError(f"generated must be True or False, got {generated!r}")
    files = ", ".join(expected)
    other = f" (or {setting_text(source_flag, 'procedural')} where a generator exists)" if generated else ""
    err = MissingFilesError(
        f"{dataset}: expected file(s) {files} under {str(root)!r} but found none there; "
        f"pass {setting_text(root_flag)} the folder holding them{other}"
    )
    err.dataset, err.expected, err.root = dataset, tuple(expected), root  # attributes: the error still pickles
    return err


def grid_row_map(classes: np.ndarray, sizes, path) -> np.ndarray | None:
    """None if file rows are in canonical order; else the file row of each canonical index."""
    n = int(np.prod(sizes))
    if len(classes) != n:
        raise ValueError(
            f"{path}: {len(classes)} rows do not form the full factor grid {tuple(sizes)} ({n} combinations)"
        )
    flat = np.ravel_multi_index(tuple(classes.T), sizes)
    if np.array_equal(flat, np.arange(n)):
        return None
    row = np.full(n, -1, dtype=np.int64)
    row[flat] = np.arange(n)
    if (row < 0).any():
        raise ValueError(f"{path}: the rows repeat some factor combinations and miss others")
    return row


def import_h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading HDF5 files needs h5py: pip install 'diffrep[h5]' (or pip install h5py)") from exc
    return h5py
