#include "core/distinct_counter.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace tessera {
namespace {

// SplitMix64's finalizer: every input bit reaches every output bit, which
// HyperLogLog's register index and run of zeros both need.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

void DistinctCounter::Add(uint64_t value) {
  const uint64_t hash = Mix(value);
  const size_t index = hash >> (64 - kLog2Registers);
  // The rest of the bits, with a 1 below them so that the run of zeros ends.
  const uint64_t rest = (hash << kLog2Registers) | (uint64_t{1} << (kLog2Registers - 1));
  const uint8_t rank = static_cast<uint8_t>(std::countl_zero(rest) + 1);
  registers_[index] = std::max(registers_[index], rank);
}

double DistinctCounter::Estimate() const {
  const double m = static_cast<double>(registers_.size());
  double sum = 0;
  int zeros = 0;
  for (const uint8_t r : registers_) {
    sum += std::ldexp(1.0, -r);
    zeros += r == 0;
  }
  const double alpha = 0.7213 / (1 + 1.079 / m);
  const double raw = alpha * m * m / sum;
  // Small counts: linear counting over the empty registers is far closer.
  if (raw <= 2.5 * m && zeros > 0) return m * std::log(m / zeros);
  return raw;
}

}  // namespace tessera
