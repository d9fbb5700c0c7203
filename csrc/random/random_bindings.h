// The check of the random family's op and its binding, generated from random_ops.h.
#pragma once
#include "common/bind_ops.h"
#include "random/random_ops.h"

namespace diffrep {

DIFFREP_DEFINE_ARGS(DIFFREP_RANDOM_OPS)

template <class A>
normal_fill_dims check_normal_fill(const A& a, bool) {
  return {int64_t(a.out.size())};
}

template <typename Arr, bool kCuda>
void bind_random(nb::module_& m) {
  DIFFREP_BIND_OPS(DIFFREP_RANDOM_OPS)
}

}  // namespace diffrep
