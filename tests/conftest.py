"""Fixtures shared by every test folder; the plain helpers they build on are in ``tests/helpers.py``.

- every test starts from fixed seeds (python, numpy, torch: ``helpers.SEED``); under pytest-xdist each
  worker uses its share of torch's threads;
- a test that leaves torch's thread count, default dtype, deterministic or grad mode, the working directory, a
  backend forced by ``use_backend`` or one of diffrep's environment variables changed fails (the later tests on
  its worker would inherit them);
- ``device``: each device with a native backend here (CUDA only when a GPU is usable);
- ``rng``, ``identity_split``: a seeded NumPy ``RandomState`` and a near-identity representation of
  Shapes3D-sized factors (metric tests);
- ``trained_paramrel``: a ParamReL trained 40 steps on binarised 16 x 16 digits through
  ``diffrep.train.Trainer``, once per session.
"""

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

import diffrep
from diffrep.cli.info import ENV_VARS
from diffrep.ops import _dispatch
from helpers import paramrel_probe_losses, sample_factors, seed_all

DEVICES = ["cpu"] + (["cuda"] if diffrep.cuda_available() else [])

# Hypothesis's default profile for every test file (loaded before any of them is imported, so each
# @settings(...) inherits it): no per-example deadline and no "too slow" health check, both timing verdicts
# that fail on a loaded CI machine while the values under test are right (the rule: no timing asserts).
settings.register_profile("diffrep", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("diffrep")

# pytest-xdist workers (the README's test command runs two) share the cores: each takes its part of
# torch's thread count (OMP_NUM_THREADS or the core count), so that the workers do not oversubscribe them.
# The other thread pools get the same share: OpenBLAS (numpy, scipy) and OpenMP (scikit-learn) start one
# thread per core when OMP_NUM_THREADS is unset (the README's command), and their threads spin while
# they wait: the environment variables reach the libraries loaded from here on (and child processes),
# threadpoolctl the ones already loaded.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _share = max(1, torch.get_num_threads() // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    torch.set_num_threads(_share)
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = str(_share)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it only the libraries loaded later are limited
        pass
    else:
        threadpool_limits(_share)
_THREADS = torch.get_num_threads()
_SETTINGS = pytest.StashKey[dict]()


# The process-wide settings that a test could leave changed for every later test on its worker (which tests those
# are changes from run to run under --dist loadfile: a leak shows as a rare failure of another file's test).
# diffrep's environment variables are the ones ``diffrep info`` lists; CUBLAS_WORKSPACE_CONFIG is among them.
_ENV_READ = tuple(name for name, _ in ENV_VARS)


def _process_settings() -> dict:
    return {
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled(),
        "torch.is_deterministic_algorithms_warn_only_enabled()": torch.is_deterministic_algorithms_warn_only_enabled(),
        "torch.is_grad_enabled()": torch.is_grad_enabled(),
        "torch.backends.cudnn.benchmark": torch.backends.cudnn.benchmark,
        "torch.backends.cudnn.deterministic": torch.backends.cudnn.deterministic,
        "the working directory": os.getcwd(),
        "the backend forced by diffrep.ops.use_backend": _dispatch._forced.get(),
        **{f"${name}": os.environ.get(name) for name in _ENV_READ},
    }


def _restore(settings: dict) -> None:
    torch.set_default_dtype(settings["torch.get_default_dtype()"])
    torch.use_deterministic_algorithms(settings["torch.are_deterministic_algorithms_enabled()"],
                                       warn_only=settings["torch.is_deterministic_algorithms_warn_only_enabled()"])
    torch.set_grad_enabled(settings["torch.is_grad_enabled()"])
    torch.backends.cudnn.benchmark = settings["torch.backends.cudnn.benchmark"]
    torch.backends.cudnn.deterministic = settings["torch.backends.cudnn.deterministic"]
    os.chdir(settings["the working directory"])
    _dispatch._forced.set(settings["the backend forced by diffrep.ops.use_backend"])
    for name in _ENV_READ:
        value = settings[f"${name}"]
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_runtest_setup(item):
    """Fixed seeds before each test (a hook, not a fixture, so hypothesis tests see no function-scoped fixture);
    the process-wide settings as the test finds them (this runs before any of its fixtures is set up)."""
    seed_all()
    item.stash[_SETTINGS] = _process_settings()


@pytest.hookimpl(trylast=True)  # after the test's fixtures are torn down: monkeypatch has undone its changes
def pytest_runtest_teardown(item, nextitem):
    """Every test leaves torch's thread count as it found it (restored here either way). A count left
    above the worker's share oversubscribes the cores for every later test on that worker (measured
    3-5x slower on 2 cores): that is a test error naming the test. So is a process-wide setting
    (``_process_settings``) left changed: put back here either way, it is an error of the test that changed
    it instead of a failure of whichever test runs next on that worker."""
    n = torch.get_num_threads()
    if n != _THREADS:
        torch.set_num_threads(_THREADS)
        if n > _THREADS:
            pytest.fail(f"the test left torch at {n} threads (this process runs {_THREADS}); restore the count "
                        "it changed (torch.set_num_threads in a finally block)", pytrace=False)
    before = item.stash.get(_SETTINGS, None)
    after = _process_settings()
    if before is not None and after != before:
        _restore(before)
        pytest.fail("the test left process-wide settings changed: " + "; ".join(
            f"{k} {v!r} -> {after[k]!r}" for k, v in before.items() if after[k] != v) + " (restore them: "
            "monkeypatch.setenv / monkeypatch.chdir, or a finally block)", pytrace=False)


@pytest.fixture(params=DEVICES, scope="session")
def device(request):
    """Every device with a native backend here; CUDA only when a GPU is usable."""
    return torch.device(request.param)


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture
def identity_split(rng):
    ftr, fte = sample_factors(1000, rng), sample_factors(1000, rng)
    return ftr + 0.05 * rng.randn(*ftr.shape), ftr, fte + 0.05 * rng.randn(*fte.shape), fte


@pytest.fixture(scope="session")
def trained_paramrel(tmp_path_factory):
    """(model in eval mode, all training images [N, 1, 16, 16], the untrained model's ``paramrel_probe_losses``):
    ParamReL_d on the procedural binarised digits at 16 x 16 (the ``paramrel/digits`` model with 10 sampling
    steps), trained 40 steps of batch 32 at lr 2e-3 without EMA by ``diffrep.train.Trainer`` on the CPU.
    (The tests on it pass after one step already but for the loss drop; 40 steps keep that drop > 10x.)"""
    from diffrep import data
    from diffrep.bfn import BFNDataConfig
    from diffrep.methods.paramrel import ParamReL
    from diffrep.recipes.paramrel import _CPU_FIELDS, paramrel_config
    from diffrep.train import TrainConfig, Trainer
    from torch.utils.data import TensorDataset

    seed_all()
    ds = data.load("digits", size=16, split="train")
    x_all = torch.stack([ds[i][0] for i in range(len(ds))])
    b = BFNDataConfig(data="discrete", image_size=16, channels=1, num_classes=2, sqrt_beta1=3.0)
    m = ParamReL(paramrel_config(b, 8, 16, (1, 2), res_blocks=1, groups=8, sample_steps=10, **_CPU_FIELDS))
    before = paramrel_probe_losses(m.eval(), x_all)
    cfg = TrainConfig(steps=40, batch_size=32, lr=2e-3, weight_decay=1e-2, ema_decay=0.0, grad_clip=1.0,
                      log_every=40, ckpt_every=0, device="cpu", mixed_precision="no", seed=0)
    Trainer(m, TensorDataset(x_all), cfg, tmp_path_factory.mktemp("trained_paramrel")).train()
    seed_all()
    return m.eval(), x_all, before



@pytest.fixture
def float64_default():
    """torch's default dtype float64 inside one test only (a module-level set_default_dtype leaks into every later
    test file of the worker); ``pytestmark = pytest.mark.usefixtures("float64_default")`` for a whole file."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
