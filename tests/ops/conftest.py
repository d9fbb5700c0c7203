import pytest
import torch

import diffrep

DEVICES = ["cpu"] + (["cuda"] if diffrep.cuda_available() else [])


@pytest.fixture(params=DEVICES, scope="session")
def device(request):
    """Every device with a native backend here; CUDA only when a GPU is usable."""
    return torch.device(request.param)

