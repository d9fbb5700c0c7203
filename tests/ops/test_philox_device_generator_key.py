"""philox_key of a CUDA generator reads nothing back from the device (docs/kernels/random.md#key-and-counter): the
key hashes the generator's host-side Philox (seed, offset) and moves the offset on by 4. Without a GPU the
generator is a CPU one that reports cuda:0 and keeps a Philox offset as torch's CUDA generator does (get_offset,
set_offset in multiples of 4, reset by manual_seed); that torch's CUDA generator behaves so is for a GPU run
(tests/ops/test_bfn_cuda.py)."""

from __future__ import annotations

import torch

from helpers import host_reads

from diffrep.ops import random as R

MASK = (1 << 64) - 1


class _CudaLike(torch.Generator):
    """A CPU generator reporting cuda:0, with a CUDA generator's host-side Philox offset."""

    def __new__(cls, seed: int, sticky: bool = True):
        return super().__new__(cls)  # a CPU generator

    def __init__(self, seed: int, sticky: bool = True):
        super().__init__()
        self.sticky = sticky
        self.manual_seed(seed)

    @property
    def device(self):
        return torch.device("cuda", 0)

    def manual_seed(self, seed):
        super().manual_seed(seed)
        self._offset = 0
        return self

    def get_offset(self):
        return self._offset

    def set_offset(self, offset):
        if offset % 4:
            raise RuntimeError("offset must be a multiple of 4")
        if self.sticky:
            self._offset = offset


def _splitmix_finaliser(z: int) -> int:  # Steele, Lea, Flood (2014), written out again here
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 % (1 << 64)
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB % (1 << 64)
    return z ^ (z >> 31)


def test_keys_hash_seed_and_offset_and_move_the_generator_on_without_a_read():
    g = _CudaLike(123)
    reads, keys = host_reads(lambda: [R.philox_key(g) for _ in range(5)])
    assert reads == 0 and g.get_offset() == 20
    assert keys == [(_splitmix_finaliser((_splitmix_finaliser(123) + 4 * i) % (1 << 64)), 0) for i in range(5)]
    assert len({k for k, _ in keys}) == 5
    g.manual_seed(123)  # reseeding repeats the keys, another seed gives others
    assert [R.philox_key(g) for _ in range(5)] == keys
    other = [R.philox_key(_CudaLike(124)) for _ in range(1)]
    assert other[0] not in keys
    big = _CudaLike(2**64 - 1)  # seeds cover the whole uint64 range
    assert 0 <= R.philox_key(big)[0] <= MASK


def test_a_generator_that_does_not_move_or_refuses_the_offset_takes_the_read_back_path():
    assert R._device_generator_key(_CudaLike(5, sticky=False)) is None  # the same key twice: never
    g = _CudaLike(5)
    g._offset = 2  # not a multiple of 4: set_offset refuses
    assert R._device_generator_key(g) is None and g.get_offset() == 2
    assert R._device_generator_key(torch.Generator()) is None  # a CPU generator has no Philox offset to move
