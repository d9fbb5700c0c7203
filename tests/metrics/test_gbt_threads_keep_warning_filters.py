"""The fast gradient-boosted trees (diffrep.metrics.gbt) run in threads: ``dci.fit_factors`` fits the factors
in a thread pool. Each fit silences torch's "sparse CSR support is in beta" UserWarning inside
``warnings.catch_warnings``, which swaps the process-wide filter list on entry and back on exit; two threads
inside it at once restored each other's list and left ``ignore UserWarning`` in force for the rest of the
process (8 threads: every time), so every later UserWarning of the user's program (or the next test) was
silent. The filters after concurrent fits are the filters before them."""

import threading
import warnings

import torch

from diffrep.metrics import gbt


def test_concurrent_fits_leave_the_warning_filters_as_they_were():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    serial = gbt.fit_predict(x, y, [x], n_estimators=1)
    before = list(warnings.filters)
    results, errors = [], []

    def work():
        try:
            for _ in range(25):
                results.append(gbt.fit_predict(x, y, [x], n_estimators=1))
        except Exception as exc:  # an exception in a thread would otherwise only be printed
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert warnings.filters == before
    # and the fits in threads are the serial fit (the lock changes nothing but the order)
    assert len(results) == 200
    for r in results:
        torch.testing.assert_close(r.importances, serial.importances, rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(r.predictions, serial.predictions))
    # a UserWarning after them is shown, not silenced
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn("after the fits", UserWarning)
    assert [str(w.message) for w in seen] == ["after the fits"]
