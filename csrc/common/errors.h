// The error flags every kernel ORs into the int32 word of its Launch. One bit per condition,
// shared by all families; decoded in python/diffrep/ops/_native_call.py (NON_FINITE, ...).
#pragma once
#include <cstdint>

namespace diffrep {

enum ErrorFlag : int32_t {
  kNonFiniteInput = 1,   // an input holds NaN or an infinity
  kClassOutOfRange = 2,  // a class index outside [0, K)
  kIndexOutOfRange = 2,  // metrics: a label, factor or permutation entry outside its range (same bit)
  kNonPositive = 4,      // a quantity that must be > 0 is not
  kOutsideDataRange = 8, // discretised data: a value outside [-1, 1]
};

}  // namespace diffrep
