// The bindings of the metric ops, generated from their table (metrics_ops.h, which also holds the
// checks). Index values are range-checked by the kernels (error flag), so with the counts checked
// here no input can make them read or write out of bounds.
#pragma once
#include "common/bind_ops.h"
#include "metrics/metrics_ops.h"

namespace diffrep {

DIFFREP_DEFINE_BINDINGS(bind_metrics, DIFFREP_METRICS_OPS)

}  // namespace diffrep
