"""prdc of float32 real and float64 fake features: both sets are promoted to float64 before any
distance or ball radius is taken. Hand-built boundary case (k = 1, d = 1), e = 2^-23: real points
0 and -(1 + e) (exact in float32), fake points 1 + e and 50. The ball of the real point 0 has
r^2 = (1 + e)^2 = 1 + 2e + e^2, exact in float64 but 1 + 2e in float32; the fake point 1 + e lies
at squared distance exactly (1 + e)^2 from 0, so it is inside (membership is <=) only when the
radius is taken in float64: precision 1/2. Written for the mutation audit of 2026-12-07
(benches/results/mutation_contract_audit_2026-12-07.md)."""

import torch

from diffrep.metrics.generation import prdc

E = 2.0 ** -23


def test_mixed_float32_and_float64_features_are_compared_in_float64():
    real = torch.tensor([[0.0], [-(1 + E)]], dtype=torch.float32)
    fake = torch.tensor([[1 + E], [50.0]], dtype=torch.float64)
    assert float(torch.tensor(1 + E, dtype=torch.float32) ** 2) == 1 + 2 * E  # the float32 radius is smaller
    want = prdc(real.double(), fake, k=1)
    assert want["precision"] == 0.5 and want["density"] == 0.5  # 1 + e is inside the ball of 0 only
    assert prdc(real, fake, k=1) == want
    assert prdc(fake, real, k=1) == prdc(fake, real.double(), k=1)
