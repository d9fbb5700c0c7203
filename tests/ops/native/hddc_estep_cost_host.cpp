// Host build of the HDDC E-step cost as the CUDA kernel instantiates it (csrc/hddc/hddc_cuda.cu:
// estep_cost<T, 1, 1, DP> for one point, the deviation in a DP-padded register array, d_k clamped to
// the D rows of Qt) against the CPU kernel's instantiation (csrc/hddc/hddc_cpu.cpp tile_cost:
// estep_cost<T, 16, R, 64> over a tile of 16 points, R = 6 rows at a time in float, 3 in double),
// for tests/ops/test_hddc_estep_cost_host.py. Random d in [1, 64] (every padded DP), D, d_k in
// [0, D], the subspace form and the triangular one (rows zero beyond their index, whose skipped
// columns differ between the two instantiations).
// Prints: points whose float / double costs differ between the two in any bit; the double and the
// float costs' largest error against the cost form in long double, relative to the sum of the
// magnitudes of its terms; cases run; triangular cases.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "hddc/hddc_math.h"

using namespace diffrep::hddc;

constexpr int kP = 16;

struct Case {
  int64_t d, D, dk;
  bool tri;
  std::vector<long double> q, ia, e;  // q (D, d), ia (D,), e (kP, d)
  long double ib, cst;
};

// -2 log(pi N) in the cost form, in long double: the value and the sum of its terms' magnitudes.
static void exact_cost(const Case& c, int p, long double& value, long double& scale) {
  long double ee = 0;
  for (int64_t i = 0; i < c.d; ++i) ee += c.e[p * c.d + i] * c.e[p * c.d + i];
  value = ee * c.ib + c.cst;
  scale = std::fabs(ee * c.ib) + std::fabs(c.cst);
  for (int64_t j = 0; j < c.dk; ++j) {
    long double u = 0;
    for (int64_t i = 0; i < c.d; ++i) u += c.q[j * c.d + i] * c.e[p * c.d + i];
    value += (c.ia[j] - c.ib) * u * u;
    scale += std::fabs((c.ia[j] - c.ib) * u * u);
  }
}

// cost[p] of the CUDA form: one point at a time, e[DP] zero-padded, d_k clamped to D.
template <typename T, int DP>
void cuda_form(const Case& c, const std::vector<T>& q, const std::vector<T>& ia, const std::vector<T>& e, const T* ee,
               T* cost) {
  for (int p = 0; p < kP; ++p) {
    T ep[DP];
    for (int j = 0; j < DP; ++j) ep[j] = j < c.d ? e[p * c.d + j] : T(0);
    const int64_t dk = c.dk < c.D ? c.dk : c.D;
    estep_cost<T, 1, 1, DP>(q.data(), ia.data(), c.d, dk, c.tri, T(c.ib), T(c.cst), &ee[p],
                            [&ep](int j, int) { return ep[j]; }, &cost[p]);
  }
}

template <typename T>
void run(const Case& c, long& mismatches, long double& max_err) {
  std::vector<T> q(c.q.begin(), c.q.end()), ia(c.ia.begin(), c.ia.end()), e(c.e.begin(), c.e.end());
  // the CPU kernel's tile: deviations transposed et[i][p], |e|^2 summed over i in order
  std::vector<T> et(kMaxDim * kP, T(0));
  T ee[kP] = {};
  for (int64_t i = 0; i < c.d; ++i)
    for (int p = 0; p < kP; ++p) {
      et[i * kP + p] = e[p * c.d + i];
      ee[p] += e[p * c.d + i] * e[p * c.d + i];
    }
  constexpr int R = sizeof(T) == 4 ? 6 : 3;
  T cpu[kP], gpu[kP];
  estep_cost<T, kP, R, kMaxDim>(q.data(), ia.data(), c.d, c.dk, c.tri, T(c.ib), T(c.cst), ee,
                                [&et](int i, int p) { return et[i * kP + p]; }, cpu);
  if (c.d <= 8)
    cuda_form<T, 8>(c, q, ia, e, ee, gpu);
  else if (c.d <= 16)
    cuda_form<T, 16>(c, q, ia, e, ee, gpu);
  else if (c.d <= 32)
    cuda_form<T, 32>(c, q, ia, e, ee, gpu);
  else
    cuda_form<T, 64>(c, q, ia, e, ee, gpu);
  for (int p = 0; p < kP; ++p) {
    mismatches += !(cpu[p] == gpu[p]);
    long double value, scale;
    exact_cost(c, p, value, scale);
    max_err = std::max(max_err, std::fabs((long double)gpu[p] - value) / scale);
  }
}

int main() {
  std::mt19937 rng(11);
  std::normal_distribution<double> N01;
  std::uniform_real_distribution<double> U01(0.0, 1.0);
  long mis_f = 0, mis_d = 0, cases = 0, tri_cases = 0;
  long double err_f = 0, err_d = 0;
  for (int it = 0; it < 600; ++it) {
    Case c;
    c.d = 1 + int64_t(rng() % 64);
    c.tri = rng() % 3 == 0;
    c.D = c.tri ? c.d : 1 + int64_t(rng() % c.d);
    c.dk = int64_t(rng() % (c.D + 1));
    c.q.assign(c.D * c.d, 0);
    for (int64_t j = 0; j < c.D; ++j)
      for (int64_t i = 0; i < c.d; ++i)
        if (!c.tri || i <= j) c.q[j * c.d + i] = N01(rng);
    c.ia.resize(c.D);
    for (auto& v : c.ia) v = 0.05 + 5 * U01(rng);
    c.ib = c.tri ? 0.0 : 0.05 + 5 * U01(rng);
    c.cst = 10 * N01(rng);
    const double spread = std::pow(10.0, 2 * U01(rng) - 1);
    c.e.resize(kP * c.d);
    for (auto& v : c.e) v = spread * N01(rng);
    run<double>(c, mis_d, err_d);
    // float: round the inputs to float first so that the exact cost sees what the kernels see
    Case cf = c;
    for (auto* vec : {&cf.q, &cf.ia, &cf.e})
      for (auto& v : *vec) v = (long double)(float)v;
    cf.ib = (float)cf.ib;
    cf.cst = (float)cf.cst;
    run<float>(cf, mis_f, err_f);
    ++cases;
    tri_cases += c.tri;
  }
  std::printf("%ld %ld %.3Le %.3Le %ld %ld\n", mis_f, mis_d, err_d, err_f, cases, tri_cases);
}
