// The bindings of the BFN ops, generated from their table (bfn_ops.h, which also holds the checks).
#pragma once
#include "bfn/bfn_ops.h"
#include "common/bind_ops.h"

namespace diffrep {

DIFFREP_DEFINE_BINDINGS(bind_bfn, DIFFREP_BFN_OPS)

}  // namespace diffrep
