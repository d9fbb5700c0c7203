// Run-time instruction-set dispatch for the CPU kernels: call_best_isa(f) runs f through a copy
// compiled for x86-64-v3 (AVX2 + FMA) when the CPU has it, else the baseline build. `flatten`
// inlines everything f calls (the element maths included) into that copy, so its loops vectorise
// with twice the lanes. Results can differ from the baseline by FMA rounding, per machine, never
// per thread count.
#pragma once

namespace diffrep {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
template <typename F>
__attribute__((target("arch=x86-64-v3"), flatten)) auto call_v3(F& f) -> decltype(f()) {
  return f();
}

inline bool cpu_has_v3() {
  static const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return v3;
}

template <typename F>
inline auto call_best_isa(F&& f) -> decltype(f()) {
  return cpu_has_v3() ? call_v3(f) : f();
}
#else
template <typename F>
inline auto call_best_isa(F&& f) -> decltype(f()) {
  return f();
}
#endif

}  // namespace diffrep
