// The binding of the random family's op, generated from its table (random_ops.h).
#pragma once
#include "common/bind_ops.h"
#include "random/random_ops.h"

namespace diffrep {

DIFFREP_DEFINE_BINDINGS(bind_random, DIFFREP_RANDOM_OPS)

}  // namespace diffrep
