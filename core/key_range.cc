#include "core/key_range.h"

namespace tessera {

std::vector<std::vector<KeyRange>> PartitionKeys(const std::vector<TensorInfo>& tensors, int servers) {
  CHECK_GE(servers, 1);
  std::vector<std::vector<KeyRange>> owned(servers);
  for (const TensorInfo& t : tensors) {
    for (int j = 0; j < servers; ++j) {
      // 128-bit products are not needed: sizes stay far below 2^32 * servers.
      const uint64_t begin = t.offset + t.size * j / servers;
      const uint64_t end = t.offset + t.size * (j + 1) / servers;
      if (end > begin) owned[j].push_back({begin, end});
    }
  }
  return owned;
}

std::vector<KeyRange> SplitLargeRanges(const std::vector<KeyRange>& ranges, uint64_t max_keys) {
  CHECK_GE(max_keys, 1u);
  std::vector<KeyRange> out;
  for (const KeyRange& r : ranges) {
    const uint64_t pieces = (r.size() + max_keys - 1) / max_keys;
    for (uint64_t p = 0; p < pieces; ++p) {
      out.push_back({r.begin + r.size() * p / pieces, r.begin + r.size() * (p + 1) / pieces});
    }
  }
  return out;
}

std::vector<std::vector<KeyRange>> PlanServerSlices(const std::vector<TensorInfo>& tensors, int servers,
                                                    uint64_t max_slice_keys) {
  std::vector<std::vector<KeyRange>> slices = PartitionKeys(tensors, servers);
  for (std::vector<KeyRange>& ranges : slices) ranges = SplitLargeRanges(ranges, max_slice_keys);
  return slices;
}

uint64_t CountKeys(const std::vector<KeyRange>& ranges) {
  uint64_t n = 0;
  for (const KeyRange& r : ranges) n += r.size();
  return n;
}

Status ValidateRanges(const std::vector<KeyRange>& ranges, uint64_t num_keys) {
  uint64_t previous_end = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const KeyRange& r = ranges[i];
    if (r.empty()) return InvalidArgumentError("key range " + std::to_string(i) + " " + ToString(r) + " is empty");
    if (r.end > num_keys) {
      return InvalidArgumentError("key range " + std::to_string(i) + " " + ToString(r) + " ends past the model's " +
                                  std::to_string(num_keys) + " keys");
    }
    if (i > 0 && r.begin < previous_end) {
      return InvalidArgumentError("key range " + std::to_string(i) + " " + ToString(r) +
                                  " overlaps or precedes the range before it");
    }
    previous_end = r.end;
  }
  return OkStatus();
}

std::string ToString(const KeyRange& range) {
  // Appends rather than "[" + ...: g++ 12 warns falsely (-Wrestrict) on that form.
  std::string s = "[";
  s += std::to_string(range.begin);
  s += ", ";
  s += std::to_string(range.end);
  s += ")";
  return s;
}

}  // namespace tessera
