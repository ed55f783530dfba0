#include "core/libsvm_data.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace tessera {
namespace {

LibsvmOptions ReaderOptions(uint64_t start_offset) {
  // index_base and max_nonzeros are checked by GoodLines, in the spec's words.
  LibsvmOptions options;
  options.start_offset = start_offset;
  return options;
}

// The good lines of one file: the reader's rules, then the spec's (the
// label a class, each feature below num_features), bad lines counted and
// passed over with data.libsvm.skip_bad_records.
class GoodLines {
 public:
  // `*reader` and `*bad` must outlive this.
  GoodLines(const proto::DataSpec& data, LibsvmReader* reader, BadRecords* bad)
      : spec_(data.libsvm()), reader_(reader), bad_(bad) {}

  // The next good line into *record and its class into *label; false at the
  // end. Errors as ScanLibsvm's.
  StatusOr<bool> Next(LibsvmRecord* record, int* label) {
    while (true) {
      StatusOr<bool> more = reader_->Next(record);
      Status status = more.ok() ? OkStatus() : more.status();
      if (more.ok() && !*more) return false;
      if (status.ok()) status = Check(*record, label);
      if (status.ok()) return true;
      if (status.code() != StatusCode::kInvalidArgument || !spec_.skip_bad_records()) return status;
      ++bad_->count;
      if (bad_->first.size() < BadRecords::kNamed) bad_->first.push_back(std::string(status.message()));
    }
  }

 private:
  // The features first (their count, then each index), then the label.
  Status Check(const LibsvmRecord& record, int* label) const {
    const size_t most = spec_.max_nonzeros() > 0 ? static_cast<size_t>(spec_.max_nonzeros()) : kMaxLibsvmNonzeros;
    if (record.features.size() > most) {
      return InvalidArgumentError(reader_->Where(record) + ": " + std::to_string(record.features.size()) +
                                  " features: expected at most " + std::to_string(most) +
                                  (spec_.max_nonzeros() > 0 ? " (data.libsvm.max_nonzeros)" : ""));
    }
    if (!record.features.empty() && record.features[0].index < static_cast<uint64_t>(spec_.index_base())) {
      return InvalidArgumentError(reader_->Where(record) + ": feature index 0: expected at least 1 "
                                  "(data.libsvm.index_base 1, libsvm's own; set it to 0 for 0-based files)");
    }
    const int64_t bound = spec_.num_features() > 0 ? spec_.num_features() : kMaxLibsvmFeatures;
    for (const LibsvmFeature& f : record.features) {
      const uint64_t feature = f.index - static_cast<uint64_t>(spec_.index_base());
      if (feature < static_cast<uint64_t>(bound)) continue;
      return InvalidArgumentError(reader_->Where(record) + ": feature index " + std::to_string(f.index) +
                                  ": expected below " + std::to_string(bound + spec_.index_base()) +
                                  (spec_.num_features() > 0 ? " (data.libsvm.num_features " +
                                                                  std::to_string(spec_.num_features()) + ")"
                                                            : " (2^24: features travel as float32)"));
    }
    return CheckLabel(record, label);
  }

  Status CheckLabel(const LibsvmRecord& record, int* label) const {
    const float v = record.label;
    if (spec_.labels() == proto::LibsvmSpec::SIGNED_BINARY) {
      if (v == -1.0f || v == 1.0f) {
        *label = v > 0 ? 1 : 0;
        return OkStatus();
      }
      return InvalidArgumentError(reader_->Where(record) + ": label " + std::to_string(v) +
                                  ": expected -1 or +1 (data.libsvm.labels SIGNED_BINARY)");
    }
    const int classes = spec_.num_classes() > 0 ? spec_.num_classes() : kMaxTableClasses;
    if (v >= 0 && v < static_cast<float>(classes) && std::floor(v) == v) {
      *label = static_cast<int>(v);
      return OkStatus();
    }
    std::string hint = v == -1.0f ? " (a binary file labelled -1/+1: set data.libsvm.labels SIGNED_BINARY)" : "";
    return InvalidArgumentError(reader_->Where(record) + ": label " + std::to_string(v) +
                                ": expected a class id, an integer in [0, " + std::to_string(classes) + ")" + hint);
  }

  const proto::LibsvmSpec& spec_;
  LibsvmReader* reader_;
  BadRecords* bad_;
};

Status ScanFile(const proto::DataSpec& data, const std::string& path, int file_index, int64_t max_records,
                LibsvmScan* scan) {
  ASSIGN_OR_RETURN(std::unique_ptr<LibsvmReader> reader, LibsvmReader::Open(path, ReaderOptions(0)));
  GoodLines lines(data, reader.get(), &scan->bad);
  LibsvmRecord record;
  int label = 0;
  int64_t in_file = 0, block_pairs = 0;
  while (max_records <= 0 || scan->records < max_records) {
    ASSIGN_OR_RETURN(bool more, lines.Next(&record, &label));
    if (!more) break;
    const int64_t pairs = static_cast<int64_t>(record.features.size());
    const bool full = !scan->blocks.empty() && (scan->blocks.back().records() >= kTableBlockRecords ||
                                                block_pairs + pairs > kLibsvmBlockPairs);
    if (in_file == 0 || full) {
      proto::TableBlock& block = scan->blocks.emplace_back();
      block.set_file(file_index);
      block.set_offset(reader->compressed() ? 0 : record.offset);
      block.set_first_record(in_file);
      block.set_records(0);
      block_pairs = 0;
    }
    scan->blocks.back().set_records(scan->blocks.back().records() + 1);
    block_pairs += pairs;
    scan->max_class = std::max(scan->max_class, label);
    scan->max_nonzeros = std::max(scan->max_nonzeros, static_cast<int32_t>(std::min<int64_t>(pairs, INT32_MAX)));
    if (!record.features.empty()) {
      const int64_t last = static_cast<int64_t>(record.features.back().index) - data.libsvm().index_base();
      scan->max_feature = std::max(scan->max_feature, last);  // indexes increase along a line
    }
    ++in_file;
    ++scan->records;
  }
  return OkStatus();
}

int64_t SplitLimit(const proto::DataSpec& data, Split split) {
  return split == Split::kTraining     ? data.max_train_examples()
         : split == Split::kValidation ? data.max_validation_examples()
                                       : data.max_test_examples();
}

// "a, b and c" of a split's bad lines into *bad.
void AddBad(const BadRecords& split, BadRecords* bad) {
  bad->count += split.count;
  for (const std::string& m : split.first) {
    if (bad->first.size() < BadRecords::kNamed) bad->first.push_back(m);
  }
}

}  // namespace

bool IsLibsvmFormat(const proto::DataSpec& data) { return data.format() == proto::DataSpec::LIBSVM; }

StatusOr<LibsvmScan> ScanLibsvm(const proto::DataSpec& data, Split split, int64_t max_records) {
  LibsvmScan scan;
  const std::vector<std::string> files = TableFiles(data, split);
  for (size_t i = 0; i < files.size(); ++i) {
    if (max_records > 0 && scan.records >= max_records) break;
    RETURN_IF_ERROR(ScanFile(data, files[i], static_cast<int>(i), max_records, &scan));
  }
  return scan;
}

StatusOr<proto::LibsvmData> DescribeLibsvm(const proto::DataSpec& data, BadRecords* bad) {
  const proto::LibsvmSpec& spec = data.libsvm();
  std::vector<Split> splits = {Split::kTraining, Split::kTest};
  if (data.validation_files_size() > 0) splits.push_back(Split::kValidation);
  proto::LibsvmData out;
  LibsvmScan scans[3];
  int64_t max_feature = -1;
  int32_t max_nonzeros = 0;
  for (Split split : splits) {
    LibsvmScan& scan = scans[static_cast<int>(split)];
    ASSIGN_OR_RETURN(scan, ScanLibsvm(data, split, SplitLimit(data, split)));
    max_feature = std::max(max_feature, scan.max_feature);
    max_nonzeros = std::max(max_nonzeros, scan.max_nonzeros);
  }
  const LibsvmScan& train = scans[static_cast<int>(Split::kTraining)];
  const int classes = spec.labels() == proto::LibsvmSpec::SIGNED_BINARY ? 2
                      : spec.num_classes() > 0                          ? spec.num_classes()
                                                                        : std::max(train.max_class + 1, 1);
  for (Split split : {Split::kTest, Split::kValidation}) {
    const LibsvmScan& scan = scans[static_cast<int>(split)];
    if (scan.max_class >= classes) {
      return InvalidArgumentError(std::string("the ") + SplitName(split) + " files hold class " +
                                  std::to_string(scan.max_class) + ", and the training files only classes below " +
                                  std::to_string(classes) + " (set data.libsvm.num_classes)");
    }
  }
  const int64_t features = spec.num_features() > 0 ? spec.num_features() : std::max<int64_t>(max_feature + 1, 1);
  if (features > kMaxLibsvmFeatures) {
    return InvalidArgumentError("the libsvm files hold feature " + std::to_string(max_feature) +
                                ": at most 2^24 (16777216) features (they travel as float32)");
  }
  const int32_t pairs = spec.max_nonzeros() > 0 ? spec.max_nonzeros() : std::max(max_nonzeros, 1);
  if (pairs > kMaxLibsvmNonzeros) {
    return InvalidArgumentError("a libsvm line holds " + std::to_string(pairs) + " features: at most " +
                                std::to_string(kMaxLibsvmNonzeros) + " per example");
  }
  out.set_num_classes(classes);
  out.set_num_features(features);
  out.set_max_nonzeros(pairs);
  for (const auto& b : train.blocks) *out.add_train_blocks() = b;
  for (const auto& b : scans[static_cast<int>(Split::kTest)].blocks) *out.add_test_blocks() = b;
  for (const auto& b : scans[static_cast<int>(Split::kValidation)].blocks) *out.add_validation_blocks() = b;
  out.set_train_bad_records(train.bad.count);
  out.set_test_bad_records(scans[static_cast<int>(Split::kTest)].bad.count);
  out.set_validation_bad_records(scans[static_cast<int>(Split::kValidation)].bad.count);
  if (bad != nullptr) {
    *bad = BadRecords();
    for (Split split : {Split::kTraining, Split::kValidation, Split::kTest}) AddBad(scans[static_cast<int>(split)].bad, bad);
  }
  return out;
}

std::vector<int64_t> LibsvmExampleShape(const proto::LibsvmData& libsvm) { return {libsvm.max_nonzeros(), 2}; }

void LibsvmBlock::WriteExample(int64_t r, int32_t max_nonzeros, float* out) const {
  const int64_t n = starts[r + 1] - starts[r];
  std::copy_n(pairs.data() + 2 * starts[r], 2 * n, out);
  for (int64_t k = n; k < max_nonzeros; ++k) {
    out[2 * k] = -1.0f;
    out[2 * k + 1] = 0.0f;
  }
}

Status ReadLibsvmBlock(const proto::DataSpec& data, Split split, const proto::LibsvmData& libsvm,
                       const proto::TableBlock& block, LibsvmBlock* out) {
  const std::string path = TableFiles(data, split)[block.file()];
  ASSIGN_OR_RETURN(std::unique_ptr<LibsvmReader> reader,
                   LibsvmReader::Open(path, ReaderOptions(block.offset())));
  BadRecords passed_over;  // the bad lines the scheduler counted are passed over again, uncounted
  GoodLines lines(data, reader.get(), &passed_over);
  LibsvmRecord record;
  int label = 0;
  auto next = [&]() -> Status {
    ASSIGN_OR_RETURN(bool more, lines.Next(&record, &label));
    if (!more) {
      return DataLossError(path + " ends before line " + std::to_string(block.first_record() + block.records()) +
                           ", which it held when the job was planned");
    }
    return OkStatus();
  };
  const int64_t skip = reader->compressed() || block.offset() == 0 ? block.first_record() : 0;
  for (int64_t i = 0; i < skip; ++i) RETURN_IF_ERROR(next());
  out->starts.assign(1, 0);
  out->pairs.clear();
  out->labels.clear();
  for (int64_t r = 0; r < block.records(); ++r) {
    RETURN_IF_ERROR(next());
    if (label >= libsvm.num_classes() || static_cast<int64_t>(record.features.size()) > libsvm.max_nonzeros()) {
      return DataLossError(reader->Where(record) + ": class " + std::to_string(label) + " and " +
                           std::to_string(record.features.size()) + " features, beyond the job's " +
                           std::to_string(libsvm.num_classes()) + " classes and " +
                           std::to_string(libsvm.max_nonzeros()) + " pairs");
    }
    for (const LibsvmFeature& f : record.features) {
      const int64_t feature = static_cast<int64_t>(f.index) - data.libsvm().index_base();
      if (feature >= libsvm.num_features()) {
        return DataLossError(reader->Where(record) + ": feature " + std::to_string(feature) +
                             ", beyond the job's " + std::to_string(libsvm.num_features()));
      }
      out->pairs.push_back(static_cast<float>(feature));  // exact: below 2^24
      out->pairs.push_back(f.value);
    }
    out->starts.push_back(out->starts.back() + static_cast<int64_t>(record.features.size()));
    out->labels.push_back(static_cast<uint8_t>(label));
  }
  return OkStatus();
}

Status ValidateLibsvmData(const proto::DataSpec& data, const proto::LibsvmData& libsvm, int64_t train_records,
                          int64_t test_records, int64_t validation_file_records) {
  if (libsvm.num_features() < 1 || libsvm.num_features() > kMaxLibsvmFeatures || libsvm.max_nonzeros() < 1 ||
      libsvm.max_nonzeros() > kMaxLibsvmNonzeros || libsvm.num_classes() < 1 ||
      libsvm.num_classes() > kMaxTableClasses) {
    return DataLossError("libsvm data: " + std::to_string(libsvm.num_features()) + " features, " +
                         std::to_string(libsvm.max_nonzeros()) + " pairs, " + std::to_string(libsvm.num_classes()) +
                         " classes");
  }
  const auto check_blocks = [&](const auto& blocks, int files, int64_t examples, const char* split) -> Status {
    int64_t total = 0;
    for (const proto::TableBlock& b : blocks) {
      if (b.file() < 0 || b.file() >= files || b.records() < 1 || b.records() > kTableBlockRecords ||
          b.first_record() < 0) {
        return DataLossError(std::string("libsvm data: a bad ") + split + " block");
      }
      total += b.records();
    }
    if (total != examples) {
      return DataLossError(std::string("libsvm data: the ") + split + " blocks hold " + std::to_string(total) +
                           " lines, the job " + std::to_string(examples));
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(check_blocks(libsvm.train_blocks(), data.train_files_size(), train_records, "training"));
  RETURN_IF_ERROR(check_blocks(libsvm.validation_blocks(), data.validation_files_size(), validation_file_records,
                               "validation"));
  return check_blocks(libsvm.test_blocks(), data.test_files_size(), test_records, "test");
}

}  // namespace tessera
