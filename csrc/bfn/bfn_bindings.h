// The bindings of the BFN ops, generated from their table (bfn_ops.h, which also holds the checks).
#pragma once
#include "bfn/bfn_ops.h"
#include "common/bind_ops.h"
#include "common/bind_ptr.h"

namespace diffrep {

DIFFREP_DEFINE_BINDINGS(bind_bfn, DIFFREP_BFN_OPS)

// <op>_addr: the lean CPU path of diffrep/ops/_bfn_fast.py (common/bind_ptr.h); CPU module only.
DIFFREP_DEFINE_ADDR_BINDINGS(bind_bfn_addr, DIFFREP_BFN_OPS)

}  // namespace diffrep
