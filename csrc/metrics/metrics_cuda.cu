// CUDA kernels of the metric family, launched on torch's current stream. Outputs are written by
// exactly one thread each or reduced in the CPU kernel's order, so reruns are bitwise identical and
// equal the CPU results up to the last bits of libm's log; the only atomics are integer counts.
#include "common/cuda_helpers.cuh"
#include "metrics/metrics_ops.h"
#include "metrics/metrics_math.h"

namespace diffrep {
namespace cuda {
namespace {

using namespace metrics;

__device__ __forceinline__ bool in_range(int64_t v, int64_t hi) { return v >= 0 && v < hi; }

__device__ __forceinline__ void count_add(int64_t* p) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), 1ULL);
}

// ---------------------------------------------------------------- AUROC
// One thread per score row walks its sorted order once (O(n), ties included).
template <typename T>
__global__ void auroc_ranks_kernel(const T* scores, const int64_t* order, int64_t U, int64_t n, int32_t* r2,
                                   int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(u, U) {
    const int64_t* o = order + u * n;
    const T* s_row = scores + u * n;
    int32_t* r = r2 + u * n;
    bool ok = true;
    for (int64_t p = 0; p < n; ++p) ok &= in_range(o[p], n);
    if (!ok) {
      local |= kIndexOutOfRange;
      for (int64_t i = 0; i < n; ++i) r[i] = 0;
      continue;
    }
    doubled_midranks(s_row, o, n, r);
  }
  report(flags, local);
}

// One warp per (attribute, row): strided dot product (labels are (n, A)), integer warp reduction.
__global__ void auroc_product_kernel(const uint8_t* labels, const int32_t* r2, const int64_t* npos, int64_t U,
                                     int64_t A, int64_t n, double* auc) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t w = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5; w < A * U; w += warps) {
    const int64_t a = w / U, u = w % U;
    const int32_t* r = r2 + u * n;
    long long acc = 0;
    for (int64_t i = lane; i < n; i += 32) acc += labels[i * A + a] ? r[i] : 0;
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) auc[a * U + u] = auc_from_rank_sum(acc, npos[a], n);
  }
}

// ---------------------------------------------------------------- histogram discretisation
template <typename T>
__global__ void column_minmax_kernel(const T* codes, int64_t n, int64_t J, T* lohi) {
  __shared__ T lo_s[kThreads], hi_s[kThreads];
  for (int64_t j = blockIdx.x; j < J; j += gridDim.x) {
    T lo = codes[j], hi = codes[j];
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const T v = codes[i * J + j];
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    lo_s[threadIdx.x] = lo;
    hi_s[threadIdx.x] = hi;
    __syncthreads();
    for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
      if (threadIdx.x < stride) {
        lo_s[threadIdx.x] = lo_s[threadIdx.x + stride] < lo_s[threadIdx.x] ? lo_s[threadIdx.x + stride] : lo_s[threadIdx.x];
        hi_s[threadIdx.x] = hi_s[threadIdx.x + stride] > hi_s[threadIdx.x] ? hi_s[threadIdx.x + stride] : hi_s[threadIdx.x];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      lohi[j] = lo_s[0];
      lohi[J + j] = hi_s[0];
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void hist_label_kernel(const T* codes, int64_t n, int64_t J, int64_t B, const T* lohi, int64_t* labels) {
  GRID_STRIDE(e, n * J) {
    const int64_t j = e % J;
    labels[e] = hist_label(codes[e], hist_range(lohi[j], lohi[J + j], B), B);
  }
}

// ---------------------------------------------------------------- MI matrix
__global__ void mi_check_kernel(const int64_t* labels, const int64_t* factors, int64_t n, int64_t J, int64_t F,
                                int64_t B, int64_t V, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(e, n * (J + F)) {
    const int64_t i = e / (J + F), c = e % (J + F);
    if (c < J ? !in_range(labels[i * J + c], B) : !in_range(factors[i * F + (c - J)], V)) local |= kIndexOutOfRange;
  }
  report(flags, local);
}

// Joint and marginal counts. Entries are skipped (not written) when out of range; the flag raised
// by mi_check_kernel makes the wrapper discard the result.
__global__ void mi_count_kernel(const int64_t* labels, const int64_t* factors, int64_t n, int64_t J, int64_t F,
                                int64_t B, int64_t V, int64_t* joint, int64_t* lab_count, int64_t* fac_count) {
  const int64_t per = J * F + J + F;
  GRID_STRIDE(e, n * per) {
    const int64_t i = e / per, c = e % per;
    if (c < J * F) {
      const int64_t j = c / F, f = c % F;
      const int64_t b = labels[i * J + j], v = factors[i * F + f];
      if (in_range(b, B) && in_range(v, V)) count_add(joint + (c * B + b) * V + v);
    } else if (c < J * F + J) {
      const int64_t j = c - J * F, b = labels[i * J + j];
      if (in_range(b, B)) count_add(lab_count + j * B + b);
    } else {
      const int64_t f = c - J * F - J, v = factors[i * F + f];
      if (in_range(v, V)) count_add(fac_count + f * V + v);
    }
  }
}

__global__ void mi_table_kernel(const int64_t* joint, const int64_t* lab_count, const int64_t* fac_count, int64_t n,
                                int64_t J, int64_t F, int64_t B, int64_t V, double* mi, double* h) {
  GRID_STRIDE(t, J * F + F) {
    if (t < J * F) {
      const int64_t j = t / F, f = t % F;
      const int64_t* tab = joint + t * B * V;
      const int64_t* rows = lab_count + j * B;
      const int64_t* cols = fac_count + f * V;
      mi[t] = mi_table([&](int64_t b, int64_t v) { return tab[b * V + v]; }, [&](int64_t b) { return rows[b]; },
                       [&](int64_t v) { return cols[v]; }, B, V, n);
    } else {
      const int64_t* cnt = fac_count + (t - J * F) * V;
      h[t - J * F] = mi_table([&](int64_t b, int64_t v) { return b == v ? cnt[b] : int64_t(0); },
                              [&](int64_t b) { return cnt[b]; }, [&](int64_t v) { return cnt[v]; }, V, V, n);
    }
  }
}

// ---------------------------------------------------------------- 1-D kNN MI
// Every kernel below guards its own indices and raises kIndexOutOfRange in the op's flags word, which
// the Python wrapper reads once after the launch, as the CPU kernel does: no host wait between them.
// A flagged call's mi is garbage (finite work, every access in bounds) and the wrapper discards it.

// Per factor: label counts and group starts (one thread per factor; V is small). A label outside
// [0, V) is not counted (so the groups still fit in n places) and is flagged.
__global__ void knn_groups_kernel(const int64_t* labels, int64_t F, int64_t n, int64_t V, int64_t* counts,
                                  int64_t* starts, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(f, F) {
    int64_t* cnt = counts + f * V;
    for (int64_t L = 0; L < V; ++L) cnt[L] = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t L = labels[f * n + i];
      if (in_range(L, V))
        ++cnt[L];
      else
        local |= kIndexOutOfRange;
    }
    int64_t s = 0;
    for (int64_t L = 0; L < V; ++L) {
      starts[f * V + L] = s;
      s += cnt[L];
    }
  }
  report(flags, local);
}

// One thread per latent: stable counting sort of its value-sorted row by the labels of factor f,
// and the prefix count of kept points (label count > 1) in value order (group_row, as the CPU
// kernel; an argsort that is not a permutation, or an entry of vorder or of the labels out of range,
// is flagged, and its extra or unreadable points stay unwritten).
__global__ void knn_group_rows_kernel(const double* sx, const int64_t* vorder, const int64_t* lab,
                                      const int64_t* cnt, const int64_t* st, int64_t J, int64_t n, int64_t V,
                                      double* grouped, int64_t* kp, int64_t* fill, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(j, J) {
    if (!group_row(sx + j * n, vorder + j * n, lab, cnt, st, n, V, grouped + j * n, kp + j * (n + 1), fill + j * V))
      local |= kIndexOutOfRange;
  }
  report(flags, local);
}

// One thread per (latent, grouped position): the point's three digamma terms (0 when dropped). A
// position past its label's group (the groups fill fewer than n places when a label was out of
// range, a flagged call) is treated as dropped, so knn_point never reads outside a group.
__global__ void knn_point_kernel(const double* sx, const double* grouped, const int64_t* kp, const int64_t* cnt,
                                 const int64_t* st, int64_t J, int64_t n, int64_t V, int64_t k, double* terms) {
  GRID_STRIDE(e, J * n) {
    const int64_t j = e / n, q = e % n;
    const int64_t L = group_label(st, V, q), nl = cnt[L];
    KnnTerms t{0, 0, 0};
    if (nl >= 2 && q < st[L] + nl) t = knn_point(grouped + j * n, sx + j * n, kp + j * (n + 1), n, q, st[L], nl, k);
    terms[e] = t.psi_k;
    terms[J * n + e] = t.psi_nl;
    terms[2 * J * n + e] = t.psi_m;
  }
}

// One block per latent: the three sums of the terms point by point in grouped order, as the CPU
// kernel adds them (a dropped point's terms are +0 and leave a sum unchanged), then the estimate.
// The block stages kThreads points at a time in shared memory (coalesced loads) and threads 0-2
// each add one term's chunk in order. A tree of per-thread partials differed from the CPU by ~3e-13
// at n = 3000 (tests/ops/test_metric_kernels_cuda.py holds CUDA to the CPU at 1e-12 / 1e-14).
__global__ void knn_reduce_kernel(const double* terms, const int64_t* cnt, int64_t J, int64_t n, int64_t V,
                                  int64_t F, int64_t f, double* mi) {
  __shared__ double chunk[3][kThreads + 1];  // +1: the three summing threads read different banks
  for (int64_t j = blockIdx.x; j < J; j += gridDim.x) {
    double s = 0;  // thread c < 3: the running sum of term c
    for (int64_t q0 = 0; q0 < n; q0 += kThreads) {
      const int64_t q = q0 + threadIdx.x, len = n - q0 < kThreads ? n - q0 : kThreads;
      if (q < n)
        for (int c = 0; c < 3; ++c) chunk[c][threadIdx.x] = terms[c * J * n + j * n + q];
      __syncthreads();
      if (threadIdx.x < 3)
        for (int64_t i = 0; i < len; ++i) s += chunk[threadIdx.x][i];
      __syncthreads();
    }
    if (threadIdx.x < 3) chunk[threadIdx.x][0] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t n_kept = 0;
      for (int64_t L = 0; L < V; ++L) n_kept += cnt[L] > 1 ? cnt[L] : 0;
      mi[j * F + f] = knn_mi_combine(chunk[0][0], chunk[1][0], chunk[2][0], n_kept);
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------- FactorVAE votes
template <typename T>
__global__ void votes_kernel(const T* batches, const int64_t* factor_index, const double* global_var,
                             const int64_t* active, int64_t na, int64_t nt, int64_t B, int64_t d, int64_t F,
                             bool compressed, int64_t* votes, int64_t* arg, int32_t* flags) {
  int32_t local = 0;
  GRID_STRIDE(t, nt) {
    bool ok = in_range(factor_index[t], F) && na > 0;
    for (int64_t a = 0; a < na; ++a) ok &= in_range(active[a], d);
    if (!ok) {
      local |= kIndexOutOfRange;
      arg[t] = 0;
      continue;
    }
    const int64_t a = vote_argmin(batches + t * B * d, B, d, global_var, active, na);
    arg[t] = compressed ? a : active[a];
    count_add(votes + factor_index[t] * d + arg[t]);
  }
  report(flags, local);
}

}  // namespace


DIFFREP_LAUNCHER(auroc_matrix) {
  if (U == 0 || A == 0 || n == 0) return;
  DeviceGuard guard(l.device);
  DIFFREP_LAUNCH(auroc_ranks_kernel<T>, U, "auroc_matrix", scores, order, U, n, r2, l.flags);
  DIFFREP_LAUNCH(auroc_product_kernel, A * U * 32, "auroc_matrix", labels, r2, npos, U, A, n, auc);
}

DIFFREP_LAUNCHER(hist_discretize) {
  if (n == 0 || J == 0) return;
  DeviceGuard guard(l.device);
  const unsigned blocks = static_cast<unsigned>(J < 65535 ? J : 65535);
  column_minmax_kernel<T><<<blocks, kThreads, 0, as_stream(l)>>>(codes, n, J, lohi);
  check_launch("hist_discretize");
  DIFFREP_LAUNCH(hist_label_kernel<T>, n * J, "hist_discretize", codes, n, J, B, lohi, labels);
}

DIFFREP_LAUNCHER(mi_matrix) {
  if (n == 0 || F == 0) return;
  DeviceGuard guard(l.device);
  int64_t* joint = scratch;
  int64_t* lab_count = scratch + J * F * B * V;
  int64_t* fac_count = lab_count + J * B;
  DIFFREP_LAUNCH(mi_check_kernel, n * (J + F), "mi_matrix", labels, factors, n, J, F, B, V, l.flags);
  DIFFREP_LAUNCH(mi_count_kernel, n * (J * F + J + F), "mi_matrix", labels, factors, n, J, F, B, V, joint, lab_count,
                 fac_count);
  DIFFREP_LAUNCH(mi_table_kernel, J * F + F, "mi_matrix", joint, lab_count, fac_count, n, J, F, B, V, mi, h);
}

DIFFREP_LAUNCHER(knn_mi_cd) {
  if (J == 0 || F == 0 || n == 0) return;
  DeviceGuard guard(l.device);
  int64_t* counts = iscratch;         // (F, V)
  int64_t* starts = counts + F * V;   // (F, V)
  int64_t* kp = starts + F * V;       // (J, n + 1)
  int64_t* fill = kp + J * (n + 1);   // (J, V)
  double* grouped = dscratch;         // (J, n)
  double* terms = dscratch + J * n;   // (3, J, n)
  // No range check with a host wait before these launches: knn_groups_kernel flags the labels and
  // group_row every vorder entry (each row j meets each factor, F >= 1), each guarding its own reads.
  DIFFREP_LAUNCH(knn_groups_kernel, F, "knn_mi_cd", labels, F, n, V, counts, starts, l.flags);
  const unsigned blocks = static_cast<unsigned>(J < 65535 ? J : 65535);
  for (int64_t f = 0; f < F; ++f) {
    const int64_t* cnt = counts + f * V;
    const int64_t* st = starts + f * V;
    DIFFREP_LAUNCH(knn_group_rows_kernel, J, "knn_mi_cd", sx, vorder, labels + f * n, cnt, st, J, n, V, grouped, kp,
                   fill, l.flags);
    DIFFREP_LAUNCH(knn_point_kernel, J * n, "knn_mi_cd", sx, grouped, kp, cnt, st, J, n, V, k, terms);
    knn_reduce_kernel<<<blocks, kThreads, 0, as_stream(l)>>>(terms, cnt, J, n, V, F, f, mi);
    check_launch("knn_mi_cd");
  }
}

DIFFREP_LAUNCHER(factor_vae_votes) {
  if (nt == 0) return;
  DeviceGuard guard(l.device);
  DIFFREP_LAUNCH(votes_kernel<T>, nt, "factor_vae_votes", batches, factor_index, global_var, active, na, nt, B, d, F,
                 compressed, votes, arg, l.flags);
}

DIFFREP_INSTANTIATE_OPS(DIFFREP_METRICS_OPS)

}  // namespace cuda
}  // namespace diffrep
