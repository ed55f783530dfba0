#include "core/categorical.h"

#include <unordered_set>

#include "core/sparse_id.h"

namespace tessera {

uint64_t Fnv1a64Extend(uint64_t hash, std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

uint64_t Fnv1a64(std::string_view bytes) { return Fnv1a64Extend(kFnv1a64OffsetBasis, bytes); }

uint64_t SparseColumnId(int number, std::string_view value) {
  if (value.empty()) return kNoSparseId;
  const char salt = static_cast<char>(number);
  const uint64_t id = Fnv1a64Extend(Fnv1a64Extend(kFnv1a64OffsetBasis, std::string_view(&salt, 1)), value);
  return id == kNoSparseId ? kNoSparseId - 1 : id;
}

CategoricalIds::CategoricalIds(const proto::CategoricalColumn& column)
    : buckets_(column.hash_buckets()), rows_(CategoricalRows(column)) {
  if (buckets_ > 0) return;
  ids_.reserve(column.vocabulary_size());
  for (int k = 0; k < column.vocabulary_size(); ++k) ids_.emplace(column.vocabulary(k), k + 1);
}

int64_t CategoricalIds::Id(std::string_view field) const {
  if (field.empty()) return 0;
  if (buckets_ > 0) return 1 + static_cast<int64_t>(Fnv1a64(field) % static_cast<uint64_t>(buckets_));
  const auto it = ids_.find(field);
  return it == ids_.end() ? 0 : it->second;
}

int64_t CategoricalRows(const proto::CategoricalColumn& column) {
  return 1 + (column.hash_buckets() > 0 ? column.hash_buckets() : column.vocabulary_size());
}

Status ValidateCategoricalColumn(const proto::CategoricalColumn& column) {
  const std::string name = "categorical column '" + column.name() + "'";
  if (column.column() < 0) return DataLossError(name + ": column index " + std::to_string(column.column()));
  if (column.hash_buckets() < 0 || column.hash_buckets() > kMaxCategoricalIds - 1) {
    return DataLossError(name + ": hash_buckets " + std::to_string(column.hash_buckets()) + " out of [0, " +
                         std::to_string(kMaxCategoricalIds - 1) + "]");
  }
  if (column.hash_buckets() > 0 && column.vocabulary_size() > 0) {
    return DataLossError(name + ": both hash_buckets and a vocabulary");
  }
  if (column.vocabulary_size() > kMaxCategoricalIds - 1) {
    return DataLossError(name + ": a vocabulary of " + std::to_string(column.vocabulary_size()) + " values");
  }
  std::unordered_set<std::string_view> seen;
  for (const std::string& value : column.vocabulary()) {
    if (value.empty() || !seen.insert(value).second) {
      return DataLossError(name + ": its vocabulary holds an empty or a repeated value");
    }
  }
  return OkStatus();
}

Status CheckColumnMatchesSpec(const proto::CategoricalColumnSpec& spec, const proto::CategoricalColumn& column) {
  if (spec.name() != column.name()) {
    return InvalidArgumentError("categorical column '" + column.name() + "' where the spec has '" + spec.name() + "'");
  }
  if (spec.has_hash_buckets() && spec.hash_buckets() != column.hash_buckets()) {
    return InvalidArgumentError("categorical column '" + spec.name() + "': " +
                                std::to_string(column.hash_buckets()) + " hash buckets, the spec " +
                                std::to_string(spec.hash_buckets()));
  }
  if (spec.has_vocabulary()) {
    if (column.hash_buckets() != 0) {
      return InvalidArgumentError("categorical column '" + spec.name() +
                                  "': hashed, where the spec asks for a vocabulary");
    }
    const int64_t max_size = spec.vocabulary().max_size() > 0 ? spec.vocabulary().max_size() : kMaxCategoricalIds - 1;
    if (column.vocabulary_size() > max_size) {
      return InvalidArgumentError("categorical column '" + spec.name() + "': a vocabulary of " +
                                  std::to_string(column.vocabulary_size()) + " values, over the spec's max_size " +
                                  std::to_string(max_size));
    }
  }
  return OkStatus();
}

}  // namespace tessera
