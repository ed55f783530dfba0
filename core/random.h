// Deterministic, portable random numbers. std::uniform_*_distribution is
// implementation-defined, so parameter initialization and shuffles use these
// instead: the same seed gives the same numbers on every platform.
#ifndef TESSERA_CORE_RANDOM_H_
#define TESSERA_CORE_RANDOM_H_

#include <cstdint>
#include <vector>

namespace tessera {

// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator with good mixing.
// Thread-compatible value type.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, 1) with 24 random bits.
  float NextFloat() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }
  // Uniform in [0, n) without modulo bias. REQUIRES: n > 0.
  uint64_t NextBelow(uint64_t n);

 private:
  uint64_t state_;
};

// Mixes several values into one seed.
uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c = 0);

// A permutation of 0..n-1 (Fisher-Yates) determined by `seed`.
std::vector<int64_t> Permutation(int64_t n, uint64_t seed);

}  // namespace tessera

#endif  // TESSERA_CORE_RANDOM_H_
