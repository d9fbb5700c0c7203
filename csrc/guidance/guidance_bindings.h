// The bindings of the SAMI guidance-score ops, generated from their table (guidance_ops.h).
#pragma once
#include "common/bind_ops.h"
#include "guidance/guidance_ops.h"

namespace diffrep {

// D = mu.size / B for B >= 1 rows and samples >= 1.
template <typename A>
int64_t guidance_columns(const A& mu, int64_t B, int64_t samples) {
  expect(B >= 1 && samples >= 1, "log_posterior: need B >= 1 rows and S >= 1 samples");
  expect(mu.size() != 0 && int64_t(mu.size()) % B == 0, "log_posterior: mu must hold B x D values");
  return int64_t(mu.size()) / B;
}

DIFFREP_DEFINE_BINDINGS(bind_guidance, DIFFREP_GUIDANCE_OPS)

}  // namespace diffrep
