// Categorical columns of a CSV/TSV table (data.table.categorical_columns):
// the stable hash of a field's bytes and a column's field -> id mapping
// (CategoricalIds); core/vocabulary_counter.h builds a vocabulary in a
// first pass over the training records. docs/FORMATS.md, "Categorical
// columns", is the contract.
//
// Ids are small integers, exact as float32 (below 2^24): id 0 is a missing
// value (an empty field) and, with a vocabulary, every value out of it.
// Issue 16's sparse tables take 64-bit ids instead (SparseColumnId), which
// travel beside the example's floats.
//
// Everything here is a value type without shared state; a const object may
// be used from several threads.
#ifndef TESSERA_CORE_CATEGORICAL_H_
#define TESSERA_CORE_CATEGORICAL_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

// Hashes std::string and std::string_view alike, so a map keyed by strings
// is searched with a field's view without copying it.
struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int64_t, StringViewHash, std::equal_to<>>;

// The most ids a categorical column can have (its table's rows): 2^24, as
// ids travel as float32. So hash_buckets and a vocabulary's size are at most
// kMaxCategoricalIds - 1 (id 0 is the missing value's).
inline constexpr int64_t kMaxCategoricalIds = int64_t{1} << 24;

// 64-bit FNV-1a over `bytes`: offset basis 0xcbf29ce484222325, prime
// 0x100000001b3, one byte at a time (xor, then multiply mod 2^64).
inline constexpr uint64_t kFnv1a64OffsetBasis = 0xcbf29ce484222325ULL;
uint64_t Fnv1a64(std::string_view bytes);
// The same hash carried on over more bytes: Fnv1a64(a + b) is
// Fnv1a64Extend(Fnv1a64(a), b), without building a + b.
uint64_t Fnv1a64Extend(uint64_t hash, std::string_view bytes);

// A sparse table's 64-bit id of `value` in categorical column `number`
// (Criteo's field Ck, data.table.sparse_ids' k-th column; k in [1, 255]):
// 64-bit FNV-1a over one byte, `number`, then the value's bytes, so equal
// values of two columns get unrelated ids. The one hash that equals
// kNoSparseId becomes kNoSparseId - 1. An empty value is no id: kNoSparseId.
inline constexpr int kMaxSparseIdColumns = 255;
uint64_t SparseColumnId(int number, std::string_view value);

// One column's field -> id mapping, from its TableData entry.
// REQUIRES: `column` passed ValidateCategoricalColumn.
class CategoricalIds {
 public:
  explicit CategoricalIds(const proto::CategoricalColumn& column);

  // The field's id in [0, rows()).
  int64_t Id(std::string_view field) const;
  // hash_buckets + 1, or the vocabulary's size + 1.
  int64_t rows() const { return rows_; }

 private:
  int64_t buckets_;  // 0 with a vocabulary
  int64_t rows_;
  StringMap ids_;  // value -> id (vocabulary)
};

// The number of ids of `column` (hash_buckets + 1, or the vocabulary's size + 1).
int64_t CategoricalRows(const proto::CategoricalColumn& column);

// Checks a column from the wire or a file: hash_buckets in [0, 2^24 - 1];
// with 0, at most 2^24 - 1 distinct non-empty values; a column index >= 0.
// DataLoss naming the column and the problem.
Status ValidateCategoricalColumn(const proto::CategoricalColumn& column);

// The column as the spec describes it (name, hash_buckets or vocabulary
// settings) against one built or stored: the same name and the same kind
// (hashing with the same buckets, or a vocabulary no larger than
// max_size). InvalidArgument naming the difference.
Status CheckColumnMatchesSpec(const proto::CategoricalColumnSpec& spec, const proto::CategoricalColumn& column);

}  // namespace tessera

#endif  // TESSERA_CORE_CATEGORICAL_H_
