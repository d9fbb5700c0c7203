// nanobind bindings generated from a family's declaration table (common/ops_table.h), one
// template for both modules: Arr is CpuArr or CudaArr and kCuda picks diffrep::cpu or
// diffrep::cuda. Every argument is keyword-only, named as in the table: Python calls them as
// diffrep.ops._native_call.run(backend, op, device, **kwargs). Arrays are .noconvert(), so a
// wrong dtype, device or layout raises TypeError instead of being silently copied; every count,
// DIM and CHECK of the table is verified before the launch (ValueError), so the launchers can
// index their buffers without bounds checks.
#pragma once
#include "common/nb_arrays.h"
#include "common/ops_table.h"

// The binding's parameters and their nb::arg names.
#define DIFFREP_PARAM_IN(type, name, count) , Arr name
#define DIFFREP_PARAM_OPT(type, name, count) , Arr name
#define DIFFREP_PARAM_OUT(type, name, count) , Arr name
#define DIFFREP_PARAM_OPT_OUT(type, name, count) , Arr name
#define DIFFREP_PARAM_VAL(type, name) , type name
#define DIFFREP_PARAM_POS(type, name) , type name
#define DIFFREP_PARAM_DIM(type, name, expr)
#define DIFFREP_PARAM_CHECK(expr)
#define DIFFREP_PARAM(kind, ...) DIFFREP_PARAM_##kind(__VA_ARGS__)

#define DIFFREP_ARGNAME_IN(type, name, count) , nb::arg(#name).noconvert()
#define DIFFREP_ARGNAME_OPT(type, name, count) , nb::arg(#name).noconvert().none()
#define DIFFREP_ARGNAME_OUT(type, name, count) , nb::arg(#name).noconvert()
#define DIFFREP_ARGNAME_OPT_OUT(type, name, count) , nb::arg(#name).noconvert().none()
#define DIFFREP_ARGNAME_VAL(type, name) , nb::arg(#name)
#define DIFFREP_ARGNAME_POS(type, name) , nb::arg(#name)
#define DIFFREP_ARGNAME_DIM(type, name, expr)
#define DIFFREP_ARGNAME_CHECK(expr)
#define DIFFREP_ARGNAME(kind, ...) DIFFREP_ARGNAME_##kind(__VA_ARGS__)

// First pass: the scalar checks, derived sizes and checks, in table order.
#define DIFFREP_PREPARE_IN(type, name, count)
#define DIFFREP_PREPARE_OPT(type, name, count)
#define DIFFREP_PREPARE_OUT(type, name, count)
#define DIFFREP_PREPARE_OPT_OUT(type, name, count)
#define DIFFREP_PREPARE_VAL(type, name)
#define DIFFREP_PREPARE_POS(type, name) expect_positive(name, #name);
#define DIFFREP_PREPARE_DIM(type, name, expr) const type name = (expr);
#define DIFFREP_PREPARE_CHECK(expr) (expr);
#define DIFFREP_PREPARE(kind, ...) DIFFREP_PREPARE_##kind(__VA_ARGS__)

// Second pass: every array's element count.
#define DIFFREP_COUNT_IN(type, name, count) expect_size(name, (count), #name);
#define DIFFREP_COUNT_OPT(type, name, count) expect_size_if_given(name, (count), #name);
#define DIFFREP_COUNT_OUT(type, name, count) expect_size(name, (count), #name);
#define DIFFREP_COUNT_OPT_OUT(type, name, count) expect_size_if_given(name, (count), #name);
#define DIFFREP_COUNT_VAL(type, name)
#define DIFFREP_COUNT_POS(type, name)
#define DIFFREP_COUNT_DIM(type, name, expr)
#define DIFFREP_COUNT_CHECK(expr)
#define DIFFREP_COUNT(kind, ...) DIFFREP_COUNT_##kind(__VA_ARGS__)

// The launcher call's arguments.
#define DIFFREP_PASS_IN(type, name, count) , typed<type>(name, #name)
#define DIFFREP_PASS_OPT(type, name, count) , optional_typed<type>(name, #name)
#define DIFFREP_PASS_OUT(type, name, count) , typed<type>(name, #name)
#define DIFFREP_PASS_OPT_OUT(type, name, count) , optional_typed<type>(name, #name)
#define DIFFREP_PASS_VAL(type, name) , static_cast<type>(name)
#define DIFFREP_PASS_POS(type, name) , static_cast<type>(name)
#define DIFFREP_PASS_DIM(type, name, expr) , name
#define DIFFREP_PASS_CHECK(expr)
#define DIFFREP_PASS(kind, ...) DIFFREP_PASS_##kind(__VA_ARGS__)

// Check, then run the launcher for element type T (picked by `ref`) with the GIL released.
#define DIFFREP_BIND_DEF(op, ref)                                                                      \
  m.def(                                                                                               \
      #op,                                                                                             \
      [](Arr flags, int device, uintptr_t stream DIFFREP_ARGS_##op(DIFFREP_PARAM, double)) {           \
        const Launch l = make_launch(flags, device, stream);                                           \
        constexpr bool host = !kCuda;                                                                  \
        (void)host;                                                                                    \
        DIFFREP_ARGS_##op(DIFFREP_PREPARE, double) DIFFREP_ARGS_##op(DIFFREP_COUNT, double)            \
        float_dispatch(ref, [&](auto zero) {                                                           \
          using T = decltype(zero);                                                                    \
          nb::gil_scoped_release release;                                                              \
          if constexpr (kCuda)                                                                         \
            cuda::op<T>(l DIFFREP_ARGS_##op(DIFFREP_PASS, T));                                         \
          else                                                                                         \
            cpu::op<T>(l DIFFREP_ARGS_##op(DIFFREP_PASS, T));                                          \
        });                                                                                            \
      },                                                                                               \
      nb::kw_only(), DIFFREP_LAUNCH_ARGS DIFFREP_ARGS_##op(DIFFREP_ARGNAME, double));

#define DIFFREP_BIND_OP(op, ref) DIFFREP_BIND_DEF(op, ref)
#define DIFFREP_BIND_OP64(op) DIFFREP_BIND_DEF(op, nullptr)
#define DIFFREP_BIND_OPS(FAMILY) FAMILY(DIFFREP_BIND_OP, DIFFREP_BIND_OP64)

// template <typename Arr, bool kCuda> void fn(nb::module_& m): binds every op of FAMILY.
#define DIFFREP_DEFINE_BINDINGS(fn, FAMILY) \
  template <typename Arr, bool kCuda>       \
  void fn(nb::module_& m) {                 \
    DIFFREP_BIND_OPS(FAMILY)                \
  }
