// Host build of the CUDA launchers of the BFN, random, guidance and kNN families (csrc/*/..._cuda.cu, run
// through tests/ops/native/cuda_host/cuda_runtime.h), for tests/ops/test_cuda_launchers_host.py.
// Each launcher is compared with a plain serial loop over the same element bodies (bfn_math.h,
// guidance_math.h) written here from the kernels' documented indexing: item i's per-example value at
// i / row_len, the Philox normal of stream index e from block e >> 2 lane e & 3 (e = i for one value
// per item, i K + k for K), flags OR-ed over the items. The host maths is the same on both sides, so
// element-wise outputs must agree bit for bit; the row sums of the guidance kernels (a shared-memory
// tree there, a serial sum here) to rounding. What this checks is the kernels' plumbing: indexing,
// grid-stride coverage (the emulated grid is capped at 2 blocks), the Philox counter mapping of
// for_each_normal4 and NormalStream, optional arrays, flags, the reductions and their barriers.
// Prints one line per check: its name and the count of mismatching elements (or, for a row sum, its
// largest relative error).
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <cuda_runtime.h>  // the host stand-in (tests/ops/native/cuda_host): diffrep_host::launches

#include "bfn/bfn_math.h"
#include "bfn/bfn_ops.h"
#include "common/philox.h"
#include "guidance/guidance_math.h"
#include "guidance/guidance_ops.h"
#include "knn/knn_ops.h"
#include "knn_host_cases.h"
#include "random/random_ops.h"

using namespace diffrep;
using namespace diffrep::bfn;

static std::mt19937_64 rng(7);

template <typename T>
static std::vector<T> uniform(int64_t n, double lo, double hi) {
  std::uniform_real_distribution<double> U(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = T(U(rng));
  return v;
}

static std::vector<int64_t> classes(int64_t n, int64_t K) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int64_t(rng() % uint64_t(K));
  return v;
}

// stream index e of the key's normals, from its Philox block directly (no NormalStream cache)
template <typename T>
static T normal_at(PhiloxKey key, uint64_t e) {
  T v[4];
  philox_normal4<T>(key, e >> 2, v);
  return v[e & 3];
}

template <typename T>
static bool same(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0 || (a != a && b != b);
}

template <typename T>
static void report(const std::string& name, const std::vector<T>& got, const std::vector<T>& want) {
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += !same(got[i], want[i]);
  printf("%s %lld\n", name.c_str(), static_cast<long long>(bad));
}

static void report_flags(const std::string& name, int32_t got, int32_t want) {
  printf("%s.flags %d\n", name.c_str(), got == want ? 0 : 1);
}

// a row sum's largest error relative to max(1, |sum|)
template <typename T>
static void report_rel(const std::string& name, const std::vector<T>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::fmax(worst, std::fabs(double(got[i]) - want[i]) / std::fmax(1.0, std::fabs(want[i])));
  printf("%s %.3g\n", name.c_str(), worst);
}

// the per-example index of item i
static int64_t at(int64_t i, int64_t row_len, bool per_row) { return per_row ? i / row_len : i; }

// the classes or bins K of each op's cases (few for the large case, which is there for the wrap)
static std::vector<int64_t> ks(bool large, std::vector<int64_t> all) { return large ? std::vector<int64_t>{3} : all; }

template <typename T>
static void bfn_family(const char* tn, int64_t rows, int64_t row_len, bool per_row, bool inject) {
  const int64_t n = rows * row_len;
  const bool large = n > 1000;
  const std::string tag = std::string(tn) + ".n" + std::to_string(n) + (per_row ? ".row" : ".elem") +
                          (inject ? ".injected" : ".philox");
  const PhiloxKey key{rng(), rng() % 5};
  auto x = uniform<T>(n, -1, 1);
  if (inject) x[n / 2] = T(NAN);  // a flag to carry
  const auto t = uniform<T>(per_row ? rows : n, 0, 1);
  const auto noise_buf = uniform<T>(n * 16, -3, 3);
  const T* noise = inject ? noise_buf.data() : nullptr;
  const auto eps = [&](uint64_t e) { return noise ? noise[e] : normal_at<T>(key, e); };
  const T log_s1sq = T(-13.8);

  {  // continuous flow
    std::vector<T> got(n), want(n);
    int32_t fg = 0, fw = 0;
    cuda::cts_flow<T>(Launch{0, 0, &fg}, n, x.data(), t.data(), per_row, row_len, log_s1sq, noise, key.seed,
                      key.offset, got.data());
    for (int64_t i = 0; i < n; ++i)
      want[i] = cts_flow_elem(x[i], flow_coeffs(t[at(i, row_len, per_row)], log_s1sq), eps(i), fw);
    report("cts_flow." + tag, got, want);
    report_flags("cts_flow." + tag, fg, fw);
  }
  for (int64_t K : ks(large, {2, 3, 16})) {  // discrete flow
    const std::string name = "disc_flow.K" + std::to_string(K) + "." + tag;
    auto xi = classes(n, K);
    xi[0] = K;  // out of range: zeros and a flag
    std::vector<T> got(n * K), want(n * K);
    int32_t fg = 0, fw = 0;
    cuda::disc_flow<T>(Launch{0, 0, &fg}, n, xi.data(), t.data(), per_row, row_len, K, T(3.0), noise, key.seed,
                       key.offset, got.data());
    struct Eps {
      const decltype(eps)& f;
      T operator()(uint64_t e) { return f(e); }
    } src{eps};
    for (int64_t i = 0; i < n; ++i)
      disc_flow_elem(i, xi[i], t[at(i, row_len, per_row)], K, T(3.0), src, want.data(), fw);
    report(name, got, want);
    report_flags(name, fg, fw);
  }
  for (int alpha_row = 0; alpha_row < 2; ++alpha_row) {  // continuous updates
    const std::string tg = tag + (alpha_row ? ".alpha_row" : ".alpha_elem");
    const auto mu = uniform<T>(n, -1, 1), y = uniform<T>(n, -3, 3);
    const auto rho = uniform<T>(per_row ? rows : n, 2.5, 4);
    auto alpha = uniform<T>(alpha_row ? rows : n, 0.1, 2);
    if (inject) alpha.back() = T(-1);  // a bad precision: NON_POSITIVE
    for (int inverse = 0; inverse < 2; ++inverse) {
      const std::string name = std::string(inverse ? "cts_update_inverse." : "cts_update.") + tg;
      std::vector<T> got(n), want(n);
      int32_t fg = 0, fw = 0;
      cuda::cts_update<T>(Launch{0, 0, &fg}, n, mu.data(), rho.data(), per_row, alpha.data(), alpha_row, row_len,
                          y.data(), inverse, got.data());
      for (int64_t i = 0; i < n; ++i)
        want[i] = cts_update_checked(mu[i], rho[at(i, row_len, per_row)], y[i], alpha[at(i, row_len, alpha_row)],
                                     bool(inverse), fw);
      report(name, got, want);
      report_flags(name, fg, fw);
    }
    std::vector<T> got(n), want(n), got_y(n), want_y(n);
    int32_t fg = 0, fw = 0;
    cuda::cts_sender_update<T>(Launch{0, 0, &fg}, n, mu.data(), rho.data(), per_row, alpha.data(), alpha_row, row_len,
                               x.data(), noise, key.seed, key.offset, got.data(), got_y.data());
    for (int64_t i = 0; i < n; ++i)
      want[i] = cts_sender_update_elem(mu[i], rho[at(i, row_len, per_row)], x[i], alpha[at(i, row_len, alpha_row)],
                                       eps(i), want_y[i], fw);
    report("cts_sender_update." + tg, got, want);
    report("cts_sender_update.y." + tg, got_y, want_y);
    report_flags("cts_sender_update." + tg, fg, fw);
  }
  for (int64_t K : ks(large, {2, 5, 16})) {  // discrete updates
    for (int log_io = 0; log_io < 2; ++log_io) {
      const std::string tg = "K" + std::to_string(K) + (log_io ? ".log." : ".prob.") + tag;
      std::vector<T> theta(n * K);
      for (int64_t i = 0; i < n; ++i) {
        const auto l = uniform<double>(K, -4, 4);
        double s = 0;
        for (double v : l) s += std::exp(v);
        for (int64_t k = 0; k < K; ++k) theta[i * K + k] = T(log_io ? l[k] - std::log(s) : std::exp(l[k]) / s);
      }
      if (inject) theta[K] = T(log_io ? 1 : 2);  // not a distribution: a flag
      const auto y = uniform<T>(n * K, -20, 20);
      for (int inverse = 0; inverse < 2; ++inverse) {
        const std::string name = std::string(inverse ? "disc_update_inverse." : "disc_update.") + tg;
        std::vector<T> got(n * K), want(n * K);
        int32_t fg = 0, fw = 0;
        cuda::disc_update<T>(Launch{0, 0, &fg}, n, theta.data(), y.data(), K, inverse, log_io, got.data());
        for (int64_t i = 0; i < n; ++i)
          disc_update_elem(theta.data() + i * K, [&](int64_t k) { return y[i * K + k]; }, K, T(inverse ? -1 : 1),
                           bool(log_io), want.data() + i * K, fw);
        report(name, got, want);
        report_flags(name, fg, fw);
      }
      auto xi = classes(n, K);
      xi.back() = -1;
      auto alpha = uniform<T>(per_row ? rows : n, 0.1, 3);
      alpha.back() = T(0);                 // not > 0: kNonPositive from the last item(s), past the capped grid
      if (inject) alpha[0] = T(INFINITY);  // not finite: kNonPositive (and y non-finite)
      std::vector<T> got(n * K), want(n * K), got_y(n * K), want_y(n * K);
      int32_t fg = 0, fw = 0;
      cuda::disc_sender_update<T>(Launch{0, 0, &fg}, n, theta.data(), xi.data(), alpha.data(), per_row, row_len, K,
                                  log_io, noise, key.seed, key.offset, got.data(), got_y.data());
      for (int64_t i = 0; i < n; ++i) {  // y ~ N(alpha (K e_x - 1), alpha K I) (BFN Eq. 162), then the update
        const T a = alpha[at(i, row_len, per_row)];
        if (xi[i] < 0 || xi[i] >= K) fw |= kClassOutOfRange;
        if (!(a > T(0)) || a == T(INFINITY)) fw |= kNonPositive;  // the accuracy of BFN Eq. 162: finite and > 0
        for (int64_t k = 0; k < K; ++k)
          want_y[i * K + k] = a * (k == xi[i] ? T(K - 1) : T(-1)) + sqrt(a * T(K)) * eps(uint64_t(i * K + k));
        disc_update_elem(theta.data() + i * K, [&](int64_t k) { return want_y[i * K + k]; }, K, T(1), bool(log_io),
                         want.data() + i * K, fw);
      }
      report("disc_sender_update." + tg, got, want);
      report("disc_sender_update.y." + tg, got_y, want_y);
      report_flags("disc_sender_update." + tg, fg, fw);
    }
  }
  for (int64_t K : ks(large, {2, 5, 40})) {  // output distribution and losses
    for (int clip = 0; clip < 2; ++clip) {
      const std::string tg = "K" + std::to_string(K) + (clip ? ".clip." : ".noclip.") + tag;
      auto mu_x = uniform<T>(n, -1.6, 1.6);
      auto sigma_x = uniform<T>(n, 1e-3, 2);
      if (inject) sigma_x[1] = T(0);
      std::vector<T> got(n * K), want(n * K);
      int32_t fg = 0, fw = 0;
      cuda::disc_probs<T>(Launch{0, 0, &fg}, n, mu_x.data(), sigma_x.data(), K, bool(clip), got.data());
      for (int64_t i = 0; i < n; ++i) disc_probs_elem(mu_x[i], sigma_x[i], K, bool(clip), want.data() + i * K, fw);
      report("disc_probs." + tg, got, want);
      report_flags("disc_probs." + tg, fg, fw);
      const auto g = uniform<T>(n * K, -1, 1);
      std::vector<T> gm(n), gs(n), wm(n), ws(n);
      cuda::disc_probs_backward<T>(Launch{0, 0, &fg}, n, mu_x.data(), sigma_x.data(), g.data(), K, bool(clip), gm.data(),
                                   gs.data());
      for (int64_t i = 0; i < n; ++i) disc_probs_backward_f64(mu_x[i], sigma_x[i], g.data() + i * K, K, bool(clip), wm[i], ws[i]);
      report("disc_probs_backward.d_mu." + tg, gm, wm);
      report("disc_probs_backward.d_sigma." + tg, gs, ws);
      for (int noise_pred = 0; noise_pred < 2; ++noise_pred) {
        for (int want_grad = 0; want_grad < 2; ++want_grad) {
          const std::string name = "disc_cts_loss." + tg + (noise_pred ? ".eps" : ".x") + (want_grad ? ".grad" : "");
          const auto om = uniform<T>(n, -2, 2), ols = uniform<T>(n, -4, 1), mu = uniform<T>(n, -1, 1);
          auto tt = uniform<T>(per_row ? rows : n, 0, 1);
          tt[0] = T(1e-7);  // noise_pred masks it
          std::vector<T> xq(n);
          for (int64_t i = 0; i < n; ++i) xq[i] = T((std::floor((double(mu[i]) / 2 + 0.5) * K) + 0.5) / K * 2 - 1);
          if (inject) xq[2] = T(1.5);  // outside [-1, 1]: a flag
          const T mlv = noise_pred ? T(1e-4) : T(-1);
          std::vector<T> loss(n), dm(want_grad ? n : 1), ds(want_grad ? n : 1);
          std::vector<T> wl(n), wdm(want_grad ? n : 1), wds(want_grad ? n : 1);
          int32_t fg2 = 0, fw2 = 0;
          cuda::disc_cts_loss<T>(Launch{0, 0, &fg2}, n, om.data(), ols.data(), mu.data(), tt.data(), per_row, row_len,
                                 xq.data(), log_s1sq, K, bool(clip), bool(noise_pred), mlv, bool(want_grad), loss.data(),
                                 dm.data(), ds.data());
          for (int64_t i = 0; i < n; ++i) {
            const TimeConsts<T> tc = time_consts(tt[at(i, row_len, per_row)], log_s1sq, bool(noise_pred), mlv);
            wl[i] = disc_cts_loss_elem(om[i], ols[i], mu[i], tc, xq[i], K, bool(clip), bool(noise_pred), bool(want_grad),
                                       wdm.data() + (want_grad ? i : 0), wds.data() + (want_grad ? i : 0), fw2);
          }
          report(name, loss, wl);
          if (want_grad) {
            report(name + ".d_mean", dm, wdm);
            report(name + ".d_log_sigma", ds, wds);
          }
          report_flags(name, fg2, fw2);
        }
      }
      for (int want_grad = 0; want_grad < 2; ++want_grad) {
        const std::string name = "discrete_cts_loss." + tg + (want_grad ? ".grad" : "");
        const auto logits = uniform<T>(n * K, -5, 5);
        auto xi = classes(n, K);
        if (inject) xi[3] = K + 1;
        std::vector<T> loss(n), wl(n), d(want_grad ? n * K : n), wd(want_grad ? n * K : n);
        int32_t fg2 = 0, fw2 = 0;
        cuda::discrete_cts_loss<T>(Launch{0, 0, &fg2}, n, logits.data(), xi.data(), t.data(), per_row, row_len, K,
                                   T(9.0), bool(want_grad), loss.data(), d.data());
        for (int64_t i = 0; i < n; ++i)
          wl[i] = discrete_cts_loss_elem(logits.data() + i * K, xi[i], t[at(i, row_len, per_row)], K, T(9.0),
                                         bool(want_grad), T(1), want_grad ? wd.data() + i * K : nullptr, fw2);
        report(name, loss, wl);
        if (want_grad) report(name + ".d_logits", d, wd);
        report_flags(name, fg2, fw2);
      }
    }
  }
}

// The t-taking kernels flag t outside [0, 1] (NaN included) as kNonFiniteInput, as the CPU launchers do
// (Python reads nothing back for t: docs/kernels/bfn.md#host-reads-on-cuda). Clean data, one bad t at
// `bad` (the last row reaches the grid-stride loops' wrap): the flag is exactly kNonFiniteInput, and 0
// with every t in [0, 1] (the ends included).
template <typename T>
static void time_flags(const char* tn, int64_t rows, int64_t row_len, bool per_row) {
  const int64_t n = rows * row_len, K = 3;
  const auto x = uniform<T>(n, -1, 1), mu = uniform<T>(n, -1, 1), om = uniform<T>(n, -1, 1);
  const auto ols = uniform<T>(n, -2, 0), logits = uniform<T>(n * K, -2, 2);
  const auto xi = classes(n, K);
  std::vector<T> xq(n);
  for (int64_t i = 0; i < n; ++i) xq[i] = T(2 * ((i % K) + 0.5) / K - 1);  // bin centres: inside [-1, 1]
  std::vector<T> a(n), b(n), c(n * K), d(n * K);
  const double bads[] = {-1.0, 0.0, 1.0, 0.5, -1e-7, 1.0000001, double(NAN), double(INFINITY)};
  for (int which = 0; which < 8; ++which) {
    const double bad = bads[which];
    auto t = uniform<T>(per_row ? rows : n, 0, 1);
    t.back() = T(bad);
    const int32_t want = (T(bad) >= T(0) && T(bad) <= T(1)) ? 0 : int32_t(kNonFiniteInput);
    const std::string tag = std::string(tn) + ".n" + std::to_string(n) + (per_row ? ".row" : ".elem") + ".t" +
                            std::to_string(which);
    int32_t f = 0;
    cuda::cts_flow<T>(Launch{0, 0, &f}, n, x.data(), t.data(), per_row, row_len, T(-13.8), nullptr, 1, 0, a.data());
    report_flags("cts_flow.time." + tag, f, want);
    f = 0;
    cuda::disc_flow<T>(Launch{0, 0, &f}, n, xi.data(), t.data(), per_row, row_len, K, T(3.0), nullptr, 1, 0, c.data());
    report_flags("disc_flow.time." + tag, f, want);
    f = 0;
    cuda::disc_cts_loss<T>(Launch{0, 0, &f}, n, om.data(), ols.data(), mu.data(), t.data(), per_row, row_len, xq.data(),
                           T(-13.8), K, true, true, T(-1), true, a.data(), b.data(), b.data());
    report_flags("disc_cts_loss.time." + tag, f, want);
    f = 0;
    cuda::discrete_cts_loss<T>(Launch{0, 0, &f}, n, logits.data(), xi.data(), t.data(), per_row, row_len, K, T(9.0),
                               true, a.data(), d.data());
    report_flags("discrete_cts_loss.time." + tag, f, want);
  }
}

template <typename T>
static void random_family(const char* tn) {
  for (int64_t n : {1, 6, 4099}) {
    const PhiloxKey key{rng(), n == 6 ? (uint64_t(1) << 32) + 3 : 0};
    std::vector<T> got(n), want(n);
    int32_t flags = 0;
    cuda::normal_fill<T>(Launch{0, 0, &flags}, n, got.data(), key.seed, key.offset);
    for (int64_t e = 0; e < n; ++e) want[e] = normal_at<T>(key, uint64_t(e));
    report(std::string("normal_fill.") + tn + ".n" + std::to_string(n), got, want);
  }
  const int64_t before = diffrep_host::launches;
  cuda::normal_fill<T>(Launch{0, 0, nullptr}, 0, nullptr, 1, 0);  // nothing to do: no launch
  printf("normal_fill.%s.empty_launches %lld\n", tn, static_cast<long long>(diffrep_host::launches - before));
}

template <typename T>
static void guidance_family(const char* tn) {
  using namespace diffrep::guidance;
  // (S, B, D): rows wrap the capped grid (B = 5), columns the block (D = 300)
  const std::tuple<int64_t, int64_t, int64_t> shapes[] = {{3, 5, 3}, {2, 5, 300}};
  for (const auto& [S, B, D] : shapes) {
    {
      {
        const std::string tag = std::string(tn) + ".S" + std::to_string(S) + ".B" + std::to_string(B) + ".D" +
                                std::to_string(D);
        const int64_t stride = B * D;
        auto z = uniform<T>(S * stride, -2, 2);
        const auto mu = uniform<T>(stride, -1, 1), s = uniform<T>(stride, -1, 1), g = uniform<T>(B, -1, 1);
        if (B == 5 && D == 3) z[4] = T(INFINITY);  // a flag
        const T c = T(1.8378770664093453);
        std::vector<T> out(B);
        std::vector<double> want(B);
        int32_t fg = 0, fw = 0;
        cuda::log_posterior_fwd<T>(Launch{0, 0, &fg}, B, D, z.data(), mu.data(), s.data(), S, c, out.data());
        for (int64_t b = 0; b < B; ++b) {
          double acc = 0;
          for (int64_t j = 0; j < D; ++j) acc += forward_elem(z.data(), S, stride, b * D + j, mu[b * D + j], s[b * D + j], c, fw);
          want[b] = double(T(acc));
        }
        report_rel("log_posterior_fwd." + tag, out, want);
        report_flags("log_posterior_fwd." + tag, fg, fw);
        std::vector<T> dz(S * stride), dmu(stride), ds(stride), wz(S * stride), wmu(stride), ws(stride);
        cuda::log_posterior_bwd<T>(Launch{0, 0, &fg}, B, D, g.data(), z.data(), mu.data(), s.data(), S, dz.data(),
                                   dmu.data(), ds.data());
        for (int64_t i = 0; i < stride; ++i)
          backward_elem(g[i / D], z.data(), S, stride, i, mu[i], s[i], wz.data(), wmu.data(), ws.data());
        report("log_posterior_bwd.d_z." + tag, dz, wz);
        report("log_posterior_bwd.d_mu." + tag, dmu, wmu);
        report("log_posterior_bwd.d_logvar." + tag, ds, ws);
        const auto gz = uniform<T>(S * stride, -1, 1), gmu = uniform<T>(stride, -1, 1), gs = uniform<T>(stride, -1, 1);
        for (int mask : {0, 6, 7}) {  // which upstream cotangents are given (nullptr: zero)
          const Upstream<T> up{mask & 1 ? gz.data() : nullptr, mask & 2 ? gmu.data() : nullptr,
                               mask & 4 ? gs.data() : nullptr};
          std::vector<T> gbar(B);
          std::vector<double> wbar(B);
          cuda::log_posterior_bwd2<T>(Launch{0, 0, &fg}, B, D, g.data(), z.data(), mu.data(), s.data(), S, up.gz, up.gmu,
                                      up.gs, gbar.data(), dz.data(), dmu.data(), ds.data());
          for (int64_t b = 0; b < B; ++b) {
            double acc = 0;
            for (int64_t j = 0; j < D; ++j)
              acc += backward2_elem(g[b], z.data(), S, stride, b * D + j, mu[b * D + j], s[b * D + j], up, wz.data(),
                                    wmu.data(), ws.data());
            wbar[b] = double(T(acc));
          }
          const std::string tm = tag + ".up" + std::to_string(mask);
          report_rel("log_posterior_bwd2.g_bar." + tm, gbar, wbar);
          report("log_posterior_bwd2.z_bar." + tm, dz, wz);
          report("log_posterior_bwd2.mu_bar." + tm, dmu, wmu);
          report("log_posterior_bwd2.logvar_bar." + tm, ds, ws);
        }
      }
    }
  }
}

// The tiled kNN scan (knn_cuda.cu: 64 query rows per block, 64-column tiles, dimensions staged 32 at a
// time; cases: knn_host_cases.h) against a brute force written here: d2 = sum_k (q_k - c_k)^2 summed in k order
// (the kernel's zero-padded dimensions add exact zeros, so the sums agree bit for bit), the kk-th smallest
// non-NaN d2 of each row (ties with multiplicity; +inf when fewer), the count of points j with d2 <= r2_j
// (strict: <), a flag for any non-finite d2 or r2.
template <typename T>
static void knn_family(const char* tn) {
  for (const KnnCase& cs : kKnnCases) {
    const auto [m, n, d, kk, grid, with_r2, strict, nan, bad_r2] = cs;
    const auto in = knn_inputs<T>(tn, cs, uniform<T>);
    const std::string& tag = in.tag;
    const auto &q = in.q, &c = in.c, &r2 = in.r2;
    std::vector<T> d2(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T acc = T(0);
        for (int64_t k = 0; k < d; ++k) {
          const T t = q[i * d + k] - c[j * d + k];
          acc += t * t;
        }
        d2[i * n + j] = acc;
      }
    int32_t fw = 0;
    if (with_r2)
      for (int64_t j = 0; j < n; ++j)
        if (!std::isfinite(r2[j])) fw |= kNonFiniteInput;
    std::vector<T> want_kth(m);
    std::vector<int64_t> want_count(m);
    for (int64_t i = 0; i < m; ++i) {
      std::vector<T> row;
      for (int64_t j = 0; j < n; ++j) {
        const T v = d2[i * n + j];
        if (!std::isfinite(v)) fw |= kNonFiniteInput;
        if (v == v) row.push_back(v);
        if (with_r2 && (strict ? v < r2[j] : v <= r2[j])) ++want_count[i];
      }
      std::sort(row.begin(), row.end());
      want_kth[i] = kk > 0 && int64_t(row.size()) >= kk ? row[kk - 1] : T(INFINITY);
    }
    std::vector<T> kth(m, T(-7));
    std::vector<int64_t> count(m, -7);
    int32_t fg = 0;
    cuda::knn_scan<T>(Launch{0, 0, &fg}, d, m, n, q.data(), c.data(), kk, strict, with_r2 ? r2.data() : nullptr,
                      kk > 0 ? kth.data() : nullptr, with_r2 ? count.data() : nullptr);
    if (kk > 0) report("knn_scan.kth." + tag, kth, want_kth);
    if (with_r2) report("knn_scan.count." + tag, count, want_count);
    report_flags("knn_scan." + tag, fg, fw);
  }
}

int main() {
  for (bool per_row : {true, false})
    for (bool inject : {false, true}) {
      bfn_family<float>("f32", 3, 37, per_row, inject);
      bfn_family<double>("f64", 3, 37, per_row, inject);
    }
  bfn_family<float>("f32", 9, 233, true, false);  // (n + 3) / 4 > 2 blocks of 256: the grid-stride loops wrap
  for (bool per_row : {true, false}) {
    time_flags<float>("f32", 3, 5, per_row);
    time_flags<double>("f64", 3, 5, per_row);
  }
  time_flags<float>("f32", 9, 233, true);  // the bad t in a row past the capped grid's first pass
  random_family<float>("f32");
  random_family<double>("f64");
  guidance_family<float>("f32");
  guidance_family<double>("f64");
  knn_family<float>("f32");
  knn_family<double>("f64");
  return 0;
}
