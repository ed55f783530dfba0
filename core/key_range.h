// Keys and key ranges. A model's parameters live in one flat float32 key
// space: tensor t occupies keys [offset, offset + size). Each tensor is cut
// into one chunk per server, so every server owns a slice of every tensor and
// bytes balance to within one element per tensor.
#ifndef TESSERA_CORE_KEY_RANGE_H_
#define TESSERA_CORE_KEY_RANGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

// [begin, end) of keys. A value type.
struct KeyRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end - begin; }
  bool empty() const { return end <= begin; }
  bool operator==(const KeyRange&) const = default;
};

// One parameter tensor and where its keys start.
struct TensorInfo {
  std::string name;              // e.g. "layer0.linear.weight"
  std::vector<int64_t> shape;
  uint64_t offset = 0;           // first key
  uint64_t size = 0;             // number of keys (product of shape)
  float init_bound = 0;          // initialized to init_value + uniform in [-init_bound, init_bound]
  float init_value = 0;
  // False for statistics workers compute (BatchNorm's running mean and
  // variance): servers replace them with the mean of the pushed values.
  bool trainable = true;
  KeyRange range() const { return {offset, offset + size}; }
};

// Returns, for each of `servers` servers, the key ranges it owns, in key
// order. Chunk j of a tensor of n keys is [offset + n*j/S, offset + n*(j+1)/S);
// empty chunks are left out. REQUIRES: servers >= 1.
std::vector<std::vector<KeyRange>> PartitionKeys(const std::vector<TensorInfo>& tensors, int servers);

// The largest tensor frame a socket accepts (ZeroMQ's maxmsgsize): 1 GiB.
constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 30;

// Keys per slice the scheduler cuts servers' ranges into (512 KiB of
// float32): small enough that a server applies one slice while the next is
// still on the wire, large enough that per-message costs stay small.
constexpr uint64_t kSliceKeys = 512 * 256;
// Every frame holds one slice, so no frame can pass the socket's limit.
static_assert(kSliceKeys * sizeof(float) <= kMaxFrameBytes, "a slice must fit in one frame");

// Cuts every range longer than max_keys into nearly equal pieces of at most
// max_keys. REQUIRES: max_keys >= 1.
std::vector<KeyRange> SplitLargeRanges(const std::vector<KeyRange>& ranges, uint64_t max_keys);

// The slices each server owns in a job: PartitionKeys, then every range cut
// into pieces of at most max_slice_keys.
std::vector<std::vector<KeyRange>> PlanServerSlices(const std::vector<TensorInfo>& tensors, int servers,
                                                    uint64_t max_slice_keys = kSliceKeys);

// Total keys in `ranges`.
uint64_t CountKeys(const std::vector<KeyRange>& ranges);

// OK when `ranges` are non-empty, sorted, disjoint and inside [0, num_keys);
// InvalidArgument naming the first bad range otherwise.
Status ValidateRanges(const std::vector<KeyRange>& ranges, uint64_t num_keys);

std::string ToString(const KeyRange& range);


}  // namespace tessera

#endif  // TESSERA_CORE_KEY_RANGE_H_
