#include "core/random.h"

#include <numeric>
#include <utility>

namespace tessera {

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::NextBelow(uint64_t n) {
  // Rejection sampling: drop the top partial bucket.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return x % n;
}

uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c) {
  SplitMix64 g(a ^ 0x243f6a8885a308d3ULL);
  uint64_t s = g.Next() ^ b;
  SplitMix64 h(s);
  s = h.Next() ^ c;
  SplitMix64 k(s);
  return k.Next();
}

std::vector<int64_t> Permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  SplitMix64 g(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[i], p[g.NextBelow(static_cast<uint64_t>(i) + 1)]);
  }
  return p;
}

}  // namespace tessera
