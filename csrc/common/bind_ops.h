// nanobind bindings generated from a family's declaration table (common/ops_table.h), one
// template for both modules: Arr is CpuArr or CudaArr and kCuda picks diffrep::cpu or
// diffrep::cuda. Every argument has its keyword name (the table's); arrays are .noconvert(), so a
// wrong dtype, device or layout raises TypeError instead of being silently copied. Every argument
// is keyword-only: Python calls them as diffrep.ops._native_call.run(backend, op, device, **kwargs).
//
// Per op the family's <family>/<family>_bindings.h provides
//   template <class A> <op>_dims check_<op>(const A& a, bool host)
// which checks every size the kernels index (ValueError) and returns the DIM arguments; `a` holds
// the Python arguments by name (struct <op>_args<Arr>), `host` is true for CPU arrays.
#pragma once
#include "common/nb_arrays.h"
#include "common/ops_table.h"

// struct <op>_args<Arr>: the Python arguments; struct <op>_dims: the derived sizes.
#define DIFFREP_MEMBER_IN(type, name) Arr name;
#define DIFFREP_MEMBER_OPT(type, name) Arr name;
#define DIFFREP_MEMBER_OUT(type, name) Arr name;
#define DIFFREP_MEMBER_OPT_OUT(type, name) Arr name;
#define DIFFREP_MEMBER_VAL(type, name) type name{};
#define DIFFREP_MEMBER_DIM(type, name)
#define DIFFREP_MEMBER(kind, type, name) DIFFREP_MEMBER_##kind(type, name)
#define DIFFREP_DIM_MEMBER(kind, type, name) DIFFREP_DIM_MEMBER_##kind(type, name)
#define DIFFREP_DIM_MEMBER_IN(type, name)
#define DIFFREP_DIM_MEMBER_OPT(type, name)
#define DIFFREP_DIM_MEMBER_OUT(type, name)
#define DIFFREP_DIM_MEMBER_OPT_OUT(type, name)
#define DIFFREP_DIM_MEMBER_VAL(type, name)
#define DIFFREP_DIM_MEMBER_DIM(type, name) type name;
#define DIFFREP_DEFINE_ARGS_OP(op, ...)                              \
  template <typename Arr>                                            \
  struct op##_args {                                                 \
    using array = Arr;                                               \
    DIFFREP_ARGS_##op(DIFFREP_MEMBER, double)                        \
  };                                                                 \
  struct op##_dims {                                                 \
    DIFFREP_ARGS_##op(DIFFREP_DIM_MEMBER, double)                    \
  };
#define DIFFREP_DEFINE_ARGS(FAMILY) FAMILY(DIFFREP_DEFINE_ARGS_OP, DIFFREP_DEFINE_ARGS_OP)

// The binding lambda's parameters, their storing into `a`, their nb::arg names, and the launcher
// call's arguments.
#define DIFFREP_PARAM_IN(type, name) , Arr name
#define DIFFREP_PARAM_OPT(type, name) , Arr name
#define DIFFREP_PARAM_OUT(type, name) , Arr name
#define DIFFREP_PARAM_OPT_OUT(type, name) , Arr name
#define DIFFREP_PARAM_VAL(type, name) , type name
#define DIFFREP_PARAM_DIM(type, name)
#define DIFFREP_PARAM(kind, type, name) DIFFREP_PARAM_##kind(type, name)

#define DIFFREP_STORE_IN(type, name) args_.name = name;
#define DIFFREP_STORE_OPT(type, name) args_.name = name;
#define DIFFREP_STORE_OUT(type, name) args_.name = name;
#define DIFFREP_STORE_OPT_OUT(type, name) args_.name = name;
#define DIFFREP_STORE_VAL(type, name) args_.name = name;
#define DIFFREP_STORE_DIM(type, name)
#define DIFFREP_STORE(kind, type, name) DIFFREP_STORE_##kind(type, name)

#define DIFFREP_ARGNAME_IN(type, name) , nb::arg(#name).noconvert()
#define DIFFREP_ARGNAME_OPT(type, name) , nb::arg(#name).noconvert().none()
#define DIFFREP_ARGNAME_OUT(type, name) , nb::arg(#name).noconvert()
#define DIFFREP_ARGNAME_OPT_OUT(type, name) , nb::arg(#name).noconvert().none()
#define DIFFREP_ARGNAME_VAL(type, name) , nb::arg(#name)
#define DIFFREP_ARGNAME_DIM(type, name)
#define DIFFREP_ARGNAME(kind, type, name) DIFFREP_ARGNAME_##kind(type, name)

#define DIFFREP_PASS_IN(type, name) , typed<type>(args_.name, #name)
#define DIFFREP_PASS_OPT(type, name) , optional_typed<type>(args_.name, #name)
#define DIFFREP_PASS_OUT(type, name) , typed<type>(args_.name, #name)
#define DIFFREP_PASS_OPT_OUT(type, name) , optional_typed<type>(args_.name, #name)
#define DIFFREP_PASS_VAL(type, name) , static_cast<type>(args_.name)
#define DIFFREP_PASS_DIM(type, name) , dims_.name
#define DIFFREP_PASS(kind, type, name) DIFFREP_PASS_##kind(type, name)

// Check, then run the launcher for element type T with the GIL released.
#define DIFFREP_BIND_RUN(op)                                                 \
  using T = decltype(zero);                                                  \
  nb::gil_scoped_release release;                                            \
  if constexpr (kCuda)                                                       \
    cuda::op<T>(l DIFFREP_ARGS_##op(DIFFREP_PASS, T));                       \
  else                                                                       \
    cpu::op<T>(l DIFFREP_ARGS_##op(DIFFREP_PASS, T));

#define DIFFREP_BIND_DEF(op, ref)                                                                        \
  m.def(                                                                                                 \
      #op,                                                                                               \
      [](Arr flags, int device, uintptr_t stream DIFFREP_ARGS_##op(DIFFREP_PARAM, double)) {             \
        const Launch l = make_launch(flags, device, stream);                                             \
        op##_args<Arr> args_;                                                                                \
        DIFFREP_ARGS_##op(DIFFREP_STORE, double)                                                         \
        const op##_dims dims_ = check_##op(args_, !kCuda);                                                       \
        (void)dims_;                                                                                         \
        float_dispatch(ref, [&](auto zero) { DIFFREP_BIND_RUN(op) });                                    \
      },                                                                                                 \
      nb::kw_only(), DIFFREP_LAUNCH_ARGS DIFFREP_ARGS_##op(DIFFREP_ARGNAME, double));

#define DIFFREP_BIND_OP(op, ref) DIFFREP_BIND_DEF(op, args_.ref)
#define DIFFREP_BIND_OP64(op) DIFFREP_BIND_DEF(op, nullptr)
#define DIFFREP_BIND_OPS(FAMILY) FAMILY(DIFFREP_BIND_OP, DIFFREP_BIND_OP64)
