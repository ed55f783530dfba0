#include "core/feature_cross.h"

#include <string_view>

#include "core/categorical.h"
#include "core/sparse_id.h"

namespace tessera {
namespace {

// v's `bytes` bytes, least significant first.
uint64_t ExtendLittleEndian(uint64_t hash, uint64_t v, int bytes) {
  char buffer[8];
  for (int i = 0; i < bytes; ++i) buffer[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return Fnv1a64Extend(hash, std::string_view(buffer, bytes));
}

}  // namespace

uint64_t CrossId(int cross, std::span<const uint64_t> ids) {
  uint64_t hash = ExtendLittleEndian(kFnv1a64OffsetBasis, static_cast<uint32_t>(cross), 4);
  for (const uint64_t id : ids) {
    if (id == kNoSparseId) return kNoSparseId;
    hash = ExtendLittleEndian(hash, id, 8);
  }
  return hash == kNoSparseId ? kNoSparseId - 1 : hash;
}

int64_t WideSlots(const proto::SparseEmbeddingSpec& spec) {
  return (spec.wide_fields() ? spec.fields() : 0) + spec.wide_cross_size();
}

std::vector<uint64_t> WideIds(const proto::SparseEmbeddingSpec& spec, const std::vector<uint64_t>& field_ids,
                              int64_t count) {
  const int64_t fields = spec.fields();
  std::vector<uint64_t> wide;
  wide.reserve(count * WideSlots(spec));
  std::vector<uint64_t> crossed;
  for (int64_t e = 0; e < count; ++e) {
    const uint64_t* example = field_ids.data() + e * fields;
    if (spec.wide_fields()) wide.insert(wide.end(), example, example + fields);
    for (int c = 0; c < spec.wide_cross_size(); ++c) {
      crossed.clear();
      for (const int32_t field : spec.wide_cross(c).field()) crossed.push_back(example[field - 1]);
      wide.push_back(CrossId(c, crossed));
    }
  }
  return wide;
}

}  // namespace tessera
