"""Lazy access to the members of a ``.npz`` archive without loading them whole.

``np.load`` on an ``.npz`` cannot memory-map its members. For a member stored uncompressed (ZIP_STORED,
what ``np.savez`` writes) :func:`member_memmap` maps the ``.npy`` bytes in place at their offset inside the
zip; for a compressed member (``np.savez_compressed``, e.g. the dSprites file) :func:`iter_member_rows`
streams it in chunks of rows, so a caller can pack or convert it without ever holding the raw array.
Every function raises ``ValueError`` naming the file on a bad zip, a missing key or a broken header.
"""

from __future__ import annotations

import struct
import zipfile
from typing import Iterator

import numpy as np

from .._checks import positive_int
from .base import check_file, check_flag


def _open_zip(path) -> zipfile.ZipFile:
    path = check_file(path, "path", "a .npz archive")
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{path}: not a readable .npz (zip) archive: {exc}") from exc


def member_keys(path) -> list[str]:
    """Array names held by the archive (member names without ``.npy``)."""
    with _open_zip(path) as zf:
        return [n[:-4] for n in zf.namelist() if n.endswith(".npy")]


def _check_key(key) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"key (an array name in the archive) must be a non-empty str, got {key!r}")
    return key


def _info(zf: zipfile.ZipFile, path, key: str) -> zipfile.ZipInfo:
    _check_key(key)
    try:
        return zf.getinfo(key + ".npy")
    except KeyError:
        keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        raise ValueError(f"{path}: no array {key!r} in the archive (it holds {keys})") from None


def _read_header(fp, path, key):
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: member {key!r} has a broken .npy header: {exc}") from exc
    return tuple(shape), bool(fortran), np.dtype(dtype)


def member_header(path, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of one member, read from its header only."""
    with _open_zip(path) as zf:
        info = _info(zf, path, key)
        with zf.open(info) as fp:
            return _read_header(fp, path, key)


def member_memmap(path, key: str) -> np.memmap | None:
    """A read-only memmap of an uncompressed member, or None if the member is compressed."""
    path = check_file(path, "path", "a .npz archive")
    with _open_zip(path) as zf:
        info = _info(zf, path, key)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with zf.open(info) as fp:
            shape, fortran, dtype = _read_header(fp, path, key)
            header_len = fp.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {key!r} holds Python objects and cannot be memory-mapped")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: corrupt local zip header for member {key!r}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
    offset = info.header_offset + 30 + name_len + extra_len + header_len
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset + nbytes > path.stat().st_size or info.file_size < header_len + nbytes:
        raise ValueError(f"{path}: member {key!r} is truncated (header says shape {shape}, {dtype})")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def iter_member_rows(path, key: str, rows_per_chunk: int = 4096) -> Iterator[np.ndarray]:
    """Yield consecutive chunks (along axis 0) of a C-ordered member, decompressing as it goes."""
    rows_per_chunk = positive_int(rows_per_chunk, "rows_per_chunk")  # 0 looped forever on empty chunks
    with _open_zip(path) as zf:
        info = _info(zf, path, key)
        with zf.open(info) as fp:
            shape, fortran, dtype = _read_header(fp, path, key)
            if fortran and len(shape) > 1:
                raise ValueError(f"{path}: member {key!r} is Fortran-ordered; cannot stream its rows")
            if dtype.hasobject:
                raise ValueError(f"{path}: member {key!r} holds Python objects")
            row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            left = shape[0] if shape else 1
            while left:
                k = min(rows_per_chunk, left)
                try:
                    buf = fp.read(k * row)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ValueError(f"{path}: member {key!r} is corrupt: {exc}") from exc
                if len(buf) != k * row:
                    raise ValueError(f"{path}: member {key!r} is truncated (expected shape {shape})")
                yield np.frombuffer(buf, dtype=dtype).reshape((k,) + tuple(shape[1:]))
                left -= k


def load_member(path, key: str, allow_pickle: bool = False) -> np.ndarray:
    """Load one member fully (for the small ones: labels, latents)."""
    path, key = check_file(path, "path", "a .npz archive"), _check_key(key)
    allow_pickle = check_flag(allow_pickle, "allow_pickle")
    if not zipfile.is_zipfile(path):
        # np.load would try a raw .npy or a pickle and fail without naming the file
        raise ValueError(f"{path}: not a readable .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=allow_pickle, encoding="latin1") as z:
            if key not in z.files:
                raise ValueError(f"{path}: no array {key!r} in the archive (it holds {z.files})")
            try:
                return z[key]
            except ValueError as exc:  # numpy's refusal of a pickled member names neither file nor key
                if allow_pickle or "allow_pickle" not in str(exc):
                    raise
                raise ValueError(f"{path}: member {key!r} holds Python objects (a pickle); pass allow_pickle=True "
                                 "only for a file you trust") from None
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable .npz archive or member {key!r} is corrupt: {exc}") from exc
