// Run-time instruction-set dispatch for the CPU kernels: call_best_isa(f) runs f through a copy
// compiled for x86-64-v3 (AVX2 + FMA) when the CPU has it, else the baseline build. `flatten`
// inlines everything f calls (the element maths included) into that copy, so its loops vectorise
// with twice the lanes. Results can differ from the baseline by FMA rounding, per machine, never
// per thread count. call_widest_isa adds an x86-64-v4 copy for width-independent kernels.
#pragma once

#include <cstdlib>

namespace diffrep {

// DIFFREP_CPU_ISA=v3 (v2, v1) caps every CPU dispatcher at that x86-64 level, e.g. to compare the
// AVX2 and baseline loops on an AVX-512 machine; unset: the CPU's best. diffrep._native refuses
// other values before this module loads; read once, at the first kernel call.
inline int cpu_isa_cap() {
  static const int cap = [] {
    const char* v = std::getenv("DIFFREP_CPU_ISA");
    if (!v || !*v) return 4;
    return (v[0] == 'v' && v[1] >= '1' && v[1] <= '4' && v[2] == '\0') ? v[1] - '0' : 4;
  }();
  return cap;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
template <typename F>
__attribute__((target("arch=x86-64-v3"), flatten)) auto call_v3(F& f) -> decltype(f()) {
  return f();
}

inline bool cpu_has_v3() {
  static const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_isa_cap() >= 3;
  return v3;
}

template <typename F>
inline auto call_best_isa(F&& f) -> decltype(f()) {
  return cpu_has_v3() ? call_v3(f) : f();
}

// call_widest_isa(f): call_best_isa with an x86-64-v4 (AVX-512) copy tried first. Only for kernels
// whose results do not depend on the vector width (element-wise maths, sums in an order the code
// fixes, no `omp simd` reductions): v4 and v3 then agree bit for bit. Its mask registers replace
// v3's compare-and-blend sequences in branch-free selects (fast_exp's), about 2x fewer cycles.
template <typename F>
__attribute__((target("arch=x86-64-v4"), flatten)) auto call_v4(F& f) -> decltype(f()) {
  return f();
}

inline bool cpu_has_v4() {
  static const bool v4 = cpu_has_v3() && cpu_isa_cap() >= 4 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vl");
  return v4;
}

template <typename F>
inline auto call_widest_isa(F&& f) -> decltype(f()) {
  return cpu_has_v4() ? call_v4(f) : call_best_isa(f);
}
#else
inline bool cpu_has_v3() { return false; }
inline bool cpu_has_v4() { return false; }

template <typename F>
inline auto call_best_isa(F&& f) -> decltype(f()) {
  return f();
}

template <typename F>
inline auto call_widest_isa(F&& f) -> decltype(f()) {
  return f();
}
#endif

// The x86-64 level the dispatchers above run (4: AVX-512, 3: AVX2 + FMA, 1: the baseline), after the cap.
inline int cpu_isa_level() { return cpu_has_v4() ? 4 : (cpu_has_v3() ? 3 : 1); }

}  // namespace diffrep
