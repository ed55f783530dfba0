// libsvm / svmlight data sets (DataSpec format LIBSVM): one checking pass
// over a split that cuts it into blocks and finds the features, the pairs
// of an example and the classes; reading one block back; an example made
// of a line.
//
// An example is K = max_nonzeros (feature, value) pairs, shape [K, 2]: the
// line's features in file order, feature = index - index_base as a float
// (exact: features are below 2^24), then padding pairs (-1, 0). A dense
// vector of num_features values never exists, so num_features may be in
// the millions. The scheduler describes the data once (DescribeLibsvm) and
// sends it in the cluster map; each worker reads only the blocks of its
// shards (ReadLibsvmBlock), as it does a CSV table's (core/table_data.h).
//
// Blocks hold consecutive good lines of one file, at most kTableBlockRecords
// lines and kLibsvmBlockPairs pairs, kept compact (no padding) until a batch
// is made; a plain file's block starts at its byte offset, a gzip'd file's
// is reached by reading the file from its start.
//
// Functions only; no state. Thread-safe.
#ifndef TESSERA_CORE_LIBSVM_DATA_H_
#define TESSERA_CORE_LIBSVM_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/libsvm_reader.h"
#include "core/spec.h"
#include "core/status.h"
#include "core/table_data.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

inline constexpr int64_t kLibsvmBlockPairs = int64_t{2} << 20;   // 16 MiB of (feature, value) floats
inline constexpr int64_t kMaxLibsvmFeatures = int64_t{1} << 24;  // features travel as float32
inline constexpr int32_t kMaxLibsvmNonzeros = 1 << 20;

// True for the LIBSVM format.
bool IsLibsvmFormat(const proto::DataSpec& data);

// One pass over a split's files: each line checked, the blocks cut.
struct LibsvmScan {
  std::vector<proto::TableBlock> blocks;
  int64_t records = 0;
  int max_class = -1;        // the largest class (after data.libsvm.labels)
  int64_t max_feature = -1;  // the largest feature (index - index_base)
  int32_t max_nonzeros = 0;  // the most pairs a line holds
  BadRecords bad;
};

// Reads every line of split `split` (at most max_records good ones when
// > 0), checking each: the reader's rules (core/libsvm_reader.h), the label
// a class (data.libsvm.labels; below data.libsvm.num_classes when set), each
// index at least index_base and below index_base + num_features when set,
// at most max_nonzeros features when set. Errors are one line naming
// FILE:LINE, the token, expected and got (with data.libsvm.skip_bad_records
// such a line is counted in `bad` and passed over): InvalidArgument for a
// mistake in the data, NotFound for a missing file, DataLoss for a damaged
// gzip stream.
StatusOr<LibsvmScan> ScanLibsvm(const proto::DataSpec& data, Split split, int64_t max_records);

// Scans every split with files (after max_*_examples) and returns what
// every worker needs: the blocks, num_features (given, or one more than the
// largest feature of every split), max_nonzeros (given, or the most of
// every split; at least 1), the classes (2 for SIGNED_BINARY; else given or
// one more than the largest training class, a test or validation class
// beyond them InvalidArgument) and the bad lines passed over. `bad`, when
// not null, gets the skipped lines of every split. InvalidArgument when the
// features found pass 2^24 or the pairs kMaxLibsvmNonzeros.
StatusOr<proto::LibsvmData> DescribeLibsvm(const proto::DataSpec& data, BadRecords* bad = nullptr);

// One example's shape: [max_nonzeros, 2].
std::vector<int64_t> LibsvmExampleShape(const proto::LibsvmData& libsvm);

// One block's lines, compact: line r's pairs are pairs[2*starts[r] ..
// 2*starts[r+1]) (feature, value, feature, value, ...), its class labels[r].
struct LibsvmBlock {
  std::vector<int64_t> starts;  // records + 1
  std::vector<float> pairs;
  std::vector<uint8_t> labels;

  int64_t records() const { return static_cast<int64_t>(labels.size()); }
  // Writes line r as max_nonzeros pairs into out[2 * max_nonzeros], padded with (-1, 0).
  void WriteExample(int64_t r, int32_t max_nonzeros, float* out) const;
};

// Reads block `block` of split `split`'s files into *out. DataLoss when the
// file no longer holds what the scheduler found there (fewer lines, a
// feature or class beyond the job's); a line's errors as in ScanLibsvm
// otherwise. REQUIRES: `libsvm` passed ValidateLibsvmData.
Status ReadLibsvmBlock(const proto::DataSpec& data, Split split, const proto::LibsvmData& libsvm,
                       const proto::TableBlock& block, LibsvmBlock* out);

// Checks a LibsvmData from the wire against the spec and the records of
// each split (training: those a validation_fraction holds out included;
// validation: of data.validation_files): features in [1, 2^24], pairs in
// [1, kMaxLibsvmNonzeros], classes in [1, 256], blocks covering each split.
// DataLoss naming the first problem.
Status ValidateLibsvmData(const proto::DataSpec& data, const proto::LibsvmData& libsvm, int64_t train_records,
                          int64_t test_records, int64_t validation_file_records = 0);

}  // namespace tessera

#endif  // TESSERA_CORE_LIBSVM_DATA_H_
