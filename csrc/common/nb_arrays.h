// nanobind helpers shared by the CPU and CUDA bindings: typed access to untyped C-contiguous
// arrays with dtype checks that raise TypeError instead of crashing, the launch context, and
// the float32/float64 dispatch.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/launch.h"

namespace diffrep {
namespace nb = nanobind;

using CpuArr = nb::ndarray<nb::c_contig, nb::device::cpu>;
using CudaArr = nb::ndarray<nb::c_contig, nb::device::cuda>;

template <typename T, typename A>
inline T* typed(A& a, const char* name) {
  if (a.dtype() != nb::dtype<T>()) throw nb::type_error((std::string(name) + ": unexpected dtype").c_str());
  return static_cast<T*>(a.data());
}

// An optional array (None in Python): nullptr, else as typed().
template <typename T, typename A>
inline T* optional_typed(A& a, const char* name) {
  return a.is_valid() ? typed<T>(a, name) : nullptr;
}

template <typename A>
inline bool is_f64(const A& a) {
  if (a.dtype() != nb::dtype<float>() && a.dtype() != nb::dtype<double>())
    throw nb::type_error("expected a float32 or float64 array");
  return a.dtype() == nb::dtype<double>();
}

template <typename A>
inline Launch make_launch(A& flags, int device, uintptr_t stream) {
  if (flags.size() != 1) throw nb::value_error("flags must hold exactly one int32");
  return Launch{device, stream, typed<int32_t>(flags, "flags")};
}

// The checks of the declaration tables (common/ops_table.h): the launchers index their buffers
// without bounds checks, so every count a kernel relies on is verified and a mismatch raises
// ValueError.
constexpr int64_t kAny = -1;  // a count that is not checked

template <typename A>
inline void expect_size(const A& a, int64_t n, const char* name) {
  if (n >= 0 && int64_t(a.size()) != n)
    throw nb::value_error((std::string(name) + ": expected " + std::to_string(n) + " elements, got " +
                           std::to_string(a.size())).c_str());
}

// An optional array (None) is not checked.
template <typename A>
inline void expect_size_if_given(const A& a, int64_t n, const char* name) {
  if (a.is_valid()) expect_size(a, n, name);
}

// An optional array that must be given when `needed`.
template <typename A>
inline void expect_given(const A& a, bool needed, const char* name) {
  if (needed && !a.is_valid()) throw nb::value_error((std::string(name) + ": required here, got None").c_str());
}

inline void expect(bool ok, const char* message) {
  if (!ok) throw nb::value_error(message);
}

inline void expect_positive(int64_t v, const char* name) {
  if (v < 1) throw nb::value_error((std::string(name) + " must be >= 1").c_str());
}

inline void expect_classes(int64_t K) { expect(K >= 2, "num_classes must be >= 2"); }

// The count of a per-example (per_row: one value per row of row_len elements) or per-element
// quantity for n elements.
inline int64_t rows(bool per_row, int64_t row_len, int64_t n) {
  expect(row_len > 0 && n % row_len == 0, "row_len must be positive and divide the element count");
  return per_row ? n / row_len : n;
}

// size / K items of K values each.
inline int64_t items_of(size_t size, int64_t K, const char* message) {
  expect(K > 0 && int64_t(size) % K == 0, message);
  return int64_t(size) / K;
}

// The trailing arguments every kernel binding takes: flags word, device index, stream.
#define DIFFREP_LAUNCH_ARGS nb::arg("flags").noconvert(), nb::arg("device"), nb::arg("stream")

// Run `body` (a generic lambda taking a zero of type T) with T = the float dtype of `ref`
// (float32 or float64), or T = double when there is no reference array (nullptr).
template <typename A, typename F>
inline void float_dispatch(const A& ref, F&& body) {
  if (is_f64(ref))
    body(double(0));
  else
    body(float(0));
}

template <typename F>
inline void float_dispatch(std::nullptr_t, F&& body) {
  body(double(0));
}

}  // namespace diffrep
