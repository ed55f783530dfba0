#include "worker/example_reader.h"

#include <algorithm>

#include <glog/logging.h>

#include "core/random.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "worker/libsvm_example_reader.h"

namespace tessera {

ExampleOrder ExampleOrder::Shuffled(std::vector<int64_t> permutation) {
  ExampleOrder order;
  order.permutation_ = std::move(permutation);
  return order;
}

ExampleOrder ExampleOrder::Blocked(BlockedOrder blocked) {
  ExampleOrder order;
  order.blocked_.emplace(std::move(blocked));
  return order;
}

int64_t ExampleOrder::At(int64_t position) const {
  if (blocked_.has_value()) return blocked_->RecordAt(position);
  return permutation_.empty() ? position : permutation_[position];
}

ImageExampleReader::ImageExampleReader(ImageDataset dataset, float mean, float std)
    : dataset_(std::move(dataset)), reader_(&dataset_, mean, std) {}

Status ImageExampleReader::Read(const std::vector<int64_t>& examples, std::vector<float>* x,
                                std::vector<float>* labels) {
  reader_.Read(examples, 0, static_cast<int64_t>(examples.size()), x, labels);
  return OkStatus();
}

TableExampleReader::TableExampleReader(proto::DataSpec data, proto::TableData table, Split files, int64_t first,
                                       int64_t end, std::shared_ptr<const std::vector<CategoricalIds>> ids)
    : data_(std::move(data)),
      table_(std::move(table)),
      ids_(ids != nullptr ? std::move(ids) : std::make_shared<const std::vector<CategoricalIds>>(MakeCategoricalIds(table_))),
      files_(files),
      first_(first),
      end_(end) {
  block_first_.push_back(0);
  for (const proto::TableBlock& b : blocks()) block_first_.push_back(block_first_.back() + b.records());
  CHECK(0 <= first_ && first_ <= end_ && end_ <= block_first_.back()) << first_ << ", " << end_;
}

std::vector<int64_t> TableExampleReader::categorical_rows() const {
  std::vector<int64_t> rows;
  for (const proto::CategoricalColumn& c : table_.categorical_columns()) rows.push_back(CategoricalRows(c));
  return rows;
}

const google::protobuf::RepeatedPtrField<proto::TableBlock>& TableExampleReader::blocks() const {
  switch (files_) {
    case Split::kTraining: return table_.train_blocks();
    case Split::kValidation: return table_.validation_blocks();
    case Split::kTest: break;
  }
  return table_.test_blocks();
}

std::vector<int64_t> BlockSizesBetween(const std::vector<int64_t>& block_first, int64_t first, int64_t end) {
  std::vector<int64_t> sizes;
  for (size_t b = 0; b + 1 < block_first.size(); ++b) {
    const int64_t size = std::min(block_first[b + 1], end) - std::max(block_first[b], first);
    if (size > 0) sizes.push_back(size);
  }
  return sizes;
}

std::vector<int64_t> TableExampleReader::BlockSizes() const { return BlockSizesBetween(block_first_, first_, end_); }

StatusOr<const TableExampleReader::Block*> TableExampleReader::BlockOf(int64_t record) {
  const int64_t index = std::upper_bound(block_first_.begin(), block_first_.end(), record) - block_first_.begin() - 1;
  for (const Block& cached : cache_) {
    if (cached.index == index) return &cached;
  }
  Block& slot = cache_[next_slot_];
  next_slot_ = 1 - next_slot_;
  slot.index = -1;  // until read whole
  RETURN_IF_ERROR(ReadTableBlock(data_, files_, table_, *ids_, blocks().Get(static_cast<int>(index)), &slot.x,
                                 &slot.labels, &slot.ids));
  slot.index = index;
  ++blocks_read_;
  return &slot;
}

Status TableExampleReader::Read(const std::vector<int64_t>& examples, std::vector<float>* x,
                                std::vector<float>* labels) {
  return ReadWithIds(examples, x, labels, nullptr);
}

Status TableExampleReader::ReadWithIds(const std::vector<int64_t>& examples, std::vector<float>* x,
                                       std::vector<float>* labels, std::vector<uint64_t>* ids) {
  const int64_t features = TableExampleValues(table_);
  const int64_t ids_per_example = ids != nullptr ? this->ids_per_example() : 0;
  x->resize(examples.size() * features);
  labels->resize(examples.size());
  if (ids != nullptr) ids->resize(examples.size() * ids_per_example);
  for (size_t i = 0; i < examples.size(); ++i) {
    const int64_t record = first_ + examples[i];
    ASSIGN_OR_RETURN(const Block* block, BlockOf(record));
    const int64_t row = record - block_first_[block->index];
    std::copy_n(block->x.data() + row * features, features, x->data() + i * features);
    (*labels)[i] = block->labels[row];
    if (ids != nullptr) {
      std::copy_n(block->ids.data() + row * ids_per_example, ids_per_example, ids->data() + i * ids_per_example);
    }
  }
  return OkStatus();
}

ImageFolderExampleReader::ImageFolderExampleReader(proto::ImageSpec image, ImageFolderListing listing,
                                                   std::optional<uint64_t> augment_seed)
    : image_(std::move(image)),
      listing_(std::move(listing)),
      augment_seed_(ImageAugments(image_) ? augment_seed : std::nullopt) {}

std::optional<uint64_t> ImageFolderExampleReader::AugmentSeed(int64_t example) const {
  if (!augment_seed_.has_value()) return std::nullopt;
  return MixSeed(*augment_seed_, static_cast<uint64_t>(epoch_), static_cast<uint64_t>(example));
}

Status ImageFolderExampleReader::Read(const std::vector<int64_t>& examples, std::vector<float>* x,
                                      std::vector<float>* labels) {
  const int64_t size = ImageExampleSize(image_);
  x->resize(examples.size() * size);
  labels->resize(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    ASSIGN_OR_RETURN(const Image image, ReadFolderImage(listing_, examples[i]));
    WriteImageExample(image, image_, AugmentSeed(examples[i]), x->data() + i * size);
    (*labels)[i] = static_cast<float>(listing_.images[examples[i]].label);
  }
  return OkStatus();
}

namespace {

StatusOr<std::unique_ptr<ExampleReader>> OpenTableReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                         Split split, SharedCategoricalIds ids) {
  // A validation_fraction holds out the training files' last records.
  const bool held_out = data.validation_fraction() > 0;
  const int64_t train_records = map.train_examples() + (held_out ? map.validation_examples() : 0);
  RETURN_IF_ERROR(ValidateTableData(data, map.table_data(), train_records, map.test_examples(),
                                    held_out ? 0 : map.validation_examples()));
  if (ids == nullptr) ids = std::make_shared<const std::vector<CategoricalIds>>(MakeCategoricalIds(map.table_data()));
  const auto reader = [&](Split files, int64_t first, int64_t end) {
    return std::unique_ptr<ExampleReader>(new TableExampleReader(data, map.table_data(), files, first, end, ids));
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

StatusOr<std::unique_ptr<ExampleReader>> OpenImageReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                         Split split) {
  if (split == Split::kTest) {
    ASSIGN_OR_RETURN(ImageDataset test, LoadImageDataset(DataPath(data, data.test_images()),
                                                         DataPath(data, data.test_labels()), data.max_test_examples()));
    return std::unique_ptr<ExampleReader>(new ImageExampleReader(std::move(test), data.mean(), data.std()));
  }
  ASSIGN_OR_RETURN(ImageDataset all, LoadImageDataset(DataPath(data, data.train_images()),
                                                      DataPath(data, data.train_labels()), data.max_train_examples()));
  if (data.validation_fraction() > 0) {
    const HeldOutSplit held_out =
        HoldOut(map.spec().seed(), all.count, ValidationCount(data.validation_fraction(), all.count));
    all = SelectExamples(std::move(all), split == Split::kTraining ? held_out.training : held_out.validation);
  }
  return std::unique_ptr<ExampleReader>(new ImageExampleReader(std::move(all), data.mean(), data.std()));
}

// An image folder's training folder listed again; a validation_fraction
// holds out its images by the job seed as for IDX (HoldOut). Only the
// training split augments.
StatusOr<std::unique_ptr<ExampleReader>> OpenImageFolderReader(const proto::DataSpec& data,
                                                               const proto::ClusterMap& map, Split split) {
  const bool test = split == Split::kTest;
  ASSIGN_OR_RETURN(ImageFolderListing listing, ListImageFolderAsPlanned(data, map.image_folder(), test));
  if (!test && data.validation_fraction() > 0) {
    const int64_t n = static_cast<int64_t>(listing.images.size());
    const HeldOutSplit held_out = HoldOut(map.spec().seed(), n, ValidationCount(data.validation_fraction(), n));
    std::vector<ImageFolderEntry> kept;
    const std::vector<int64_t>& examples = split == Split::kTraining ? held_out.training : held_out.validation;
    kept.reserve(examples.size());
    for (const int64_t i : examples) kept.push_back(std::move(listing.images[i]));
    listing.images = std::move(kept);
  }
  const std::optional<uint64_t> augment_seed =
      split == Split::kTraining ? std::optional<uint64_t>(map.spec().seed()) : std::nullopt;
  return std::unique_ptr<ExampleReader>(new ImageFolderExampleReader(data.image(), std::move(listing), augment_seed));
}

}  // namespace

StatusOr<std::unique_ptr<ExampleReader>> OpenExampleReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                           Split split, SharedCategoricalIds table_ids) {
  if (split == Split::kValidation && !HasValidationSplit(data)) {
    return FailedPreconditionError("the job has no validation split (data.validation_fraction, "
                                   "data.validation_files)");
  }
  if (IsTableFormat(data)) return OpenTableReader(data, map, split, std::move(table_ids));
  if (IsLibsvmFormat(data)) return OpenLibsvmReader(data, map, split);
  if (IsImageFolderFormat(data)) return OpenImageFolderReader(data, map, split);
  return OpenImageReader(data, map, split);
}

ExampleOrder TrainingOrder(uint64_t seed, int epoch, const ExampleReader& reader) {
  if (const auto* table = dynamic_cast<const TableExampleReader*>(&reader); table != nullptr) {
    return ExampleOrder::Blocked(BlockedOrder(seed, epoch, table->BlockSizes()));
  }
  if (const auto* libsvm = dynamic_cast<const LibsvmExampleReader*>(&reader); libsvm != nullptr) {
    return ExampleOrder::Blocked(BlockedOrder(seed, epoch, libsvm->BlockSizes()));
  }
  return ExampleOrder::Shuffled(EpochOrder(seed, epoch, reader.count()));
}

}  // namespace tessera
