// OpenMP CPU kernels of the BFN family. Element maths lives in bfn_math.h (shared with CUDA);
// this file only loops. Table: bfn_ops.h; checks and bindings: bfn_bindings.h.
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "bfn/bfn_ops.h"
#include "bfn/bfn_math.h"
#include "bfn/bfn_cpu_items.h"
#include "bfn/bfn_cpu_philox.h"
#include "common/isa.h"
#include "common/philox.h"

namespace diffrep {
namespace cpu {

using namespace bfn;
namespace {
constexpr int64_t kParallelMin = 1 << 14;  // below this, a parallel region costs more than it saves
constexpr int64_t kTile = 1024;             // work per tile (elements x classes), and normals per batch


// The BFN loops are compute-bound (exp, erf, log per element): where the CPU has AVX-512
// (x86-64-v4), run them through a copy compiled for it with 512-bit vectors (GCC prefers 256-bit
// vectors for v4 unless told; 2x on exp/erf loops), else common/isa.h's choice (AVX2 or the
// baseline). Like the v3 copy, results may differ from other machines' in the last bits (the
// order of the vectorised sums), never with the thread count. docs/kernels/bfn.md#performance.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
template <typename F>
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512"), flatten)) auto call_v4(F& f) -> decltype(f()) {
  return f();
}

inline bool cpu_has_v4() {
  static const bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512cd") && cpu_isa_cap() >= 4;
  return v4;
}

template <typename F>
inline auto call_bfn_isa(F&& f) -> decltype(f()) {
  return cpu_has_v4() ? call_v4(f) : call_best_isa(f);
}
#else
template <typename F>
inline auto call_bfn_isa(F&& f) -> decltype(f()) {
  return call_best_isa(f);
}
#endif

// Runs body(i0, i1) -> error flags over tiles of items [i0, i1) in parallel (each item costing
// `width` units of work, e.g. K classes; a tile's item count a multiple of `group`) and returns the
// OR of the flags.
template <typename Body>
int32_t parallel_tiles(int64_t n, int64_t width, Body&& body, int64_t group = 1) {
  const int64_t per_tile = ((width >= kTile ? 1 : kTile / width) + group - 1) / group * group;
  const int64_t tiles = (n + per_tile - 1) / per_tile;
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * width >= kParallelMin)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t i0 = tile * per_tile, i1 = i0 + per_tile < n ? i0 + per_tile : n;
    flags |= call_bfn_isa([&] { return body(i0, i1); });
  }
  return flags;
}

// As parallel_tiles, each item drawing K normals: body(i0, i1, eps) gets the tile's noise
// (injected, or Philox normals generated in one vectorised batch), item i's k-th at
// eps[(i - i0) * K + k].
template <typename T, typename Body>
int32_t tiled_with_noise(int64_t n, int64_t K, const T* noise, PhiloxKey key, Body&& body, int64_t group = 1) {
  return parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    if (noise) return body(i0, i1, noise + i0 * K);
    thread_local std::vector<T> buf;
    buf.resize((i1 - i0) * K);
#ifdef DIFFREP_HAVE_PHILOX_V4
    if (cpu_has_v4()) {
      v4::philox_normals<T>(key, static_cast<uint64_t>(i0 * K), (i1 - i0) * K, buf.data());
      return body(i0, i1, static_cast<const T*>(buf.data()));
    }
#endif
    philox_normals_body<T>(key, static_cast<uint64_t>(i0 * K), (i1 - i0) * K, buf.data());
    return body(i0, i1, static_cast<const T*>(buf.data()));
  }, group);
}

// A tile's noise addressed by global stream index (what the element bodies ask for).
template <typename T>
struct TileNoise {
  const T* eps;
  int64_t first;
  T operator()(uint64_t e) const { return eps[static_cast<int64_t>(e) - first]; }
};

// Calls f(s, e, row) for the pieces of [i0, i1) that lie in one row of row_len elements, so
// per-example values are read once per piece instead of dividing i by row_len per element.
template <typename F>
inline void for_row_segments(int64_t i0, int64_t i1, int64_t row_len, F&& f) {
  int64_t row = i0 / row_len;
  for (int64_t s = i0; s < i1; ++row) {
    const int64_t e = (row + 1) * row_len < i1 ? (row + 1) * row_len : i1;
    f(s, e, row);
    s = e;
  }
}

template <typename T>
inline T at(const T* p, bool per_row, int64_t row, int64_t i) {
  return per_row ? p[row] : p[i];
}

using items::finite_bit;


// t in [0, 1] (false for NaN) for every time value, as kNonFiniteInput: the CPU path's check,
// which Python then runs again for the message (docs/kernels/bfn.md#performance). One vectorised
// pass over B (or n) values instead of four tensor ops in Python.
template <typename T>
int32_t time_bad(const T* t, bool per_row, int64_t row_len, int64_t n) {
  const int64_t m = per_row ? n / row_len : n;
  const T* __restrict tp = t;
  int32_t bad = 0;
#pragma omp simd reduction(| : bad)
  for (int64_t i = 0; i < m; ++i) bad |= int32_t(!(tp[i] >= T(0))) | int32_t(!(tp[i] <= T(1)));
  return bad ? int32_t(kNonFiniteInput) : 0;
}

}  // namespace

DIFFREP_LAUNCHER(cts_flow) {
  *l.flags |= time_bad(t, t_per_row, row_len, n);
  *l.flags |= tiled_with_noise<T>(n, 1, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (t_per_row) {
        const FlowCoeffs<T> c = flow_coeffs(t[row], log_s1sq);
        const T* __restrict xp = x;
        const T* __restrict ep = eps - i0;
        T* __restrict op = out;
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          const T v = xp[i];
          bad |= finite_bit(v);
          op[i] = c.gamma * v + c.sd * ep[i];
        }
        if (bad) flags |= kNonFiniteInput;
      } else {
        for (int64_t i = s; i < e; ++i) out[i] = cts_flow_elem(x[i], flow_coeffs(t[i], log_s1sq), eps[i - i0], flags);
      }
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(disc_flow) {
  *l.flags |= time_bad(t, t_per_row, row_len, n);
  *l.flags |= tiled_with_noise<T>(n, K, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (K == 2) {  // vectorise over items
        int32_t f = 0;
        const int64_t* __restrict xp = x;
        const T* __restrict ep = eps - 2 * i0;
        const T* __restrict tp = t;
        T* __restrict op = out;
        const T sb = sqrt_beta1;
        if (t_per_row) {
          const T tr = tp[row];
#pragma omp simd reduction(| : f)
          for (int64_t i = s; i < e; ++i) f |= items::disc_flow2(xp[i], tr, sb, ep[2 * i], ep[2 * i + 1], op + 2 * i);
        } else {
#pragma omp simd reduction(| : f)
          for (int64_t i = s; i < e; ++i) f |= items::disc_flow2(xp[i], tp[i], sb, ep[2 * i], ep[2 * i + 1], op + 2 * i);
        }
        flags |= f;
        return;
      }
      for (int64_t i = s; i < e; ++i)
        items::disc_flow_item_shifted(x[i], t_per_row ? t[row] : t[i], K, sqrt_beta1, eps + (i - i0) * K, out + i * K,
                                      flags);
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(cts_update) {
  *l.flags |= parallel_tiles(n, 1, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (alpha_per_row && rho_per_row) {  // the sampler's case: a vectorisable loop
        const T a = alpha[row], r = rho[row], r_new = inverse ? r - a : r + a, sa = inverse ? -a : a;
        flags |= precision_bad(r, a, r_new, false);
        // the captured pointers as restrict locals: read through the lambda's references, GCC
        // kept this loop scalar for float (docs/kernels/bfn.md#performance)
        const T* __restrict mp = mu;
        const T* __restrict yp = y;
        T* __restrict op = out;
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          const T m = mp[i], v = yp[i];
          bad |= finite_bit(m) | finite_bit(v);
          op[i] = (r * m + sa * v) / r_new;
        }
        if (bad) flags |= kNonFiniteInput;
        return;
      }
      for (int64_t i = s; i < e; ++i)
        out[i] = cts_update_checked(mu[i], at(rho, rho_per_row, row, i), y[i], at(alpha, alpha_per_row, row, i),
                                    inverse, flags);
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(cts_sender_update) {
  *l.flags |= tiled_with_noise<T>(n, 1, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (alpha_per_row && rho_per_row) {  // the sampler's case: a vectorisable loop
        const T a = alpha[row], r = rho[row], sa = sqrt(a), r_new = r + a;
        flags |= precision_bad(r, a, r_new, true);
        const T* __restrict xp = x;
        const T* __restrict mp = mu;
        const T* __restrict ep = eps - i0;
        T* __restrict op = out;
        T* __restrict yo = out_y;
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          const T xv = xp[i], m = mp[i];
          bad |= finite_bit(xv) | finite_bit(m);
          // eps / sqrt(alpha), the element body's and the twin's expression: eps * (1 / sqrt(alpha))
          // rounds twice, and y moved by an ulp from CUDA's (tests/ops/test_cuda_vs_cpu_launchers_host.py)
          const T y = xv + ep[i] / sa;
          yo[i] = y;
          op[i] = (r * m + a * y) / r_new;
        }
        if (bad) flags |= kNonFiniteInput;
        return;
      }
      for (int64_t i = s; i < e; ++i)
        out[i] = cts_sender_update_elem(mu[i], at(rho, rho_per_row, row, i), x[i], at(alpha, alpha_per_row, row, i),
                                        eps[i - i0], out_y[i], flags);
    });
    return flags;
  });
}

// K = 2 items of [i0, i1) vectorised over items; the items the straight-line body declines
// (invalid input, possible underflow) are redone one by one.
template <typename T>
inline int32_t disc_update2_items(int64_t i0, int64_t i1, const T* theta, const T* y, T sign, bool log_io, T* out) {
  int32_t redo = 0;
  if (log_io) {
#pragma omp simd reduction(| : redo)
    for (int64_t i = i0; i < i1; ++i) redo |= items::disc_update2<true>(theta + 2 * i, y[2 * i], y[2 * i + 1], sign, out + 2 * i);
  } else {
#pragma omp simd reduction(| : redo)
    for (int64_t i = i0; i < i1; ++i) redo |= items::disc_update2<false>(theta + 2 * i, y[2 * i], y[2 * i + 1], sign, out + 2 * i);
  }
  int32_t flags = 0;
  if (redo)
    for (int64_t i = i0; i < i1; ++i) items::disc_update_item(theta + 2 * i, y + 2 * i, 2, sign, log_io, out + 2 * i, flags);
  return flags;
}

DIFFREP_LAUNCHER(disc_update) {
  const T sign = inverse ? T(-1) : T(1);
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    if (K == 2) return disc_update2_items(i0, i1, theta, y, sign, log_io, out);
    return log_io ? items::disc_update_tile_log(theta, y, K, i0, i1, sign, out)
                  : items::disc_update_tile(theta, y, K, i0, i1, sign, out);
  }, K >= 16 ? 16 : 1);  // whole groups of 16 items for items::disc_update_groups16
}

DIFFREP_LAUNCHER(disc_sender_update) {
  *l.flags |= tiled_with_noise<T>(n, K, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t xi = x[i];
      if (xi < 0 || xi >= K) flags |= kClassOutOfRange;
      const T a = alpha[bidx(i, row_len, alpha_per_row)];
      flags |= sender_alpha_bit(a);
      const T sd = sqrt(a * T(K)), hit = a * T(K - 1), miss = -a;
      const T* ei = eps + (i - i0) * K;
      T* yi = out_y + i * K;
#pragma omp simd
      for (int64_t k = 0; k < K; ++k)  // y ~ N(alpha (K e_x - 1), alpha K I)
        yi[k] = (k == xi ? hit : miss) + sd * ei[k];
    }
    if (K == 2) flags |= disc_update2_items(i0, i1, theta, static_cast<const T*>(out_y), T(1), log_io, out);
    else if (log_io) flags |= items::disc_update_tile_log(theta, static_cast<const T*>(out_y), K, i0, i1, T(1), out);
    else flags |= items::disc_update_tile(theta, static_cast<const T*>(out_y), K, i0, i1, T(1), out);
    return flags;
  }, K >= 16 ? 16 : 1);  // whole groups of 16 items for items::disc_update_groups16
}

DIFFREP_LAUNCHER(disc_probs) {
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    if (K == 2) {  // vectorise over items
      const T* __restrict mp = mu_x;
      const T* __restrict sp = sigma_x;
      T* __restrict op = out;
      if (clip) {
#pragma omp simd reduction(| : flags)
        for (int64_t i = i0; i < i1; ++i) flags |= items::disc_probs2<true>(mp[i], sp[i], op + 2 * i);
      } else {
#pragma omp simd reduction(| : flags)
        for (int64_t i = i0; i < i1; ++i) flags |= items::disc_probs2<false>(mp[i], sp[i], op + 2 * i);
      }
      return flags;
    }
    if (K < 16)
      return clip ? items::disc_probs_few_bins<true>(mu_x, sigma_x, K, i0, i1, out)
                  : items::disc_probs_few_bins<false>(mu_x, sigma_x, K, i0, i1, out);
    return items::disc_probs_many_bins(mu_x, sigma_x, K, clip, i0, i1, out);
  });
}

DIFFREP_LAUNCHER(disc_probs_backward) {
  parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      items::disc_probs_backward_item(mu_x[i], sigma_x[i], grad + i * K, K, clip, d_mu[i], d_sigma[i]);
    return int32_t(0);
  });
}

// Elements [s, e) of the discretised loss at K = 2 with one TimeConsts: items::disc_cts_loss2 in a
// vectorised loop, instantiated for the three flags.
template <typename T>
int32_t disc_cts_loss2_segment(int64_t s, int64_t e, const TimeConsts<T>& tc, bool clip, bool noise_pred,
                               bool want_grad, const T* __restrict out_mean, const T* __restrict out_log_sigma,
                               const T* __restrict mu, const T* __restrict x, T* __restrict loss,
                               T* __restrict d_mean, T* __restrict d_log_sigma) {
  const auto run = [&](auto clip_c, auto noise_pred_c, auto want_grad_c) {
    constexpr bool c = decltype(clip_c)::value, np = decltype(noise_pred_c)::value, g = decltype(want_grad_c)::value;
    int32_t flags = 0;
#pragma omp simd reduction(| : flags)
    for (int64_t i = s; i < e; ++i)
      flags |= items::disc_cts_loss2<c, np, g>(out_mean[i], out_log_sigma[i], mu[i], tc, x[i], loss + i,
                                               g ? d_mean + i : nullptr, g ? d_log_sigma + i : nullptr);
    return flags;
  };
  using Y = std::true_type;
  using N = std::false_type;
  if (want_grad) {
    if (clip) return noise_pred ? run(Y{}, Y{}, Y{}) : run(Y{}, N{}, Y{});
    return noise_pred ? run(N{}, Y{}, Y{}) : run(N{}, N{}, Y{});
  }
  if (clip) return noise_pred ? run(Y{}, Y{}, N{}) : run(Y{}, N{}, N{});
  return noise_pred ? run(N{}, Y{}, N{}) : run(N{}, N{}, N{});
}

DIFFREP_LAUNCHER(disc_cts_loss) {
  *l.flags |= time_bad(t, t_per_row, row_len, n);
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      TimeConsts<T> tc{};
      if (t_per_row) tc = time_consts(t[row], log_s1sq, noise_pred, min_loss_var);
      if (K == 2 && t_per_row && !tc.masked) {  // one t for the segment: a loop over its elements vectorises
        flags |= disc_cts_loss2_segment(s, e, tc, clip, noise_pred, want_grad, out_mean, out_log_sigma, mu, x, loss,
                                        d_mean, d_log_sigma);
        return;
      }
      for (int64_t i = s; i < e; ++i) {
        if (!t_per_row) tc = time_consts(t[i], log_s1sq, noise_pred, min_loss_var);
        loss[i] = disc_cts_loss_elem<items::CpuBoundarySums>(out_mean[i], out_log_sigma[i], mu[i], tc, x[i], K, clip,
                                                             noise_pred, want_grad, d_mean + (want_grad ? i : 0),
                                                             d_log_sigma + (want_grad ? i : 0), flags);
      }
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(discrete_cts_loss) {
  *l.flags |= time_bad(t, t_per_row, row_len, n);
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (K == 2) {  // vectorise over items
        const T tr = t_per_row ? t[row] : T(0);
        const int64_t ts = t_per_row ? 0 : 1;  // t[i * ts] + tr: one loop for both layouts
        const T* __restrict tp = t_per_row ? &tr : t;
        const T* __restrict lg = logits;
        const int64_t* __restrict xp = x;
        T* __restrict lo = loss;
        T* __restrict dl = d_logits;
        const T b1 = beta1;
        int32_t f = 0;
        if (want_grad) {
#pragma omp simd reduction(| : f)
          for (int64_t i = s; i < e; ++i)
            f |= items::discrete_cts_loss2<true>(lg[2 * i], lg[2 * i + 1], xp[i], tp[i * ts], b1, lo + i, dl + 2 * i);
        } else {
#pragma omp simd reduction(| : f)
          for (int64_t i = s; i < e; ++i)
            f |= items::discrete_cts_loss2<false>(lg[2 * i], lg[2 * i + 1], xp[i], tp[i * ts], b1, lo + i, dl);
        }
        flags |= f;
        return;
      }
      for (int64_t i = s; i < e; ++i)
        loss[i] = items::discrete_cts_loss_item(logits + i * K, x[i], t_per_row ? t[row] : t[i], K, beta1, want_grad,
                                                T(1), want_grad ? d_logits + i * K : nullptr, flags);
    });
    return flags;
  });
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_BFN_OPS)

}  // namespace cpu
}  // namespace diffrep
