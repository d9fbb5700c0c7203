"""Contract of issue 2 (foundation: package, native kernel build, op dispatch, the BFN kernel family).

Each test calls a public name by the path the issue gives and checks what the issue states about it:
the layout and build switches, ``diffrep.info()`` / ``diffrep info``, ``DIFFREP_BACKEND=reference``,
the seven ``diffrep.ops.bfn`` signatures, and the stated maths against closed forms written here
(math.erfc, plain formulas). Later issues win where they changed the text: issue 16 moved the
kernel-less BFN maths to ``diffrep.bfn`` and spelt ``discretized_probs`` as ``discretised_probs``
(the old name stays a deprecated alias); issue 7 made ``diffrep quickstart`` the README's first
command. Deeper value tests live in tests/ops/test_bfn_semantics.py, test_bfn_twin.py,
test_bfn_errors.py and tests/bfn/test_faithful_bfn.py.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
import torch

import diffrep
from diffrep.bfn import conversions, loss_terms
from diffrep.cli import main as cli_main
from diffrep.ops import bfn
from diffrep.ops.reference import bfn as twins

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64
PARAM = inspect.Parameter


def _phi(v: float) -> float:
    """The standard normal CDF, accurate in the lower tail."""
    return 0.5 * math.erfc(-v / math.sqrt(2.0))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(params=["native", "reference"])
def backend(request, monkeypatch):
    """Run a test on the default (native) backend and with DIFFREP_BACKEND=reference (the twins)."""
    if request.param == "reference":
        monkeypatch.setenv("DIFFREP_BACKEND", "reference")
    return request.param


# ============================================================================ package and build
def test_top_level_layout():
    """The top level issue 2 names. Its third_party/ is not kept: nothing is vendored (nanobind and
    scikit-build-core come from the build requirements), and the project's design card no longer
    lists it since issue 16."""
    for name in ("pyproject.toml", "CMakeLists.txt", "README.md", ".ci/run"):
        assert (ROOT / name).is_file(), name
    for name in ("csrc", "python/diffrep", "benches", "tests"):
        assert (ROOT / name).is_dir(), name


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_build_backend_is_scikit_build_core_and_torch_is_never_a_build_requirement():
    build = _pyproject()["build-system"]
    assert build["build-backend"] == "scikit_build_core.build"
    names = [re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower() for r in build["requires"]]
    assert "scikit-build-core" in names and "nanobind" in names
    assert "torch" not in names


def test_runtime_dependencies_have_lower_bounds_only():
    project = _pyproject()["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    for req in reqs:
        spec = re.sub(r"^[A-Za-z0-9_.\-\[\]]+", "", req).strip()
        assert re.fullmatch(r">=[0-9][0-9A-Za-z.]*", spec), f"{req!r}: a lower bound only"
    assert any(r.startswith("torch>=") for r in project["dependencies"])
    assert _pyproject()["project"]["scripts"]["diffrep"] == "diffrep.cli:main"


def test_cmake_switches():
    """DIFFREP_CUDA=AUTO|ON|OFF (env default AUTO), CUDAARCHS honoured with default 80;90, static
    cudart, C++17 + OpenMP + -O3, nanobind NOMINSIZE for both modules."""
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert re.search(r'set\(DIFFREP_CUDA "AUTO" CACHE STRING', cmake)
    assert "STRINGS AUTO ON OFF" in cmake
    assert "ENV{CUDAARCHS}" in cmake and "set(CMAKE_CUDA_ARCHITECTURES 80 90)" in cmake
    assert "set(CMAKE_CUDA_RUNTIME_LIBRARY Static)" in cmake
    assert "set(CMAKE_CXX_STANDARD 17)" in cmake and "OpenMP::OpenMP_CXX" in cmake and "-O3" in cmake
    assert re.search(r"nanobind_add_module\(_cpu NB_STATIC NOMINSIZE", cmake)
    assert re.search(r"nanobind_add_module\(_cuda NB_STATIC NOMINSIZE", cmake)
    define = _pyproject()["tool"]["scikit-build"]["cmake"]["define"]["DIFFREP_CUDA"]
    assert define == {"env": "DIFFREP_CUDA", "default": "AUTO"}


def test_cpu_module_is_built_and_cuda_module_is_imported_lazily():
    """diffrep._cpu always exists; ``import diffrep`` never imports diffrep._cuda (CPU-only machines
    import diffrep without error)."""
    import diffrep._cpu  # noqa: F401

    env = {k: v for k, v in os.environ.items() if k != "DIFFREP_BACKEND"}
    env["PYTHONPATH"] = str(Path(diffrep.__file__).resolve().parents[1])
    code = "import sys, diffrep, diffrep.ops.bfn; print('diffrep._cuda' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_editable_install_with_rebuild_on_import_is_documented():
    for page in ("README.md", "docs/build.md"):
        text = (ROOT / page).read_text()
        assert "--no-build-isolation -e . -Ceditable.rebuild=true" in text, page


def _readme_command(number: int) -> str:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    lines = block.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(f"# {number}."))
    return lines[i + 1].strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [_readme_command(2)]
    assert "pytest" in ci[0]
    # issue 7 made `diffrep quickstart` the main job of command 1 (issue 2's `diffrep info` + demo remain verbs)
    assert _readme_command(1).endswith("diffrep quickstart")


def test_bfn_bench_exists_with_device_flag_and_committed_results():
    bench = (ROOT / "benches/bench_bfn.py").read_text()
    assert '"--device"' in bench and '"--full"' in bench
    results = sorted((ROOT / "benches/results").glob("bfn_*.txt"))
    assert results and all("machine" in r.read_text().lower() for r in results)


# ============================================================================ dispatch and introspection
def test_info_reports_versions_and_each_module():
    rep = diffrep.info()
    assert rep["diffrep"] == diffrep.__version__
    assert rep["torch"] == torch.__version__
    assert set(rep["modules"]) == {"_cpu", "_cuda"}
    for name, mod in rep["modules"].items():
        assert isinstance(mod["built"], bool) and isinstance(mod["usable"], bool)
        assert not mod["usable"] or mod["built"]
        if not mod["usable"]:  # every unusable module says why
            assert isinstance(mod["reason"], str) and mod["reason"], name
    assert rep["modules"]["_cpu"]["usable"] == diffrep.cpu_available()
    assert rep["modules"]["_cuda"]["usable"] == diffrep.cuda_available()


def test_info_cli(capsys):
    assert cli_main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"diffrep {diffrep.__version__}" in text and f"torch {torch.__version__}" in text
    rep = diffrep.info()
    for name, mod in rep["modules"].items():
        assert name in text
        if not mod["usable"]:
            assert mod["reason"] in text
    assert cli_main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["modules"] == json.loads(json.dumps(rep["modules"]))


def _calls_of_every_op(device="cpu"):
    """(op name, call) for the seven public names of the issue, on ``device``."""
    g = _gen(3)
    x = (torch.rand(2, 3, generator=g, dtype=F64) * 2 - 1).to(device)
    t = torch.tensor([0.3, 0.7], dtype=F64, device=device)
    theta = torch.softmax(torch.randn(2, 3, 4, generator=g, dtype=F64), -1).to(device)
    y4 = torch.randn(2, 3, 4, generator=g, dtype=F64).to(device)
    return [
        ("continuous_flow", lambda: bfn.continuous_flow(x, t, 0.02, _gen(1))),
        ("discrete_flow", lambda: bfn.discrete_flow((x > 0).long(), t, 3.0, 2, _gen(1))),
        ("continuous_update", lambda: bfn.continuous_update(x, t + 1, x.flip(0), t)),
        ("continuous_update_inverse", lambda: bfn.continuous_update_inverse(x, t + 1, x.flip(0), t)),
        ("discrete_update", lambda: bfn.discrete_update(theta, y4)),
        ("discrete_update_inverse", lambda: bfn.discrete_update_inverse(theta, y4)),
        ("discretised_probs", lambda: bfn.discretised_probs(x, x.abs() + 0.1, 8)),
    ]


def _outputs(r):
    return r if isinstance(r, tuple) else (r,)


def test_diffrep_backend_reference_forces_the_twins(monkeypatch):
    """DIFFREP_BACKEND=reference runs the pure-PyTorch twin of every op (a spy counts the twin's
    calls) and gives the default backend's values."""
    from diffrep.ops import explain

    defaults = {name: call() for name, call in _calls_of_every_op()}
    monkeypatch.setenv("DIFFREP_BACKEND", "reference")
    for name, call in _calls_of_every_op():
        seen = []
        original = getattr(twins, name)
        monkeypatch.setattr(twins, name, lambda *a, _f=original, **k: seen.append(1) or _f(*a, **k))
        got = call()
        assert seen, f"{name} did not run its twin under DIFFREP_BACKEND=reference"
        for a, b in zip(_outputs(got), _outputs(defaults[name])):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    x = torch.zeros(2, 3, dtype=F64)
    assert explain("bfn.continuous_flow", x, torch.full((2,), 0.5, dtype=F64), 0.02).backend == "reference"


# ============================================================================ signatures
POS_OR_KW, KW_ONLY = PARAM.POSITIONAL_OR_KEYWORD, PARAM.KEYWORD_ONLY
SIGNATURES = {
    # name: the parameters (name, default or PARAM.empty), in order, all positional-or-keyword
    "continuous_flow": [("x", PARAM.empty), ("t", PARAM.empty), ("sigma1", PARAM.empty), ("generator", None)],
    "discrete_flow": [("x", PARAM.empty), ("t", PARAM.empty), ("beta1", PARAM.empty), ("num_classes", PARAM.empty),
                      ("generator", None)],
    "continuous_update": [("mu", PARAM.empty), ("rho", PARAM.empty), ("y", PARAM.empty), ("alpha", PARAM.empty)],
    "continuous_update_inverse": [("mu", PARAM.empty), ("rho", PARAM.empty), ("y", PARAM.empty),
                                  ("alpha", PARAM.empty)],
    "discrete_update": [("theta", PARAM.empty), ("y", PARAM.empty)],
    "discrete_update_inverse": [("theta", PARAM.empty), ("y", PARAM.empty)],
    "discretised_probs": [("mu_x", PARAM.empty), ("sigma_x", PARAM.empty), ("num_bins", PARAM.empty), ("clip", True)],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature(name):
    """The issue's parameters lead, in its order, with its defaults; anything added later is
    keyword-only with a default (more may be added)."""
    fn = getattr(bfn, name)
    assert name in bfn.__all__
    params = list(inspect.signature(fn).parameters.values())
    want = SIGNATURES[name]
    assert [(p.name, p.default) for p in params[:len(want)]] == want
    assert all(p.kind == POS_OR_KW for p in params[:len(want)])
    assert all(p.kind == KW_ONLY and p.default is not PARAM.empty for p in params[len(want):])


def test_discretized_probs_is_a_deprecated_alias():
    """Issue 2 spelt it discretized_probs; issue 16 renamed it discretised_probs and kept the old name
    as a deprecated alias for one release."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from diffrep.ops.bfn import discretized_probs
    assert discretized_probs is bfn.discretised_probs
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


# ============================================================================ flows
@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-6)])
def test_continuous_flow_is_gamma_x_plus_sqrt_gamma_one_minus_gamma_noise(dtype, tol, backend):
    """mu ~ N(gamma x, gamma (1 - gamma)), gamma = 1 - sigma1^(2t): with injected noise eps the sample
    is gamma x + sqrt(gamma (1 - gamma)) eps, t per example (B,) or per element."""
    g = _gen(0)
    sigma1, ts = 0.02, [0.0, 0.25, 0.9]
    x = (torch.rand(3, 5, generator=g, dtype=F64) * 2 - 1).to(dtype)
    eps = torch.randn(3, 5, generator=g, dtype=F64).to(dtype)
    want = torch.empty(3, 5, dtype=F64)
    for b, t in enumerate(ts):
        gam = 1 - sigma1 ** (2 * t)
        for d in range(5):
            want[b, d] = gam * float(x[b, d]) + math.sqrt(gam * (1 - gam)) * float(eps[b, d])
    t_row = torch.tensor(ts, dtype=dtype)
    for t in (t_row, t_row[:, None].expand(3, 5).contiguous()):
        mu = bfn.continuous_flow(x, t, sigma1, noise=eps)
        assert mu.shape == x.shape and mu.dtype == dtype
        torch.testing.assert_close(mu.double(), want, rtol=tol, atol=tol)


def test_continuous_flow_moments_from_the_generator():
    ts = [0.1, 0.4, 0.7]
    x = torch.full((3, 40000), 0.3, dtype=F64)
    mu = bfn.continuous_flow(x, torch.tensor(ts, dtype=F64), 1e-3, _gen(5))
    for b, t in enumerate(ts):
        gam = 1 - 1e-3 ** (2 * t)
        var = gam * (1 - gam)
        assert abs(float(mu[b].mean()) - gam * 0.3) < 5 * math.sqrt(var / 40000)
        assert float(mu[b].var()) == pytest.approx(var, rel=0.05)


@pytest.mark.parametrize("dtype,tol", [(F64, 1e-12), (torch.float32, 1e-6)])
def test_discrete_flow_is_the_softmax_of_the_flow_logits(dtype, tol, backend):
    """theta = softmax(y), y = beta (K e_x - 1) + sqrt(beta K) eps, beta = beta1 t^2 (beta1 = beta(1));
    K classes in the last dimension, theta in t's float dtype."""
    g = _gen(1)
    K, beta1, ts = 4, 3.0, [0.3, 0.8]
    x = torch.randint(0, K, (2, 3), generator=g)
    eps = torch.randn(2, 3, K, generator=g, dtype=F64).to(dtype)
    want = torch.empty(2, 3, K, dtype=F64)
    for b, t in enumerate(ts):
        beta = beta1 * t * t
        for d in range(3):
            y = [beta * (K * (k == int(x[b, d])) - 1) + math.sqrt(beta * K) * float(eps[b, d, k]) for k in range(K)]
            z = sum(math.exp(v - max(y)) for v in y)
            want[b, d] = torch.tensor([math.exp(v - max(y)) / z for v in y], dtype=F64)
    t_row = torch.tensor(ts, dtype=dtype)
    for t in (t_row, t_row[:, None].expand(2, 3).contiguous()):
        theta = bfn.discrete_flow(x, t, beta1, K, noise=eps)
        assert theta.shape == (2, 3, K) and theta.dtype == dtype
        torch.testing.assert_close(theta.double(), want, rtol=tol, atol=tol)


def test_flows_are_reproducible_from_the_generator_and_for_any_thread_count():
    """Counter-based RNG keyed by a draw from a torch.Generator: one seed, one sample, for 1 and 2
    threads; the generator advances, so the next call draws new numbers."""
    x = torch.rand(16, 8192, generator=_gen(2)) * 2 - 1
    t = torch.rand(16, generator=_gen(3))
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append((bfn.continuous_flow(x, t, 1e-3, _gen(11)), bfn.discrete_flow((x > 0).long(), t, 3.0, 2, _gen(11))))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    g = _gen(11)
    first, second = bfn.continuous_flow(x, t, 1e-3, g), bfn.continuous_flow(x, t, 1e-3, g)
    assert torch.equal(first, out[0][0]) and not torch.equal(first, second)


# ============================================================================ updates and exact inverses
def test_continuous_update_and_its_inverse_by_hand(backend):
    """h: rho' = rho + alpha, mu' = (rho mu + alpha y) / rho'; h^-1: rho = rho' - alpha,
    mu = (rho' mu' - alpha y) / rho. Returns (mu, rho), alpha and rho per example or per element."""
    mu = torch.tensor([[0.5, -0.25], [1.0, 0.0]], dtype=F64)
    y = torch.tensor([[1.5, 2.0], [-1.0, 0.5]], dtype=F64)
    rho = torch.tensor([2.0, 4.0], dtype=F64)
    alpha = torch.tensor([0.5, 1.0], dtype=F64)
    new_mu, new_rho = bfn.continuous_update(mu, rho, y, alpha)
    want_mu = torch.tensor([[(2 * 0.5 + 0.5 * 1.5) / 2.5, (2 * -0.25 + 0.5 * 2.0) / 2.5],
                            [(4 * 1.0 + 1.0 * -1.0) / 5.0, (4 * 0.0 + 1.0 * 0.5) / 5.0]], dtype=F64)
    torch.testing.assert_close(new_mu, want_mu, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(torch.as_tensor(new_rho).expand(2), torch.tensor([2.5, 5.0], dtype=F64))
    # the inverse of the hand values, written out: rho = rho' - alpha, mu = (rho' mu' - alpha y) / rho
    back_mu, back_rho = bfn.continuous_update_inverse(want_mu, torch.tensor([2.5, 5.0], dtype=F64), y, alpha)
    torch.testing.assert_close(back_mu, mu, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(torch.as_tensor(back_rho).expand(2), rho)
    # rho and alpha per element give the same values as per example, broadcast
    per_element = [v[:, None].expand(2, 2).contiguous() for v in (rho, alpha, torch.tensor([2.5, 5.0], dtype=F64))]
    full_mu, full_rho = bfn.continuous_update(mu, rho, y, per_element[1])
    torch.testing.assert_close(full_mu, want_mu, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(torch.as_tensor(full_rho).expand(2, 2), per_element[2])
    full_mu, full_rho = bfn.continuous_update(mu, per_element[0], y, per_element[1])
    torch.testing.assert_close(full_mu, want_mu, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(full_rho, per_element[2])
    back_mu, back_rho = bfn.continuous_update_inverse(want_mu, per_element[2], y, per_element[1])
    torch.testing.assert_close(back_mu, mu, rtol=1e-15, atol=1e-15)
    torch.testing.assert_close(back_rho, per_element[0])


@pytest.mark.parametrize("dtype,rtol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_continuous_round_trip(dtype, rtol, backend):
    g = _gen(4)
    mu = torch.randn(8, 32, generator=g, dtype=F64).to(dtype)
    y = torch.randn(8, 32, generator=g, dtype=F64).to(dtype)
    rho = (torch.rand(8, generator=g, dtype=F64) + 0.5).to(dtype)
    alpha = (torch.rand(8, generator=g, dtype=F64) + 0.1).to(dtype)
    back_mu, back_rho = bfn.continuous_update_inverse(*bfn.continuous_update(mu, rho, y, alpha), y, alpha)
    torch.testing.assert_close(back_mu, mu, rtol=rtol, atol=rtol * float(mu.abs().max()))
    torch.testing.assert_close(back_rho, rho, rtol=rtol, atol=0)


def test_discrete_update_is_theta_e_y_normalised_and_its_inverse_round_trips(backend):
    """h: theta' proportional to theta e^y (K classes last); h^-1 recovers theta (float64 1e-12,
    float32 1e-5 relative), also with log-probabilities (log=True)."""
    g = _gen(6)
    theta = torch.softmax(torch.randn(3, 5, 6, generator=g, dtype=F64), -1)
    y = torch.randn(3, 5, 6, generator=g, dtype=F64) * 3
    new = bfn.discrete_update(theta, y)
    w = theta * torch.exp(y)
    torch.testing.assert_close(new, w / w.sum(-1, keepdim=True), rtol=1e-13, atol=1e-15)
    for dtype, rtol in ((F64, 1e-12), (torch.float32, 1e-5)):
        th, yy = theta.to(dtype), y.to(dtype)
        torch.testing.assert_close(bfn.discrete_update_inverse(bfn.discrete_update(th, yy), yy), th, rtol=rtol, atol=0)
        lt = th.log()
        back = bfn.discrete_update_inverse(bfn.discrete_update(lt, yy, log=True), yy, log=True)
        torch.testing.assert_close(back, lt, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_discrete_update_stays_finite_and_normalised_up_to_accuracy_1e4(dtype, backend):
    """A sender sample y ~ N(alpha (K e_x - 1), alpha K) at alpha = 1e4 (where theta e^y overflows)."""
    K, alpha = 16, 1e4
    g = _gen(7)
    x = torch.randint(0, K, (4, 64), generator=g)
    y = (alpha * (K * torch.nn.functional.one_hot(x, K).double() - 1)
         + math.sqrt(alpha * K) * torch.randn(4, 64, K, generator=g, dtype=F64)).to(dtype)
    theta = torch.full((4, 64, K), 1.0 / K, dtype=dtype)
    new = bfn.discrete_update(theta, y)
    assert torch.isfinite(new).all()
    torch.testing.assert_close(new.sum(-1), torch.ones(4, 64, dtype=dtype))
    assert torch.equal(new.argmax(-1), x)  # at this accuracy the update is sure of the class


# ============================================================================ discretised output distribution
def _bins_by_hand(mu, sigma, K, clip):
    edges = [-1.0 + 2.0 * j / K for j in range(K + 1)]
    cdf = [_phi((e - mu) / sigma) for e in edges]
    if clip:
        cdf[0], cdf[-1] = 0.0, 1.0
        return [cdf[k + 1] - cdf[k] for k in range(K)]
    mass = cdf[-1] - cdf[0]
    if mass < 1e-5:  # the small-mass fallback: uniform
        return [1.0 / K] * K
    return [(cdf[k + 1] - cdf[k]) / mass for k in range(K)]


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("K", [2, 5, 16])
def test_discretised_probs_by_hand(K, clip, backend):
    """K bins on [-1, 1] in the last dimension; clip=True: the edge bins take the tails; clip=False:
    renormalised by Phi(1) - Phi(-1), uniform where that mass is < 1e-5."""
    # inside [-1, 1]: mass ~1 at (0, 0.2), 1.4e-4 at (1.2, 0.055) (renormalised), 2.9e-7 at (1.3, 0.06) and 0
    # at (50, 0.01) (both below 1e-5: uniform)
    mu = torch.tensor([[0.0, 0.3, 1.2], [-0.95, 50.0, 1.3]], dtype=F64)
    sigma = torch.tensor([[0.2, 1.5, 0.055], [0.05, 0.01, 0.06]], dtype=F64)
    got = bfn.discretised_probs(mu, sigma, K, clip=clip)
    assert got.shape == (2, 3, K)
    want = torch.tensor([[_bins_by_hand(float(m), float(s), K, clip) for m, s in zip(mr, sr)]
                         for mr, sr in zip(mu, sigma)], dtype=F64)
    # atol: the reference's Phi = (1 + erf) / 2 (torch's Normal.cdf) rounds tails at 1e-16 absolute, and
    # clip=False divides by a mass down to 1e-5
    torch.testing.assert_close(got, want, rtol=1e-10, atol=2e-12)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 3, dtype=F64))
    assert torch.equal(bfn.discretised_probs(mu, sigma, K), bfn.discretised_probs(mu, sigma, K, clip=True))


def test_noise_prediction_conversion_and_its_small_t_guard():
    """x_hat = mu/gamma - sqrt((1-gamma)/gamma) eps_hat, sigma_x = sqrt((1-gamma)/gamma) e^(ln sigma_eps);
    t < 1e-6 gives x_hat = 0, sigma_x = 1 (moved to diffrep.bfn.conversions by issue 16)."""
    sigma1 = 0.02
    ts = [0.0, 5e-7, 0.3]
    mu = torch.tensor([0.2, -0.4, 0.6], dtype=F64)
    eps = torch.tensor([1.0, 0.5, -0.7], dtype=F64)
    ls = torch.tensor([0.1, -0.2, 0.3], dtype=F64)
    x_hat, sig = conversions.noise_pred_to_data_pred(eps, mu, torch.tensor(ts, dtype=F64), sigma1, ls)
    gam = 1 - sigma1 ** (2 * 0.3)
    scale = math.sqrt((1 - gam) / gam)
    torch.testing.assert_close(x_hat, torch.tensor([0.0, 0.0, 0.6 / gam + 0.7 * scale], dtype=F64))
    torch.testing.assert_close(sig, torch.tensor([1.0, 1.0, scale * math.exp(0.3)], dtype=F64))


# ============================================================================ losses
def _weight(t, sigma1):
    return -math.log(sigma1) * sigma1 ** (-2 * t)


def test_continuous_time_loss_of_continuous_data():
    """L^inf = -ln sigma1 sigma1^(-2t) (x - x_hat)^2, x_hat the clipped delta output."""
    x = torch.tensor([[0.1, -0.5], [0.9, 0.0]], dtype=F64)
    out = torch.tensor([[0.3, -1.4], [0.7, 0.2]], dtype=F64)
    ts, s1 = [0.2, 0.9], 0.02
    got = loss_terms.continuous_time_loss(out, x, torch.tensor(ts, dtype=F64), s1)
    want = [[_weight(t, s1) * (float(xv) - max(-1.0, min(1.0, float(o)))) ** 2 for xv, o in zip(xr, orow)]
            for t, xr, orow in zip(ts, x, out)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64))


def test_discrete_time_loss_of_continuous_data():
    """L^n = n alpha_i / 2 (x - x_hat)^2, alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)), i = t n + 1."""
    n, s1 = 10, 0.02
    x = torch.tensor([[0.1, -0.5], [0.9, 0.0]], dtype=F64)
    out = torch.tensor([[0.3, -0.4], [0.7, 0.2]], dtype=F64)
    ts = [0.2, 0.7]
    got = loss_terms.continuous_discrete_time_loss(out, x, torch.tensor(ts, dtype=F64), s1, n)
    want = []
    for t, xr, orow in zip(ts, x, out):
        i = t * n + 1
        a = s1 ** (-2 * i / n) * (1 - s1 ** (2 / n))
        want.append([n * a / 2 * (float(xv) - float(o)) ** 2 for xv, o in zip(xr, orow)])
    torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-12, atol=0)


def _mu_sigma_x(out_mean, out_ls, mu, t, s1, noise_pred):
    if not noise_pred:
        return out_mean, min(10.0, max(1e-3, math.exp(max(-10.0, min(10.0, out_ls)))))
    if t < 1e-6:  # the noise-prediction guard
        return 0.0, 1.0
    gam = 1 - s1 ** (2 * t)
    scale = math.sqrt((1 - gam) / gam)
    return mu / gam - scale * out_mean, min(10.0, max(1e-3, scale * math.exp(out_ls)))


@pytest.mark.parametrize("noise_pred", [True, False])
@pytest.mark.parametrize("clip", [True, False])
def test_fused_discretised_continuous_time_loss(noise_pred, clip, backend):
    """L^inf for discretised data: -ln sigma1 sigma1^(-2t) (x - sum_k p_k k_c)^2 with p the
    discretised Normal output's bins, per element (t < 1e-6: the noise-prediction guard)."""
    K, s1 = 16, 0.02
    ts = [5e-7, 0.4, 0.8]
    x = torch.tensor([[1 / 16, -5 / 16], [-1 + 1 / 16, 3 / 16], [15 / 16, -9 / 16]], dtype=F64)
    out_mean = torch.tensor([[0.3, -0.2], [0.2, -0.1], [0.5, 0.05]], dtype=F64)
    out_ls = torch.tensor([[0.1, -0.3], [-1.0, 0.2], [-2.0, -0.5]], dtype=F64)
    mu = torch.tensor([[0.0, 0.0], [-0.6, 0.1], [0.8, -0.3]], dtype=F64)
    got = bfn.discretised_continuous_time_loss(out_mean, out_ls, mu, torch.tensor(ts, dtype=F64), x, s1, K,
                                               clip=clip, noise_pred=noise_pred)
    centres = [(2 * k + 1) / K - 1 for k in range(K)]
    want = torch.empty(3, 2, dtype=F64)
    for b, t in enumerate(ts):
        for d in range(2):
            mx, sx = _mu_sigma_x(float(out_mean[b, d]), float(out_ls[b, d]), float(mu[b, d]), t, s1, noise_pred)
            x_hat = sum(p * c for p, c in zip(_bins_by_hand(mx, sx, K, clip), centres))
            want[b, d] = _weight(t, s1) * (float(x[b, d]) - x_hat) ** 2
    torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-13)


def test_discrete_time_loss_of_discretised_data_with_injected_sender_noise():
    """L^n = n E_y[ln N(y | x, 1/alpha_i) - ln sum_k p_k N(y | k_c, 1/alpha_i)], y = x + eps/sqrt(alpha_i)."""
    K, s1, n, S = 8, 0.02, 20, 3
    ts = [0.3, 0.65]
    x = torch.tensor([[-7 / 8, 1 / 8], [5 / 8, -3 / 8]], dtype=F64)
    out_mean = torch.tensor([[-0.7, 0.2], [0.5, -0.2]], dtype=F64)
    out_ls = torch.tensor([[-1.5, -1.0], [-2.0, -0.7]], dtype=F64)
    eps = torch.randn(S, 2, 2, generator=_gen(8), dtype=F64)
    got = loss_terms.discretised_discrete_time_loss(out_mean, out_ls, None, torch.tensor(ts, dtype=F64), x, s1, K,
                                                    n, n_samples=S, noise_pred=False, noise=eps)
    centres = [(2 * k + 1) / K - 1 for k in range(K)]

    def log_normal(v, m, a):
        return 0.5 * math.log(a / (2 * math.pi)) - 0.5 * a * (v - m) ** 2

    want = torch.empty(2, 2, dtype=F64)
    for b, t in enumerate(ts):
        i = t * n + 1
        a = s1 ** (-2 * i / n) * (1 - s1 ** (2 / n))
        for d in range(2):
            mx, sx = _mu_sigma_x(float(out_mean[b, d]), float(out_ls[b, d]), 0.0, t, s1, False)
            probs = _bins_by_hand(mx, sx, K, True)
            total = 0.0
            for s in range(S):
                yv = float(x[b, d]) + float(eps[s, b, d]) / math.sqrt(a)
                comps = [math.log(p) + log_normal(yv, c, a) for p, c in zip(probs, centres) if p > 0]
                top = max(comps)
                total += log_normal(yv, float(x[b, d]), a) - (top + math.log(sum(math.exp(c - top) for c in comps)))
            want[b, d] = n * total / S
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_discrete_continuous_time_loss(backend):
    """L^inf for discrete data: K beta1 t ||e_x - softmax(logits)||^2 per element."""
    K, beta1 = 3, 3.0
    logits = torch.tensor([[[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]]], dtype=F64)
    x = torch.tensor([[2, 1]])
    got = bfn.discrete_continuous_time_loss(logits, x, torch.tensor([0.6], dtype=F64), beta1)
    want = []
    for d in range(2):
        z = [math.exp(v) for v in logits[0, d].tolist()]
        p = [v / sum(z) for v in z]
        want.append(K * beta1 * 0.6 * sum(((k == int(x[0, d])) - p[k]) ** 2 for k in range(K)))
    torch.testing.assert_close(got, torch.tensor([want], dtype=F64), rtol=1e-13, atol=0)


# ============================================================================ autograd
def _differentiable_calls(dtype):
    g = _gen(9)
    mu_x = (torch.rand(2, 3, generator=g, dtype=F64) * 2 - 1).to(dtype).requires_grad_()
    sigma_x = (torch.rand(2, 3, generator=g, dtype=F64) * 0.5 + 0.1).to(dtype).requires_grad_()
    out_mean = (torch.randn(2, 3, generator=g, dtype=F64) * 0.3).to(dtype).requires_grad_()
    out_ls = (torch.randn(2, 3, generator=g, dtype=F64) * 0.3 - 1).to(dtype).requires_grad_()
    mu = (torch.rand(2, 3, generator=g, dtype=F64) - 0.5).to(dtype)
    x = ((torch.randint(0, 16, (2, 3), generator=g).to(F64) * 2 + 1) / 16 - 1).to(dtype)
    t = torch.tensor([0.3, 0.7], dtype=dtype)
    logits = torch.randn(2, 3, 4, generator=g, dtype=F64).to(dtype).requires_grad_()
    xc = torch.randint(0, 4, (2, 3), generator=g)
    return [
        ((mu_x, sigma_x), lambda a, b: bfn.discretised_probs(a, b, 16)),
        ((mu_x, sigma_x), lambda a, b: bfn.discretised_probs(a, b, 16, clip=False)),
        ((out_mean, out_ls), lambda a, b: bfn.discretised_continuous_time_loss(a, b, mu, t, x, 0.02, 16)),
        ((logits,), lambda a: bfn.discrete_continuous_time_loss(a, xc, t, 3.0)),
    ]


def test_autograd_float64_gradcheck(backend):
    for inputs, fn in _differentiable_calls(F64):
        assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_autograd_float32_matches_float64(backend):
    for (inputs32, fn32), (inputs64, fn64) in zip(_differentiable_calls(torch.float32), _differentiable_calls(F64)):
        w = torch.linspace(0.5, 1.5, fn64(*inputs64).numel(), dtype=F64)
        g32 = torch.autograd.grad((fn32(*inputs32).double().flatten() * w).sum(), inputs32)
        g64 = torch.autograd.grad((fn64(*inputs64).flatten() * w).sum(), inputs64)
        for a, b in zip(g32, g64):
            assert a.dtype == torch.float32
            torch.testing.assert_close(a.double(), b, rtol=2e-3, atol=2e-4 * float(b.abs().max()))


# ============================================================================ bad input
X = torch.zeros(3, 4)
T = torch.full((3,), 0.5)
NAN = torch.full((3, 4), float("nan"))
BAD = [
    # (call, error type, text the message must contain: the argument's name)
    (lambda: bfn.continuous_flow(X.long(), T, 0.02), TypeError, "x"),
    (lambda: bfn.continuous_flow([0.0], T, 0.02), TypeError, "x"),
    (lambda: bfn.continuous_flow(X, torch.full((4,), 0.5), 0.02), ValueError, "t must have shape"),
    (lambda: bfn.continuous_flow(X, torch.full((3,), 1.5), 0.02), ValueError, "t must lie in [0, 1]"),
    (lambda: bfn.continuous_flow(X, torch.full((3,), -0.1), 0.02), ValueError, "t must lie in [0, 1]"),
    (lambda: bfn.continuous_flow(X, torch.full((3,), float("nan")), 0.02), ValueError, "t must lie in [0, 1]"),
    (lambda: bfn.continuous_flow(NAN, T, 0.02), ValueError, "x contains NaN"),
    (lambda: bfn.continuous_flow(X, T.to("meta"), 0.02), ValueError, "t on meta"),
    (lambda: bfn.continuous_flow(X, T, 0.0), ValueError, "sigma1"),
    (lambda: bfn.discrete_flow(X.long(), T, 3.0, 1), ValueError, "num_classes must be >= 2"),
    (lambda: bfn.discrete_flow(X, T, 3.0, 2), TypeError, "x must hold integer class"),
    (lambda: bfn.discrete_flow(X.long() + 5, T, 3.0, 2), ValueError, "x holds a class outside"),
    (lambda: bfn.discrete_flow(X.long(), T, -1.0, 2), ValueError, "beta1"),
    (lambda: bfn.continuous_update(X, 1.0, torch.zeros(3, 5), 0.5), ValueError, "y has shape"),
    (lambda: bfn.continuous_update(X, 1.0, X, torch.ones(2)), ValueError, "alpha must have shape"),
    (lambda: bfn.continuous_update(X, 1.0, NAN, 0.5), ValueError, "y contains NaN"),
    (lambda: bfn.continuous_update(X, -1.0, X, 0.5), ValueError, "rho"),
    (lambda: bfn.continuous_update_inverse(X, 1.0, X, 2.0), ValueError, "rho - alpha must be > 0"),
    (lambda: bfn.discrete_update(torch.ones(3, 1), torch.zeros(3, 1)), ValueError, "number of classes) must be >= 2"),
    (lambda: bfn.discrete_update(torch.full((3, 2), 0.5), torch.zeros(3, 2, dtype=torch.int32)), TypeError, "y"),
    (lambda: bfn.discrete_update_inverse(torch.full((3, 2), 0.5), torch.zeros(3, 3)), ValueError, "y has shape"),
    (lambda: bfn.discretised_probs(X.long(), X, 4), TypeError, "mu_x"),
    (lambda: bfn.discretised_probs(X, torch.ones(3, 5), 4), ValueError, "sigma_x has shape"),
    (lambda: bfn.discretised_probs(X, torch.ones(3, 4), 1), ValueError, "num_bins must be >= 2"),
    (lambda: bfn.discretised_probs(NAN, torch.ones(3, 4), 4), ValueError, "NaN"),
    (lambda: bfn.discretised_probs(X, X, 4), ValueError, "sigma_x must be > 0"),
    # a wrong device (the meta device stands in for another device on a CPU-only machine)
    (lambda: bfn.continuous_update(X, 1.0, X.to("meta"), 0.5), ValueError, "y on meta"),
    (lambda: bfn.continuous_update_inverse(X, 2.0, X, T.to("meta")), ValueError, "alpha is on meta"),
    (lambda: bfn.discrete_flow(X.long(), T.to("meta"), 3.0, 2), ValueError, "t on meta"),
    (lambda: bfn.discrete_update(torch.full((3, 2), 0.5), torch.zeros(3, 2, device="meta")), ValueError, "y on meta"),
    (lambda: bfn.discretised_probs(X, torch.ones(3, 4, device="meta"), 4), ValueError, "sigma_x on meta"),
    (lambda: bfn.discrete_flow(X.long(), T, 3.0, 2.0), TypeError, "num_classes must be an int"),
]


@pytest.mark.parametrize("k", range(len(BAD)))
def test_bad_input_raises_a_named_error(k, backend):
    call, exc, text = BAD[k]
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value)


# ============================================================================ CUDA
@pytest.mark.cuda
@pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")
def test_public_ops_on_cuda_equal_the_cpu():
    """On a GPU each public op runs on CUDA tensors and gives the CPU's values (float64, same key)."""
    for (name, cpu), (_, gpu) in zip(_calls_of_every_op("cpu"), _calls_of_every_op("cuda")):
        for a, b in zip(_outputs(cpu()), _outputs(gpu())):
            assert b.device.type == "cuda", name
            torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=1e-12)
