// OpenMP CPU kernels of the BFN family. Element maths lives in bfn_math.h (shared with CUDA);
// this file only loops. Table: bfn_ops.h; checks and bindings: bfn_bindings.h.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "bfn/bfn_ops.h"
#include "bfn/bfn_math.h"
#include "common/isa.h"
#include "common/philox.h"

namespace diffrep {
namespace cpu {

using namespace bfn;
namespace {
constexpr int64_t kParallelMin = 1 << 14;  // below this, a parallel region costs more than it saves
constexpr int64_t kTile = 1024;             // work per tile (elements x classes), and normals per batch


// Runs body(i0, i1) -> error flags over tiles of items [i0, i1) in parallel (each item costing
// `width` units of work, e.g. K classes) and returns the OR of the flags.
template <typename Body>
int32_t parallel_tiles(int64_t n, int64_t width, Body&& body) {
  const int64_t per_tile = width >= kTile ? 1 : kTile / width;
  const int64_t tiles = (n + per_tile - 1) / per_tile;
  int32_t flags = 0;
#pragma omp parallel for schedule(static) reduction(| : flags) if (n * width >= kParallelMin)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t i0 = tile * per_tile, i1 = i0 + per_tile < n ? i0 + per_tile : n;
    flags |= call_best_isa([&] { return body(i0, i1); });
  }
  return flags;
}

// As parallel_tiles, each item drawing K normals: body(i0, i1, eps) gets the tile's noise
// (injected, or Philox normals generated in one vectorised batch), item i's k-th at
// eps[(i - i0) * K + k].
template <typename T, typename Body>
int32_t tiled_with_noise(int64_t n, int64_t K, const T* noise, PhiloxKey key, Body&& body) {
  return parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    if (noise) return body(i0, i1, noise + i0 * K);
    thread_local std::vector<T> buf;
    buf.resize((i1 - i0) * K);
    philox_normals_body<T>(key, static_cast<uint64_t>(i0 * K), (i1 - i0) * K, buf.data());
    return body(i0, i1, static_cast<const T*>(buf.data()));
  });
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

template <typename T>
inline bool finite_value(T v) {
  return fabs(v) <= std::numeric_limits<T>::max();  // false for inf and NaN, vectorisable
}

}  // namespace

DIFFREP_LAUNCHER(cts_flow) {
  *l.flags |= tiled_with_noise<T>(n, 1, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (t_per_row) {
        const FlowCoeffs<T> c = flow_coeffs(t[row], log_s1sq);
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          bad |= !finite_value(x[i]);
          out[i] = c.gamma * x[i] + c.sd * eps[i - i0];
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
  *l.flags |= tiled_with_noise<T>(n, K, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    TileNoise<T> src{eps, i0 * K};
    for (int64_t i = i0; i < i1; ++i) disc_flow_elem(i, x[i], t[bidx(i, row_len, t_per_row)], K, sqrt_beta1, src, out, flags);
    return flags;
  });
}

DIFFREP_LAUNCHER(cts_update) {
  *l.flags |= parallel_tiles(n, 1, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (alpha_per_row && rho_per_row) {  // the sampler's case: a vectorisable loop
        const T a = alpha[row], r = rho[row], r_new = inverse ? r - a : r + a, sa = inverse ? -a : a;
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          bad |= !finite_value(mu[i]) | !finite_value(y[i]);
          out[i] = (r * mu[i] + sa * y[i]) / r_new;
        }
        if (bad) flags |= kNonFiniteInput;
        return;
      }
      for (int64_t i = s; i < e; ++i)
        out[i] = cts_update_elem(mu[i], at(rho, rho_per_row, row, i), y[i], at(alpha, alpha_per_row, row, i), inverse,
                                 flags);
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(cts_sender_update) {
  *l.flags |= tiled_with_noise<T>(n, 1, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      if (alpha_per_row && rho_per_row) {  // the sampler's case: a vectorisable loop
        const T a = alpha[row], r = rho[row], sd = T(1) / sqrt(a), r_new = r + a;
        int32_t bad = 0;
#pragma omp simd reduction(| : bad)
        for (int64_t i = s; i < e; ++i) {
          bad |= !finite_value(x[i]) | !finite_value(mu[i]);
          const T y = x[i] + eps[i - i0] * sd;
          out_y[i] = y;
          out[i] = (r * mu[i] + a * y) / r_new;
        }
        if (bad) flags |= kNonFiniteInput;
        return;
      }
      for (int64_t i = s; i < e; ++i) {
        if (!isfinite(x[i])) flags |= kNonFiniteInput;
        const T a = at(alpha, alpha_per_row, row, i);
        const T y = x[i] + eps[i - i0] / sqrt(a);  // y ~ N(x, 1/alpha)
        out_y[i] = y;
        out[i] = cts_update_elem(mu[i], at(rho, rho_per_row, row, i), y, a, false, flags);
      }
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(disc_update) {
  const T sign = inverse ? T(-1) : T(1);
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    if (K == 2) {  // binary data: vectorise over items
#pragma omp simd reduction(| : flags)
      for (int64_t i = i0; i < i1; ++i) flags |= disc_update2(theta + 2 * i, y[2 * i], y[2 * i + 1], sign, log_io, out + 2 * i);
      return flags;
    }
    for (int64_t i = i0; i < i1; ++i) {
      const T* yi = y + i * K;
      disc_update_elem(theta + i * K, [yi](int64_t k) { return yi[k]; }, K, sign, log_io, out + i * K, flags);
    }
    return flags;
  });
}

DIFFREP_LAUNCHER(disc_sender_update) {
  *l.flags |= tiled_with_noise<T>(n, K, noise, PhiloxKey{seed, offset}, [&](int64_t i0, int64_t i1, const T* eps) {
    int32_t flags = 0;
    if (K == 2) {  // binary data: vectorise over items
#pragma omp simd reduction(| : flags)
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t xi = x[i];
        flags |= (xi < 0 || xi >= 2) ? int32_t(kClassOutOfRange) : int32_t(0);
        const T a = alpha[bidx(i, row_len, alpha_per_row)];
        const T sd = sqrt(a * T(2));
        const T y0 = a * (xi == 0 ? T(1) : T(-1)) + sd * eps[(i - i0) * 2];
        const T y1 = a * (xi == 1 ? T(1) : T(-1)) + sd * eps[(i - i0) * 2 + 1];
        out_y[2 * i] = y0;
        out_y[2 * i + 1] = y1;
        flags |= disc_update2(theta + 2 * i, y0, y1, T(1), log_io, out + 2 * i);
      }
      return flags;
    }
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t xi = x[i];
      if (xi < 0 || xi >= K) flags |= kClassOutOfRange;
      const T a = alpha[bidx(i, row_len, alpha_per_row)];
      const T sd = sqrt(a * T(K));
      const T* ei = eps + (i - i0) * K;
      T* yi = out_y + i * K;
      for (int64_t k = 0; k < K; ++k)  // y ~ N(alpha (K e_x - 1), alpha K I)
        yi[k] = a * (k == xi ? T(K - 1) : T(-1)) + sd * ei[k];
      disc_update_elem(theta + i * K, [yi](int64_t k) { return yi[k]; }, K, T(1), log_io, out + i * K, flags);
    }
    return flags;
  });
}

DIFFREP_LAUNCHER(disc_probs) {
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    if (K == 2) {  // vectorise over items
#pragma omp simd reduction(| : flags)
      for (int64_t i = i0; i < i1; ++i) flags |= disc_probs2(mu_x[i], sigma_x[i], clip, out + 2 * i);
      return flags;
    }
    for (int64_t i = i0; i < i1; ++i) disc_probs_elem(mu_x[i], sigma_x[i], K, clip, out + i * K, flags);
    return flags;
  });
}

DIFFREP_LAUNCHER(disc_probs_backward) {
  parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      disc_probs_backward_elem(mu_x[i], sigma_x[i], grad + i * K, K, clip, d_mu[i], d_sigma[i]);
    return int32_t(0);
  });
}

DIFFREP_LAUNCHER(disc_cts_loss) {
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for_row_segments(i0, i1, row_len, [&](int64_t s, int64_t e, int64_t row) {
      TimeConsts<T> tc{};
      if (t_per_row) tc = time_consts(t[row], log_s1sq, noise_pred, min_loss_var);
      for (int64_t i = s; i < e; ++i) {
        if (!t_per_row) tc = time_consts(t[i], log_s1sq, noise_pred, min_loss_var);
        loss[i] = disc_cts_loss_elem(out_mean[i], out_log_sigma[i], mu[i], tc, x[i], K, clip, noise_pred, want_grad,
                                     d_mean + (want_grad ? i : 0), d_log_sigma + (want_grad ? i : 0), flags);
      }
    });
    return flags;
  });
}

DIFFREP_LAUNCHER(discrete_cts_loss) {
  *l.flags |= parallel_tiles(n, K, [&](int64_t i0, int64_t i1) {
    int32_t flags = 0;
    for (int64_t i = i0; i < i1; ++i)
      loss[i] = discrete_cts_loss_elem(logits + i * K, x[i], t[bidx(i, row_len, t_per_row)], K, beta1, want_grad,
                                       T(1), want_grad ? d_logits + i * K : nullptr, flags);
    return flags;
  });
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_BFN_OPS)

}  // namespace cpu
}  // namespace diffrep
