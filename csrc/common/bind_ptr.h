// Address bindings of a family's ops, for the CPU module only, generated from the same
// declaration table as the keyword bindings (common/bind_ops.h, common/ops_table.h).
//
// Why: the keyword bindings take numpy views of the tensors (~0.5 us per array to make) and
// keywords (matched by name); the BFN ops' lean CPU path (diffrep/ops/_bfn_fast.py,
// docs/kernels/bfn.md#performance) calls `<op>_addr` positionally instead, handing every array
// over as three integers taken from ONE tensor: its data address, its element count and its
// dtype code (kDtF32 ...). The checks are the keyword binding's: every count, DIM and CHECK of
// the table is verified against those counts before the launch (ValueError), every array's
// dtype code against the type the launcher expects (TypeError), a required array may not have
// address 0 and no count may be negative. What C++ cannot see, that the address really holds
// `count` elements of that dtype, Python guarantees by reading the three from the same live,
// contiguous CPU tensor (the only caller is _bfn_fast.py, which checks contiguity and device).
// The flags word is local to the call and returned.
#pragma once
#include "common/nb_arrays.h"
#include "common/ops_table.h"

namespace diffrep {

// dtype codes of the address bindings (diffrep/ops/_bfn_fast.py: _DT).
constexpr int kDtF32 = 0, kDtF64 = 1, kDtI64 = 2, kDtI32 = 3;
// The layout version of the address bindings: the first argument of every <op>_addr call, so a
// module built from another table refuses the call instead of misreading its integers.
constexpr int kAddrAbi = 1;

// A host array given by address: the interface typed() / expect_size() / float_dispatch() use.
struct AddrArr {
  void* ptr;
  int64_t n;
  nb::dlpack::dtype dt;

  AddrArr(uintptr_t address, int64_t count, int code, bool required, const char* name) {
    if (count < 0) throw nb::value_error((std::string(name) + ": negative element count").c_str());
    if (required && address == 0) throw nb::value_error((std::string(name) + ": address 0").c_str());
    if (address == 0 && count != 0)
      throw nb::value_error((std::string(name) + ": address 0 with a non-zero count").c_str());
    switch (code) {
      case kDtF32: dt = nb::dtype<float>(); break;
      case kDtF64: dt = nb::dtype<double>(); break;
      case kDtI64: dt = nb::dtype<int64_t>(); break;
      case kDtI32: dt = nb::dtype<int32_t>(); break;
      default: throw nb::type_error((std::string(name) + ": unknown dtype code").c_str());
    }
    ptr = reinterpret_cast<void*>(address);
    n = count;
  }
  size_t size() const { return size_t(n); }
  void* data() const { return ptr; }
  bool is_valid() const { return ptr != nullptr; }
  nb::dlpack::dtype dtype() const { return dt; }
};

}  // namespace diffrep

// The binding's parameters: an array is (address, count, dtype code).
#define DIFFREP_APARAM_ARR(name) , uintptr_t name##_addr, int64_t name##_n, int name##_dt
#define DIFFREP_APARAM_IN(type, name, count) DIFFREP_APARAM_ARR(name)
#define DIFFREP_APARAM_OPT(type, name, count) DIFFREP_APARAM_ARR(name)
#define DIFFREP_APARAM_OUT(type, name, count) DIFFREP_APARAM_ARR(name)
#define DIFFREP_APARAM_OPT_OUT(type, name, count) DIFFREP_APARAM_ARR(name)
#define DIFFREP_APARAM_VAL(type, name) , type name
#define DIFFREP_APARAM_POS(type, name) , type name
#define DIFFREP_APARAM_DIM(type, name, expr)
#define DIFFREP_APARAM_CHECK(expr)
#define DIFFREP_APARAM(kind, ...) DIFFREP_APARAM_##kind(__VA_ARGS__)

// Their names (positional parameters; the names document the order: `<op>_addr.__doc__`).
#define DIFFREP_AARGNAME_ARR(name) , nb::arg(#name "_addr"), nb::arg(#name "_n"), nb::arg(#name "_dt")
#define DIFFREP_AARGNAME_IN(type, name, count) DIFFREP_AARGNAME_ARR(name)
#define DIFFREP_AARGNAME_OPT(type, name, count) DIFFREP_AARGNAME_ARR(name)
#define DIFFREP_AARGNAME_OUT(type, name, count) DIFFREP_AARGNAME_ARR(name)
#define DIFFREP_AARGNAME_OPT_OUT(type, name, count) DIFFREP_AARGNAME_ARR(name)
#define DIFFREP_AARGNAME_VAL(type, name) , nb::arg(#name)
#define DIFFREP_AARGNAME_POS(type, name) , nb::arg(#name)
#define DIFFREP_AARGNAME_DIM(type, name, expr)
#define DIFFREP_AARGNAME_CHECK(expr)
#define DIFFREP_AARGNAME(kind, ...) DIFFREP_AARGNAME_##kind(__VA_ARGS__)

// The arrays, made from their three integers (required: IN and OUT).
#define DIFFREP_AMAKE_IN(type, name, count) const AddrArr name(name##_addr, name##_n, name##_dt, true, #name);
#define DIFFREP_AMAKE_OPT(type, name, count) const AddrArr name(name##_addr, name##_n, name##_dt, false, #name);
#define DIFFREP_AMAKE_OUT(type, name, count) const AddrArr name(name##_addr, name##_n, name##_dt, true, #name);
#define DIFFREP_AMAKE_OPT_OUT(type, name, count) const AddrArr name(name##_addr, name##_n, name##_dt, false, #name);
#define DIFFREP_AMAKE_VAL(type, name)
#define DIFFREP_AMAKE_POS(type, name)
#define DIFFREP_AMAKE_DIM(type, name, expr)
#define DIFFREP_AMAKE_CHECK(expr)
#define DIFFREP_AMAKE(kind, ...) DIFFREP_AMAKE_##kind(__VA_ARGS__)

// <op>_addr(abi, <arrays as address, count, dtype code and scalars, in table order>) -> flags: the
// same checks (DIFFREP_PREPARE, DIFFREP_COUNT, typed<T>) and launcher as the keyword binding.
#define DIFFREP_BIND_ADDR_DEF(op, ref)                                                                 \
  m.def(                                                                                               \
      #op "_addr",                                                                                     \
      [](int abi DIFFREP_ARGS_##op(DIFFREP_APARAM, double)) -> int32_t {                               \
        if (abi != kAddrAbi) throw nb::value_error(#op "_addr: argument layout version mismatch");      \
        DIFFREP_ARGS_##op(DIFFREP_AMAKE, double)                                                       \
        int32_t flags_word = 0;                                                                        \
        const Launch l{-1, 0, &flags_word};                                                            \
        constexpr bool host = true;                                                                    \
        (void)host;                                                                                    \
        DIFFREP_ARGS_##op(DIFFREP_PREPARE, double) DIFFREP_ARGS_##op(DIFFREP_COUNT, double)            \
        float_dispatch(ref, [&](auto zero) {                                                           \
          using T = decltype(zero);                                                                    \
          nb::gil_scoped_release release;                                                              \
          cpu::op<T>(l DIFFREP_ARGS_##op(DIFFREP_PASS, T));                                            \
        });                                                                                            \
        return flags_word;                                                                             \
      },                                                                                               \
      nb::arg("abi") DIFFREP_ARGS_##op(DIFFREP_AARGNAME, double));

#define DIFFREP_BIND_ADDR_OP(op, ref) DIFFREP_BIND_ADDR_DEF(op, ref)
#define DIFFREP_BIND_ADDR_OP64(op) DIFFREP_BIND_ADDR_DEF(op, nullptr)

// void fn(nb::module_& m): binds <op>_addr for every op of FAMILY (CPU module only).
#define DIFFREP_DEFINE_ADDR_BINDINGS(fn, FAMILY)                 \
  inline void fn(nb::module_& m) {                               \
    FAMILY(DIFFREP_BIND_ADDR_OP, DIFFREP_BIND_ADDR_OP64)         \
  }
