"""Resuming on a GPU: the trainer loads a checkpoint's state with ``map_location`` its device, so the saved random
state comes back as CUDA tensors, and ``restore_rng_state`` read numpy's key words with ``.numpy()`` (a CUDA
tensor refuses it): every resume on a GPU failed. The first test runs on every device of the conftest fixture
(the GPU check runs its CUDA case); the second stands a GPU-loaded state in on the CPU."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from diffrep.data.toy_shapes import ToyShapes, ToyShapesConfig
from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
from diffrep.nn import UNetConfig
from diffrep.train import TrainConfig, Trainer, list_checkpoints, read_metrics, seed_everything
from diffrep.train.rng import capture_rng_state, restore_rng_state


def _train(run_dir, device, steps, resume=None):
    seed_everything(0)
    model = ToyDDPM(ToyDDPMConfig(unet=UNetConfig(image_size=8, model_channels=8, channel_mult=(1, 2),
                                                  num_res_blocks=1, attention_resolutions=(), num_groups=4,
                                                  dropout=0.1)))
    cfg = TrainConfig(steps=steps, batch_size=8, lr=1e-3, ema_decay=0.9, log_every=1, ckpt_every=2,
                      keep_checkpoints=3, device=device.type, deterministic=True)
    Trainer(model, ToyShapes(ToyShapesConfig(num_images=24, image_size=8)), cfg, run_dir).train(resume=resume)
    return {r["step"]: r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")}


def test_a_run_resumed_on_its_device_continues_the_uninterrupted_run(device, tmp_path, monkeypatch):
    # train.deterministic sets CUBLAS_WORKSPACE_CONFIG when it is unset: set here to the value it would
    # choose, so that the variable goes back to its old state (unset) for the later tests
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ":4096:8"))
    threads, det, bench = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                           torch.backends.cudnn.benchmark)
    try:
        full = _train(tmp_path / "full", device, 4)
        _train(tmp_path / "cut", device, 2)
        assert [s for s, _ in list_checkpoints(tmp_path / "cut" / "checkpoints")] == [2]
        resumed = _train(tmp_path / "cut", device, 4, resume="latest")
    finally:  # train.deterministic switches these process-wide: the later tests get them back
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.benchmark = bench
    assert sorted(resumed) == [1, 2, 3, 4]
    if device.type == "cpu":
        assert resumed == full  # bit-identical: the restored streams draw what the uninterrupted run drew
    else:  # bf16 autocast on the GPU: the same draws, kernels deterministic up to the autocast's rounding
        np.testing.assert_allclose([resumed[s] for s in (3, 4)], [full[s] for s in (3, 4)], rtol=1e-2)


class _LoadedOnGpu(torch.Tensor):
    """A tensor as ``torch.load(map_location='cuda')`` returns it, seen from numpy: only ``.cpu()`` reaches it."""

    def cpu(self) -> torch.Tensor:
        return torch.Tensor(self).as_subclass(torch.Tensor)

    def numpy(self):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                        "host memory first.")


def test_a_state_loaded_onto_a_gpu_restores_every_stream():
    seed_everything(3)
    state = capture_rng_state()
    want = (torch.rand(3), np.random.rand(3), random.random())
    state["torch"] = state["torch"].as_subclass(_LoadedOnGpu)
    state["numpy"] = {**state["numpy"], "keys": state["numpy"]["keys"].as_subclass(_LoadedOnGpu)}
    seed_everything(4)
    restore_rng_state(state)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]
