// The declaration tables of the kernel families, and what is generated from them.
//
// Each family writes, in <family>/<family>_ops.h, the list of its ops and, once per op, its
// arguments with the element count each array must hold:
//
//   #define DIFFREP_BFN_OPS(X, X64) X(cts_flow, x) ...  // X(op, the array whose float dtype picks T)
//                                                       // X64(op): T is always double
//   #define DIFFREP_ARGS_cts_flow(ARG, T) ARG(DIM, int64_t, n, x.size()) ARG(IN, T, x, n) ...
//
// Entries, ARG(kind, ...):
//   IN(type, name, count)       input array; launcher: const type*; Python: keyword, an array of
//                               `count` elements, of the exact dtype and device (no conversion)
//   OPT(type, name, count)      input array or None; launcher: const type* (nullptr for None)
//   OUT(type, name, count)      output array; launcher: type*
//   OPT_OUT(type, name, count)  output array or None; launcher: type* (nullptr for None)
//   VAL(type, name)             scalar; a float scalar is declared T and travels as double
//   POS(type, name)             scalar that must be >= 1
//   DIM(type, name, expr)       a size the binding derives (not a Python argument); launcher: type
//   CHECK(expr)                 a check the binding runs (it throws ValueError)
// Counts, DIM and CHECK expressions read the other entries by name; DIM and CHECK run first, in
// table order, then every count is checked (kAny: not checked). `host` is true for CPU arrays.
//
// From one table come the launcher declarations of both backends (DIFFREP_DECLARE_OPS), the head
// of each launcher definition (DIFFREP_LAUNCHER(op) { body }), the explicit instantiations
// (DIFFREP_INSTANTIATE_OPS) and the nanobind bindings with keyword names (common/bind_ops.h).
// This header is plain C++: the .cu files include it, nanobind stays out of nvcc.
#pragma once
#include <cstdint>

#include "common/errors.h"
#include "common/launch.h"

#define DIFFREP_SIG_IN(type, name, count) , const type* name
#define DIFFREP_SIG_OPT(type, name, count) , const type* name
#define DIFFREP_SIG_OUT(type, name, count) , type* name
#define DIFFREP_SIG_OPT_OUT(type, name, count) , type* name
#define DIFFREP_SIG_VAL(type, name) , type name
#define DIFFREP_SIG_POS(type, name) , type name
#define DIFFREP_SIG_DIM(type, name, expr) , type name
#define DIFFREP_SIG_CHECK(expr)
#define DIFFREP_SIG(kind, ...) DIFFREP_SIG_##kind(__VA_ARGS__)

// The launcher of `op` for element type T: void op(const Launch& l, <the table's arguments>).
#define DIFFREP_LAUNCHER_SIG(op, T) void op(const Launch& l DIFFREP_ARGS_##op(DIFFREP_SIG, T))
#define DIFFREP_LAUNCHER(op) \
  template <typename T>      \
  DIFFREP_LAUNCHER_SIG(op, T)

#define DIFFREP_DECLARE_OP(op, ...) DIFFREP_LAUNCHER(op);
#define DIFFREP_DECLARE_OPS(FAMILY)              \
  namespace diffrep {                            \
  namespace cpu {                                \
  FAMILY(DIFFREP_DECLARE_OP, DIFFREP_DECLARE_OP) \
  }                                              \
  namespace cuda {                               \
  FAMILY(DIFFREP_DECLARE_OP, DIFFREP_DECLARE_OP) \
  }                                              \
  }

// Explicit instantiations, expanded inside diffrep::cpu or diffrep::cuda by the launcher file.
#define DIFFREP_INSTANTIATE_ONE(op, T) template void op<T>(const Launch& l DIFFREP_ARGS_##op(DIFFREP_SIG, T));
#define DIFFREP_INSTANTIATE_OP(op, ref) DIFFREP_INSTANTIATE_ONE(op, float) DIFFREP_INSTANTIATE_ONE(op, double)
#define DIFFREP_INSTANTIATE_OP64(op) DIFFREP_INSTANTIATE_ONE(op, double)
#define DIFFREP_INSTANTIATE_OPS(FAMILY) FAMILY(DIFFREP_INSTANTIATE_OP, DIFFREP_INSTANTIATE_OP64)
