#include "worker/libsvm_example_reader.h"

#include <algorithm>

#include <glog/logging.h>

namespace tessera {

LibsvmExampleReader::LibsvmExampleReader(proto::DataSpec data, proto::LibsvmData libsvm, Split files, int64_t first,
                                         int64_t end)
    : data_(std::move(data)), libsvm_(std::move(libsvm)), files_(files), first_(first), end_(end) {
  block_first_.push_back(0);
  for (const proto::TableBlock& b : blocks()) block_first_.push_back(block_first_.back() + b.records());
  CHECK(0 <= first_ && first_ <= end_ && end_ <= block_first_.back()) << first_ << ", " << end_;
}

const google::protobuf::RepeatedPtrField<proto::TableBlock>& LibsvmExampleReader::blocks() const {
  switch (files_) {
    case Split::kTraining: return libsvm_.train_blocks();
    case Split::kValidation: return libsvm_.validation_blocks();
    case Split::kTest: break;
  }
  return libsvm_.test_blocks();
}

std::vector<int64_t> LibsvmExampleReader::BlockSizes() const { return BlockSizesBetween(block_first_, first_, end_); }

int64_t LibsvmExampleReader::cached_floats() const {
  int64_t floats = 0;
  for (const CachedBlock& cached : cache_) floats += static_cast<int64_t>(cached.lines.pairs.size());
  return floats;
}

StatusOr<const LibsvmExampleReader::CachedBlock*> LibsvmExampleReader::BlockOf(int64_t record) {
  const int64_t index = std::upper_bound(block_first_.begin(), block_first_.end(), record) - block_first_.begin() - 1;
  for (const CachedBlock& cached : cache_) {
    if (cached.index == index) return &cached;
  }
  CachedBlock& slot = cache_[next_slot_];
  next_slot_ = 1 - next_slot_;
  slot.index = -1;  // until read whole
  RETURN_IF_ERROR(ReadLibsvmBlock(data_, files_, libsvm_, blocks().Get(static_cast<int>(index)), &slot.lines));
  slot.index = index;
  ++blocks_read_;
  return &slot;
}

Status LibsvmExampleReader::Read(const std::vector<int64_t>& examples, std::vector<float>* x,
                                 std::vector<float>* labels) {
  const int32_t pairs = libsvm_.max_nonzeros();
  x->resize(examples.size() * 2 * pairs);
  labels->resize(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    const int64_t record = first_ + examples[i];
    ASSIGN_OR_RETURN(const CachedBlock* block, BlockOf(record));
    const int64_t row = record - block_first_[block->index];
    block->lines.WriteExample(row, pairs, x->data() + i * 2 * pairs);
    (*labels)[i] = block->lines.labels[row];  // a class id, exact as a float
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<ExampleReader>> OpenLibsvmReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                          Split split) {
  // A validation_fraction holds out the training files' last lines.
  const bool held_out = data.validation_fraction() > 0;
  const int64_t train_records = map.train_examples() + (held_out ? map.validation_examples() : 0);
  RETURN_IF_ERROR(ValidateLibsvmData(data, map.libsvm_data(), train_records, map.test_examples(),
                                     held_out ? 0 : map.validation_examples()));
  const auto reader = [&](Split files, int64_t first, int64_t end) {
    return std::unique_ptr<ExampleReader>(new LibsvmExampleReader(data, map.libsvm_data(), files, first, end));
  };
  switch (split) {
    case Split::kTraining: return reader(Split::kTraining, 0, map.train_examples());
    case Split::kValidation:
      if (held_out) return reader(Split::kTraining, map.train_examples(), train_records);
      return reader(Split::kValidation, 0, map.validation_examples());
    case Split::kTest: break;
  }
  return reader(Split::kTest, 0, map.test_examples());
}

}  // namespace tessera
