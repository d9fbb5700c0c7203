// OpenMP CPU kernels of the batched HDDC-EM primitives (layout and maths: hddc_math.h). Work is
// split into tasks of (problem, block of kBlock points); each task writes its own partial sums
// and the blocks are combined in float64 in block order, so results do not depend on the
// thread count. Inner loops run over tiles of points (E-step) or over d (M-step) and are
// compiled twice, for x86-64-v3 (AVX2 + FMA, chosen at run time) and the baseline ISA.
//
// Zero weights are skipped: a split refit over the whole X buffer only touches its members, and
// exact zeros in t (far components) cost nothing in the M-step.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/fast_math.h"
#include "common/isa.h"
#include "hddc/hddc_ops.h"
#include "hddc/hddc_math.h"

namespace diffrep {
namespace cpu {

using namespace hddc;
namespace {

constexpr int kP = 16;     // points per E-step tile (the vectorised direction)
constexpr int kTileM = 64; // points per M-step scatter tile


// body(b, blk, i0, i1) over every (problem, block) task, in parallel.
template <typename Body>
void for_blocks(const Dims& s, Body&& body) {
  const int64_t nblk = num_blocks(s.n), tasks = s.B * nblk;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && s.n * s.B * s.K >= 4096)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / nblk, blk = t % nblk;
    const int64_t i0 = blk * kBlock, i1 = std::min(s.n, i0 + kBlock);
    call_best_isa([&] { body(b, blk, i0, i1); });
  }
}

// out[b * width + j] = sum over blocks, in block order, of part[(b * nblk + blk) * width + j].
template <typename P>
void combine_blocks(const P* part, int64_t B, int64_t nblk, int64_t width, double* out) {
#pragma omp parallel for schedule(static) if (B * nblk * width >= (1 << 16))
  for (int64_t b = 0; b < B; ++b) {
    double* o = out + b * width;
    std::fill(o, o + width, 0.0);
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const P* p = part + (b * nblk + blk) * width;
      for (int64_t j = 0; j < width; ++j) o[j] += double(p[j]);
    }
  }
}

// ------------------------------------------------------------------------------------ E-step
template <typename T>
struct EParams {
  const Dims& s;
  const T *x, *w, *mu, *qt, *ia, *ib, *cst, *thr;
  const int64_t* unit_of;
  const int32_t *dk, *tri, *act;
  bool skip_zero;
  T* resp;
  double* llp;
};

// -2 log(pi_k N_k) of the tile's points (transposed xt[i][p]) for component k, into cost[p]
// (estep_cost, hddc_math.h; et receives the deviations).
template <typename T>
inline void tile_cost(const EParams<T>& e, int64_t bk, const T (*xt)[kP], T (*et)[kP], T* cost) {
  constexpr int R = sizeof(T) == 4 ? 6 : 3;  // rows per block: R * kP / lanes <= 12 vector registers
  const int64_t d = e.s.d, D = e.s.D;
  const T* m = e.mu + bk * d;
  T ee[kP] = {};
  for (int64_t i = 0; i < d; ++i) {
    const T mi = m[i];
#pragma omp simd
    for (int p = 0; p < kP; ++p) {
      const T v = xt[i][p] - mi;
      et[i][p] = v;
      ee[p] += v * v;
    }
  }
  estep_cost<T, kP, R, kMaxDim>(e.qt + bk * D * d, e.ia + bk * D, d, e.dk[bk], e.tri[bk] != 0, e.ib[bk], e.cst[bk], ee,
                                [et](int i, int p) { return et[i][p]; }, cost);
}

// One tile of np points (indices idx): responsibilities, llp, member counts; returns flags.
template <typename T>
int32_t estep_tile(const EParams<T>& e, int64_t b, const int64_t* idx, int np, int64_t* cnt, double& lsum) {
  const int64_t d = e.s.d, K = e.s.K, n = e.s.n;
  const T* xu = e.x + e.unit_of[b] * n * d;
  alignas(64) T xt[kMaxDim][kP], et[kMaxDim][kP], lp[kMaxK][kP];
  int32_t bad = 0;
  for (int p = 0; p < kP; ++p) {
    const T* xi = xu + idx[p < np ? p : np - 1] * d;
    for (int64_t i = 0; i < d; ++i) {
      xt[i][p] = xi[i];
      bad |= !std::isfinite(xi[i]);
    }
  }
  T mx[kP], sm[kP];
  std::fill(mx, mx + kP, -std::numeric_limits<T>::infinity());
  for (int64_t k = 0; k < K; ++k) {
    if (!e.act[b * K + k]) continue;
    tile_cost(e, b * K + k, xt, et, lp[k]);
#pragma omp simd
    for (int p = 0; p < kP; ++p) {
      lp[k][p] *= T(-0.5);
      mx[p] = std::max(mx[p], lp[k][p]);
    }
  }
  std::fill(sm, sm + kP, T(0));
  for (int64_t k = 0; k < K; ++k) {
    if (!e.act[b * K + k]) continue;
#pragma omp simd
    for (int p = 0; p < kP; ++p) {
      lp[k][p] = fast_exp(lp[k][p] - mx[p]);
      sm[p] += lp[k][p];
    }
  }
  const T thr = e.thr[b];
  for (int p = 0; p < np; ++p) {
    const int64_t i = idx[p];
    const T inv = T(1) / sm[p], wi = e.w[b * n + i];
    T* r = e.resp + (b * n + i) * K;
    for (int64_t k = 0; k < K; ++k) {
      const T t = e.act[b * K + k] ? lp[k][p] * inv : T(0);
      r[k] = t;
      cnt[k] += (wi > T(0)) & (t > thr);
    }
    const double l = double(wi) * (double(mx[p]) + std::log(double(sm[p])));
    e.llp[b * n + i] = l;
    lsum += l;
  }
  return bad ? kNonFiniteInput : 0;
}

// ------------------------------------------------------------------------------------ M-step
// Accumulates sum_p z[p][i] e[p][j] over a tile of np points into the upper triangle (j >= i,
// in whole vectors from the row block's diagonal) of acc (DP x DP, row-major); the lower
// triangle is mirrored at the end of the block. Row blocks are unrolled at compile time and the
// accumulators are GCC vectors, so that each block's R x (DP - J0) sums stay in registers (as
// plain arrays GCC kept them on the stack: a load and a store per FMA).
template <typename T, int DP, int I0>
inline void scatter_rows(const T (*z)[DP], const T (*ev)[DP], int np, T* acc) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int L = 32 / int(sizeof(T)), J0 = (I0 / L) * L, NV = (DP - J0) / L;
  constexpr int R = std::min(std::max(1, 8 / (DP / L)), DP - I0);
  V a[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) __builtin_memcpy(&a[r][v], acc + (I0 + r) * DP + J0 + v * L, sizeof(V));
  for (int p = 0; p < np; ++p) {
    V e[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) __builtin_memcpy(&e[v], &ev[p][J0 + v * L], sizeof(V));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const T zr = z[p][I0 + r];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) a[r][v] += zr * e[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) __builtin_memcpy(acc + (I0 + r) * DP + J0 + v * L, &a[r][v], sizeof(V));
  if constexpr (I0 + R < DP) scatter_rows<T, DP, I0 + R>(z, ev, np, acc);
}

template <typename T, int DP>
inline void scatter_tile(const T (*z)[DP], const T (*ev)[DP], int np, T* acc) {
  scatter_rows<T, DP, 0>(z, ev, np, acc);
}

// Points of [i0, i1) with a non-zero weight for component k, in point order: offsets from i0 in
// idx[k * kBlock ..] and weights in t[..], found in one pass over the block (scanning the block
// once per component cost more than the scatter itself: a mispredicted branch per point and
// component).
template <typename T>
struct Buckets {
  std::vector<int32_t> idx;
  std::vector<T> t;
  int32_t count[kMaxK];
};

template <typename T>
Buckets<T>& fill_buckets(const Dims& s, const T* w, const T* resp, const int32_t* act, const double* mass,
                         int64_t b, int64_t i0, int64_t i1) {
  thread_local Buckets<T> bk;
  const int64_t K = s.K, n = s.n;
  bk.idx.resize(K * kBlock);
  bk.t.resize(K * kBlock);
  uint64_t on = 0;
  int32_t cnt[kMaxK];  // local, so that the stores to idx (also int32) cannot alias it
  for (int64_t k = 0; k < K; ++k) {
    on |= uint64_t(act[b * K + k] && mass[b * K + k] > 0) << k;
    cnt[k] = 0;
  }
  int32_t* idx = bk.idx.data();
  T* tv = bk.t.data();
  for (int64_t i = i0; i < i1; ++i) {
    const T wi = w[b * n + i];
    if (wi == T(0)) continue;
    const T* r = resp + (b * n + i) * K;
    uint64_t nz = 0;  // t is non-zero for few components: find them without a branch per component
    for (int64_t k = 0; k < K; ++k) nz |= uint64_t(wi * r[k] != T(0)) << k;
    for (nz &= on; nz; nz &= nz - 1) {
      const int k = __builtin_ctzll(nz);
      const int32_t c = cnt[k]++;
      idx[k * kBlock + c] = int32_t(i - i0);
      tv[k * kBlock + c] = wi * r[k];
    }
  }
  std::copy(cnt, cnt + K, bk.count);
  return bk;
}

template <typename T, int DP>
void scatter_block(const Dims& s, const T* xu, const T* w, const T* resp, const int32_t* act, const double* mass,
                   const double* mean, int64_t b, int64_t i0, int64_t i1, T* out) {
  const int64_t d = s.d, K = s.K;
  alignas(64) T z[kTileM][DP], ev[kTileM][DP];
  alignas(64) T acc[DP * DP];
  const Buckets<T>& bu = fill_buckets(s, w, resp, act, mass, b, i0, i1);
  for (int64_t k = 0; k < K; ++k) {
    T* o = out + k * d * d;
    std::fill(o, o + d * d, T(0));
    if (!bu.count[k]) continue;
    T m[DP] = {};
    for (int64_t j = 0; j < d; ++j) m[j] = T(mean[(b * K + k) * d + j]);
    std::fill(acc, acc + DP * DP, T(0));
    const int32_t* idx = bu.idx.data() + k * kBlock;
    const T* tk = bu.t.data() + k * kBlock;
    int np = 0;
    for (int32_t c = 0; c < bu.count[k]; ++c) {
      const T t = tk[c];
      const T* xi = xu + (i0 + idx[c]) * d;
#pragma omp simd
      for (int64_t j = 0; j < DP; ++j) {
        const T v = j < d ? xi[j] - m[j] : T(0);
        ev[np][j] = v;
        z[np][j] = t * v;
      }
      if (++np == kTileM) {
        scatter_tile<T, DP>(z, ev, np, acc);
        np = 0;
      }
    }
    if (np) scatter_tile<T, DP>(z, ev, np, acc);
    for (int64_t i = 0; i < d; ++i)
      for (int64_t j = i; j < d; ++j) o[i * d + j] = o[j * d + i] = acc[i * DP + j];
  }
}

}  // namespace

DIFFREP_LAUNCHER(hddc_estep) {
  const EParams<T> e{s, x, w, mu, qt, ia, ib, cst, thr, unit_of, dk, tri, act, skip_zero, resp, llp};
  const int64_t nblk = num_blocks(s.n), K = s.K, n = s.n;
  std::vector<double> lpart(s.B * nblk);
  std::vector<int64_t> cpart(s.B * nblk * K);
  std::vector<int32_t> fpart(s.B * nblk);
  for_blocks(s, [&](int64_t b, int64_t blk, int64_t i0, int64_t i1) {
    int64_t* c = cpart.data() + (b * nblk + blk) * K;
    std::fill(c, c + K, int64_t(0));
    double lsum = 0;
    int32_t flags = 0;
    int64_t idx[kP];
    int np = 0;
    for (int64_t i = i0; i < i1; ++i) {
      if (skip_zero && e.w[b * n + i] == T(0)) {
        std::fill(resp + (b * n + i) * K, resp + (b * n + i + 1) * K, T(0));
        llp[b * n + i] = 0.0;
        continue;
      }
      idx[np++] = i;
      if (np == kP) {
        flags |= estep_tile(e, b, idx, np, c, lsum);
        np = 0;
      }
    }
    if (np) flags |= estep_tile(e, b, idx, np, c, lsum);
    lpart[b * nblk + blk] = lsum;
    fpart[b * nblk + blk] = flags;
  });
  for (int64_t b = 0; b < s.B; ++b) {
    double acc = 0;
    for (int64_t k = 0; k < K; ++k) cnt[b * K + k] = 0;
    for (int64_t blk = 0; blk < nblk; ++blk) {
      acc += lpart[b * nblk + blk];
      *l.flags |= fpart[b * nblk + blk];
      for (int64_t k = 0; k < K; ++k) cnt[b * K + k] += cpart[(b * nblk + blk) * K + k];
    }
    L[b] = acc;
  }
}

template <typename T>
void hddc_moments(const Launch&, const Dims& s, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                  const int32_t* act, int32_t mode, T phi, T* part, double* mass, double* mean) {
  const int64_t d = s.d, K = s.K, n = s.n, nblk = num_blocks(n), width = K * (d + 1);
  for_blocks(s, [&](int64_t b, int64_t blk, int64_t i0, int64_t i1) {
    T* o = part + (b * nblk + blk) * width;
    std::fill(o, o + width, T(0));
    const T* xu = x + unit_of[b] * n * d;
    uint64_t on = 0;
    for (int64_t k = 0; k < K; ++k) on |= uint64_t(act[b * K + k] != 0) << k;
    for (int64_t i = i0; i < i1; ++i) {
      const T wi = w[b * n + i];
      if (wi == T(0)) continue;
      const T* xi = xu + i * d;
      const T* r = resp + (b * n + i) * K;
      uint64_t nz = 0;  // as in fill_buckets: no branch per component
      for (int64_t k = 0; k < K; ++k) nz |= uint64_t(pass_weight(mode, wi, r[k], phi) != T(0)) << k;
      for (nz &= on; nz; nz &= nz - 1) {
        const int k = __builtin_ctzll(nz);
        const T t = pass_weight(mode, wi, r[k], phi);
        T* ok = o + k * (d + 1);
        ok[d] += t;
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) ok[j] += t * xi[j];
      }
    }
  });
  std::vector<double> tot(s.B * width);
  combine_blocks(part, s.B, nblk, width, tot.data());
  for (int64_t bk = 0; bk < s.B * K; ++bk) {
    const double* t = tot.data() + bk * (d + 1);
    mass[bk] = t[d];
    for (int64_t j = 0; j < d; ++j) mean[bk * d + j] = t[d] > 0 ? t[j] / t[d] : 0.0;
  }
}

template <typename T>
void hddc_scatter(const Launch&, const Dims& s, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                  const int32_t* act, const double* mass, const double* mean, T* part, double* W) {
  const int64_t d = s.d, K = s.K, n = s.n, nblk = num_blocks(n), width = K * d * d;
  for_blocks(s, [&](int64_t b, int64_t blk, int64_t i0, int64_t i1) {
    T* o = part + (b * nblk + blk) * width;
    const T* xu = x + unit_of[b] * n * d;
    if (d <= 8)
      scatter_block<T, 8>(s, xu, w, resp, act, mass, mean, b, i0, i1, o);
    else if (d <= 16)
      scatter_block<T, 16>(s, xu, w, resp, act, mass, mean, b, i0, i1, o);
    else if (d <= 32)
      scatter_block<T, 32>(s, xu, w, resp, act, mass, mean, b, i0, i1, o);
    else
      scatter_block<T, 64>(s, xu, w, resp, act, mass, mean, b, i0, i1, o);
  });
  combine_blocks(part, s.B, nblk, width, W);
  for (int64_t bk = 0; bk < s.B * K; ++bk) {
    const double inv = mass[bk] > 0 ? 1.0 / mass[bk] : 0.0;
    for (int64_t j = 0; j < d * d; ++j) W[bk * d * d + j] *= inv;
  }
}

template <typename T>
void hddc_distance(const Launch&, const Dims& s, const T* x, const int64_t* unit_of, const T* w, const T* resp,
                   const int32_t* act, T phi, const double* count, const double* centroid, T* part,
                   double* density) {
  const int64_t d = s.d, K = s.K, n = s.n, nblk = num_blocks(n);
  for_blocks(s, [&](int64_t b, int64_t blk, int64_t i0, int64_t i1) {
    T* o = part + (b * nblk + blk) * K;
    std::fill(o, o + K, T(0));
    const T* xu = x + unit_of[b] * n * d;
    const double* cb = centroid + b * K * d;
    for (int64_t i = i0; i < i1; ++i) {  // one pass over the points (members of any component)
      const T wi = w[b * n + i];
      const T* xi = xu + i * d;
      for (int64_t k = 0; k < K; ++k) {
        if (pass_weight(kMember, wi, resp[(b * n + i) * K + k], phi) == T(0) || !act[b * K + k] ||
            !(count[b * K + k] > 0))
          continue;
        const double* c = cb + k * d;
        T r2 = 0;
#pragma omp simd reduction(+ : r2)
        for (int64_t j = 0; j < d; ++j) r2 += (xi[j] - T(c[j])) * (xi[j] - T(c[j]));
        o[k] += std::sqrt(r2);
      }
    }
  });
  combine_blocks(part, s.B, nblk, K, density);
  for (int64_t bk = 0; bk < s.B * K; ++bk)
    density[bk] = act[bk] && count[bk] > 0 ? density[bk] / count[bk] : std::numeric_limits<double>::quiet_NaN();
}

// Both passes of the M-step statistics (mode kSoft) or of cluster_density (mode kMember).
DIFFREP_LAUNCHER(hddc_stats) {
  hddc_moments(l, s, x, unit_of, w, resp, act, mode, phi, part, mass, mean);
  if (mode == kSoft)
    hddc_scatter(l, s, x, unit_of, w, resp, act, mass, mean, part, second);
  else
    hddc_distance(l, s, x, unit_of, w, resp, act, phi, mass, mean, part, second);
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_HDDC_OPS)

}  // namespace cpu
}  // namespace diffrep
