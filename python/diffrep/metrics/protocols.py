"""Sampling protocols that replay disentanglement_lib's random-number order (docs/metrics.md#sampling-protocol, #factorvae-score, #betavae-score, #downstream-tasks).

A ground-truth dataset has the disentanglement_lib interface: ``num_factors``, ``factor_sizes``,
``sample_factors(n, random_state)`` and ``sample_observations_from_factors(factors,
random_state)``. A representation function maps a batch of observations to codes (N, d).

Each metric starts from a fresh ``np.random.RandomState(seed)`` (the study's
``evaluation.random_seed = 0``) and draws exactly as the reference: per batch, factors first (one
``randint`` per factor, inside the dataset), then observations.

``cache=True`` (the default) encodes each distinct factor combination once and gathers codes by
factor tuple, which is exact when the encoder is deterministic and batch-independent (eval mode)
and the dataset's observations are a function of the factors. The first observation call is
checked: if it consumes the RandomState (observations are random given the factors), caching is
switched off for that run and the result says so.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import device as _checks_device, non_negative_float, non_negative_int, positive_int
from .._progress import progress
from ..ops import metrics as ops
from ..ops._full_precision import full_precision
from . import _checks
from .results import Result, merge


def _seed(seed) -> int:
    """The RandomState seed: an int in [0, 2^32) (numpy's own errors, "Seed must be between 0 and
    2**32 - 1" or "Cannot cast scalar from dtype('float64')", name no argument; True was seed 1)."""
    seed = non_negative_int(seed, "seed")
    if seed >= 2 ** 32:
        raise ValueError(f"seed must be < 2**32 (a numpy RandomState seed), got {seed}")
    return seed


def _sizes(**counts) -> None:
    """Each sample size or batch size a positive int (0 failed inside numpy: "need at least one array")."""
    for name, v in counts.items():
        positive_int(v, name)


class _Encoder:
    """Draws observations and codes in the reference order, with the optional factor cache."""

    def __init__(self, dataset, representation_fn, cache: bool):
        for attr in ("num_factors", "sample_factors", "sample_observations_from_factors"):
            if not hasattr(dataset, attr):
                raise TypeError(f"dataset: missing {attr!r} (disentanglement_lib ground-truth interface)")
        if not callable(representation_fn):
            raise TypeError("representation_fn: must be callable")
        self.data, self.fn, self.cache = dataset, representation_fn, cache
        self.store: dict = {}
        self.checked = False
        self.float32 = False  # the representation returned float32 (or half) codes
        self.calls = 0
        self.encoded = 0

    def _rep(self, obs) -> np.ndarray:
        with full_precision():  # codes in the representation's own precision, not the caller's autocast
            r = self.fn(obs)
        r = r.detach().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r)
        if r.ndim != 2:
            raise ValueError(f"representation_fn: expected codes of shape (N, d), got {r.shape}")
        if r.shape[0] != len(obs):  # one row for a batch scored 0 with "no active code"
            raise ValueError(f"representation_fn: returned {r.shape[0]} rows of codes for {len(obs)} observations")
        self.calls += 1
        self.encoded += r.shape[0]
        self.float32 |= r.dtype in (np.float32, np.float16)
        return r.astype(np.float64)

    def codes(self, factors: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
        if self.cache and not self.checked:
            state = rs.get_state()
            obs = self.data.sample_observations_from_factors(factors, rs)
            after = rs.get_state()
            self.checked = True
            if not (np.array_equal(state[1], after[1]) and state[2] == after[2]):
                self.cache = False  # observations are random given the factors: no cache
            r = self._rep(obs)
            if self.cache:
                for row, code in zip(map(bytes, np.ascontiguousarray(factors, dtype=np.int64)), r):
                    self.store[row] = code
            return r
        if not self.cache:
            return self._rep(self.data.sample_observations_from_factors(factors, rs))
        keys = list(map(bytes, np.ascontiguousarray(factors, dtype=np.int64)))
        new = list(dict.fromkeys(k for k in keys if k not in self.store))
        if new:
            rows = np.stack([np.frombuffer(k, dtype=np.int64) for k in new]).astype(factors.dtype)
            r = self._rep(self.data.sample_observations_from_factors(rows, rs))
            for k, code in zip(new, r):
                self.store[k] = code
        return np.stack([self.store[k] for k in keys])

    def sample(self, n: int, rs) -> tuple:
        f = np.asarray(self.data.sample_factors(n, rs))
        return f, self.codes(f, rs)

    def meta(self) -> dict:
        return {"cache": self.cache, "representation_calls": self.calls, "encoded_observations": self.encoded}


def generate_batch_factor_code(encoder: _Encoder, num_points: int, rs, batch_size: int = 16):
    """disentanglement_lib ``utils.generate_batch_factor_code``: codes (N, d), factors (N, F)."""
    cs, fs = [], []
    n_batches = -(-num_points // batch_size)
    for i in progress(range(n_batches), total=n_batches, desc="encoding", unit="batch"):
        b = min(num_points - i * batch_size, batch_size)
        f, c = encoder.sample(b, rs)
        cs.append(c)
        fs.append(f)
    return np.vstack(cs), np.vstack(fs)


def factor_vae_score(dataset, representation_fn, seed: int = 0, batch_size: int = 64, num_train: int = 10000,
                     num_eval: int = 5000, num_variance_estimate: int = 10000, threshold: float = 0.05,
                     mode: str = "robust", cache: bool = True, device=None) -> Result:
    """FactorVAE score (disentanglement_lib ``factor_vae.compute_factor_vae``, study gin values).

    Order: variance sample (factors then observations, one call of ``num_variance_estimate``),
    g = var(ddof=1); active = sqrt(g) >= threshold; then per vote k = randint(F), factors for the
    batch with column k overwritten by the first row's value, observations; d* = argmin over active
    codes of l_d / g_d; V[k, d*] += 1. Classifier = argmax_k V[k, d] (lowest factor on ties);
    accuracy = sum_d V[c(d), d] / sum V, on the train votes then on eval votes (same RandomState).

    ``mode="parity"``: the reference exactly (the compressed-index quirk, NaN ratios win the argmin
    as in NumPy, ``num_active_dims = d``), keys ``train_accuracy``/``eval_accuracy`` added.
    ``mode="robust"``: codes with zero or non-finite global variance are excluded even at threshold
    0 (flagged), ``num_active_dims`` is the true count; with no active code both scores are 0 and
    flagged. Votes are accumulated by :func:`diffrep.ops.metrics.factor_vae_votes` (``device``
    picks where).
    """
    _checks.mode(mode)
    seed = _seed(seed)
    _sizes(batch_size=batch_size, num_train=num_train, num_eval=num_eval, num_variance_estimate=num_variance_estimate)
    threshold = non_negative_float(threshold, "threshold")
    if device is not None:  # before the encoding, not a torch error after it
        device = _checks_device(device, "device")
    enc = _Encoder(dataset, representation_fn, cache)
    rs = np.random.RandomState(seed)
    nf = int(dataset.num_factors)
    _, var_codes = enc.sample(num_variance_estimate, rs)
    g = np.var(var_codes, axis=0, ddof=1)
    d = g.shape[0]
    flags = []
    with np.errstate(invalid="ignore"):
        active = np.sqrt(g) >= threshold
    if mode == "robust":
        bad = ~np.isfinite(g) | (g <= 0)
        if (active & bad).any():
            flags.append(f"codes {np.nonzero(active & bad)[0].tolist()} have zero/non-finite variance: excluded")
        active &= ~bad
    meta = dict(seed=seed, batch_size=batch_size, num_train=num_train, num_eval=num_eval,
                num_variance_estimate=num_variance_estimate, threshold=threshold)
    if not active.any():
        flags.append("no active code: scores 0")
        sc = {"factor_vae_train": 0.0, "factor_vae_eval": 0.0, "num_active_dims": 0}
        if mode == "parity":
            sc.update(train_accuracy=0.0, eval_accuracy=0.0)
        return Result(sc, "factor_vae", f"disentanglement_lib/{mode}", **meta, **enc.meta(), flags=flags)

    def votes(n):
        ks, batches = [], []
        for _ in progress(range(n), total=n, desc="factor_vae votes", unit="vote"):
            k = rs.randint(nf)
            f = np.asarray(dataset.sample_factors(batch_size, rs))
            f[:, k] = f[0, k]
            batches.append(enc.codes(f, rs))
            ks.append(k)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        v, _ = ops.factor_vae_votes(torch.from_numpy(np.stack(batches)).to(dev), torch.tensor(ks, device=dev),
                                    torch.from_numpy(g).to(dev), torch.from_numpy(active).to(dev), nf,
                                    compressed_index=(mode == "parity"))
        return v.cpu().numpy()

    train_v = votes(num_train)
    classifier = np.argmax(train_v, axis=0)
    cols = np.arange(train_v.shape[1])
    train_acc = float(train_v[classifier, cols].sum() / train_v.sum())
    eval_v = votes(num_eval)
    eval_acc = float(eval_v[classifier, cols].sum() / eval_v.sum())
    sc = {"factor_vae_train": train_acc, "factor_vae_eval": eval_acc,
          "num_active_dims": int(d if mode == "parity" else active.sum())}
    if mode == "parity":
        sc.update(train_accuracy=train_acc, eval_accuracy=eval_acc)
    return Result(sc, "factor_vae", f"disentanglement_lib/{mode}", **meta, **enc.meta(),
                  train_votes=train_v.tolist(), eval_votes=eval_v.tolist(), flags=flags)


def beta_vae_score(dataset, representation_fn, seed: int = 0, batch_size: int = 64, num_train: int = 10000,
                   num_eval: int = 5000, solver: str = "lbfgs", mode: str = "robust", cache: bool = True) -> Result:
    """BetaVAE score (disentanglement_lib ``beta_vae.compute_beta_vae_sklearn``).

    Per point: k = randint(F); factors1, factors2 (each ``batch_size``); factors2[:, k] =
    factors1[:, k]; observations 1 then 2; feature = mean |r(x1) - r(x2)|, label k. The classifier
    is fitted on the train points, then the eval points are drawn from the same RandomState.
    ``solver``: ``"lbfgs"`` (``LogisticRegression()`` of sklearn >= 0.22, which ignores the
    random_state) or ``"liblinear-ovr"`` (the 2019 study's liblinear one-vs-rest; liblinear draws
    one ``randint`` from the shared RandomState before the eval points, which is replayed).
    Robust mode records convergence warnings; parity adds ``train_accuracy``/``eval_accuracy``.
    """
    import warnings

    from .modularity import logistic_regression

    _checks.mode(mode)
    seed = _seed(seed)
    _sizes(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    enc = _Encoder(dataset, representation_fn, cache)
    rs = np.random.RandomState(seed)
    nf = int(dataset.num_factors)

    def points(n):
        xs, ys = [], []
        for _ in progress(range(n), total=n, desc="beta_vae points", unit="point"):
            k = rs.randint(nf)
            f1 = np.asarray(dataset.sample_factors(batch_size, rs))
            f2 = np.asarray(dataset.sample_factors(batch_size, rs))
            f2[:, k] = f1[:, k]
            r1 = enc.codes(f1, rs)
            r2 = enc.codes(f2, rs)
            xs.append(np.mean(np.abs(r1 - r2), axis=0))
            ys.append(k)
        return np.array(xs), np.array(ys)

    xtr, ytr = points(num_train)
    flags = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model = logistic_regression(solver, random_state=0 if solver == "liblinear-ovr" else rs).fit(xtr, ytr)
    if any("converge" in str(m.message).lower() for m in w):
        flags.append("classifier did not converge")
    if solver == "liblinear-ovr":
        rs.randint(np.iinfo("i").max)  # the seed liblinear drew from the shared RandomState
    train_acc = float(np.mean(model.predict(xtr) == ytr))
    xev, yev = points(num_eval)
    eval_acc = float(model.score(xev, yev))
    sc = {"beta_vae_train": train_acc, "beta_vae_eval": eval_acc}
    if mode == "parity":
        sc.update(train_accuracy=train_acc, eval_accuracy=eval_acc)
    return Result(sc, "beta_vae", f"disentanglement_lib/{solver}/{mode}", seed=seed, batch_size=batch_size,
                  num_train=num_train, num_eval=num_eval, **enc.meta(), flags=flags)


def downstream_task_score(dataset, representation_fn, seed: int = 0, sizes=(10, 100, 1000, 10000),
                          num_test: int = 5000, batch_size: int = 16, predictor: str = "fast",
                          cache: bool = True, gbt_seed=None) -> Result:
    """disentanglement_lib ``downstream_task.compute_downstream_task``: for EACH size a fresh train
    set and a fresh test set from the same RandomState, one model per factor; plus the statistical
    efficiency ratios Acc100/Acc and Acc1000/Acc (Acc = largest size)."""
    from .downstream import check_sizes, efficiency, size_scores

    sizes = check_sizes(sizes)
    seed = _seed(seed)
    _sizes(num_test=num_test, batch_size=batch_size)
    enc = _Encoder(dataset, representation_fn, cache)
    rs = np.random.RandomState(seed)
    scores, flags = {}, []
    for s in sizes:
        ctr, ftr = generate_batch_factor_code(enc, s, rs, batch_size)
        cte, fte = generate_batch_factor_code(enc, num_test, rs, batch_size)
        scores.update(size_scores(torch.from_numpy(ctr), torch.from_numpy(ftr), torch.from_numpy(cte),
                                  torch.from_numpy(fte), s, predictor, gbt_seed, 2, flags))
    scores.update(efficiency(scores, tuple(sizes)))
    return Result(scores, "downstream", f"disentanglement_lib/{predictor}", seed=seed, sizes=list(sizes),
                  num_test=num_test, batch_size=batch_size, **enc.meta(), flags=flags)


ALL = ("mig", "dci", "sap", "modularity_explicitness", "infomec", "factor_vae", "beta_vae", "downstream")
# scored against binary factors (attributes): asked for by name, on datasets whose factors are all binary
ATTRIBUTE_METRICS = ("tad", "latent_auroc")


def evaluate(dataset, representation_fn, metrics=ALL, mode: str = "robust", seed: int = 0,
             num_train: int = 10000, num_test: int = 5000, estimator: str = "fast", cache: bool = True,
             factor_vae_kwargs=None, beta_vae_kwargs=None, downstream_kwargs=None) -> Result:
    """The suite on a ground-truth dataset: each metric gets a fresh RandomState(seed) and the study's
    sample sizes (``num_train`` / ``num_test``, batch 16 for the array metrics: MIG uses
    ``num_train`` points; DCI/SAP/modularity sample train then test). InfoMEC (not in
    disentanglement_lib) uses ``num_train`` points drawn the same way. ``"tad"`` (its default
    InfoDiffusion variant) and ``"latent_auroc"`` are not in the default list: they score binary
    attributes, so they run only when asked for and the sampled factors are all 0/1 (the factors are
    then the attributes; ``num_train`` points drawn as MIG's); otherwise they are a ValueError. On
    arrays, :func:`diffrep.metrics.tad` / ``latent_auroc`` take any attributes.
    """
    from .dci import dci as _dci
    from .infomec import infomec as _infomec
    from .mig import mig as _mig
    from .modularity import modularity_explicitness as _modexp
    from .sap import sap as _sap
    from .auroc import latent_auroc as _latent_auroc
    from .tad import tad as _tad

    if not isinstance(metrics, (str, list, tuple)):
        raise TypeError(f"metrics must be a metric name or a sequence of names, got {type(metrics).__name__}")
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)  # "mig" was read as m, i, g
    seed = _seed(seed)
    _sizes(num_train=num_train, num_test=num_test)
    unknown = [m for m in metrics if m not in ALL + ATTRIBUTE_METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown {unknown}; known: {list(ALL + ATTRIBUTE_METRICS)}")
    enc = _Encoder(dataset, representation_fn, cache)
    sizes = getattr(dataset, "factor_sizes", None)
    binary = [m for m in metrics if m in ATTRIBUTE_METRICS]
    if binary and sizes is not None and max(sizes) > 2:  # before any encoding (datasets without
        # factor_sizes are checked on the sampled factors below)
        raise ValueError(f"metrics: {binary} score binary attributes, but the dataset's factor sizes are "
                         f"{list(sizes)}; compute them on arrays with diffrep.metrics.tad / latent_auroc")
    results = []

    def train_test():
        rs = np.random.RandomState(seed)
        ctr, ftr = generate_batch_factor_code(enc, num_train, rs)
        cte, fte = generate_batch_factor_code(enc, num_test, rs)
        return ctr, ftr, cte, fte

    def as_returned(c):
        # the codes are float64 copies; float32 codes go back as float32 where the reference computes
        # in the codes' dtype (np.histogram edges, InfoMEC's StandardScaler; exact: the values are float32)
        return c.astype(np.float32) if enc.float32 else c

    for m in progress(metrics, total=len(metrics), desc="metrics", unit="metric", leave=True):
        if m == "mig":
            c, f = generate_batch_factor_code(enc, num_train, np.random.RandomState(seed))
            results.append(_mig(as_returned(c), f, mode=mode))
        elif m == "infomec":
            c, f = generate_batch_factor_code(enc, num_train, np.random.RandomState(seed))
            results.append(_infomec(as_returned(c), f, mode=mode))
        elif m in ATTRIBUTE_METRICS:
            c, f = generate_batch_factor_code(enc, num_train, np.random.RandomState(seed))
            if not np.isin(f, (0, 1)).all():
                raise ValueError(f"metrics: {m} scores binary attributes, but the dataset's factors take values "
                                 f"up to {int(f.max())}; compute it on arrays with diffrep.metrics.{m}")
            results.append((_tad if m == "tad" else _latent_auroc)(as_returned(c), f, mode=mode))
        elif m == "dci":
            results.append(_dci(*train_test(), estimator=estimator, mode=mode))
        elif m == "sap":
            results.append(_sap(*train_test(), mode=mode))
        elif m == "modularity_explicitness":
            ctr, ftr, cte, fte = train_test()
            results.append(_modexp(as_returned(ctr), ftr, as_returned(cte), fte, mode=mode))
        elif m == "factor_vae":
            results.append(factor_vae_score(dataset, representation_fn, seed=seed, mode=mode, cache=cache,
                                            **(factor_vae_kwargs or {})))
        elif m == "beta_vae":
            results.append(beta_vae_score(dataset, representation_fn, seed=seed, mode=mode, cache=cache,
                                          **(beta_vae_kwargs or {})))
        elif m == "downstream":
            results.append(downstream_task_score(dataset, representation_fn, seed=seed, cache=cache,
                                                 predictor=estimator, **(downstream_kwargs or {})))
    return merge(results, seed=seed, num_train=num_train, num_test=num_test, mode=mode, **enc.meta())
