#include "core/id_partition.h"

#include "core/random.h"

namespace tessera {
namespace {

// Lamping and Veach's jump consistent hash: the bucket in [0, buckets) of
// `key`, as in the paper's listing (its linear congruential steps and
// arithmetic in double).
int JumpConsistentHash(uint64_t key, int buckets) {
  int64_t b = -1, j = 0;
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ULL + 1;
    j = static_cast<int64_t>(static_cast<double>(b + 1) *
                             (static_cast<double>(int64_t{1} << 31) / static_cast<double>((key >> 33) + 1)));
  }
  return static_cast<int>(b);
}

}  // namespace

int ServerOfId(uint64_t table, uint64_t id, int servers) {
  // MixSeed's finalizer spreads sequential ids over all 64 bits first.
  return JumpConsistentHash(MixSeed(table, id), servers);
}

}  // namespace tessera
