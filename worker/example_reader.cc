#include "worker/example_reader.h"

#include <algorithm>

#include "core/random.h"
#include "core/spec.h"
#include "core/table_data.h"

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
                                std::vector<uint8_t>* labels) {
  reader_.Read(examples, 0, static_cast<int64_t>(examples.size()), x, labels);
  return OkStatus();
}

TableExampleReader::TableExampleReader(proto::DataSpec data, proto::TableData table, bool test)
    : data_(std::move(data)), table_(std::move(table)), test_(test) {
  block_first_.push_back(0);
  for (const proto::TableBlock& b : test_ ? table_.test_blocks() : table_.train_blocks()) {
    block_first_.push_back(block_first_.back() + b.records());
  }
}

std::vector<int64_t> TableExampleReader::BlockSizes() const {
  std::vector<int64_t> sizes;
  for (size_t b = 0; b + 1 < block_first_.size(); ++b) sizes.push_back(block_first_[b + 1] - block_first_[b]);
  return sizes;
}

StatusOr<const TableExampleReader::Block*> TableExampleReader::BlockOf(int64_t example) {
  const int64_t index = std::upper_bound(block_first_.begin(), block_first_.end(), example) - block_first_.begin() - 1;
  for (const Block& cached : cache_) {
    if (cached.index == index) return &cached;
  }
  Block& slot = cache_[next_slot_];
  next_slot_ = 1 - next_slot_;
  slot.index = -1;  // until read whole
  const proto::TableBlock& block = test_ ? table_.test_blocks(index) : table_.train_blocks(index);
  RETURN_IF_ERROR(ReadTableBlock(data_, test_, table_, block, &slot.x, &slot.labels));
  slot.index = index;
  ++blocks_read_;
  return &slot;
}

Status TableExampleReader::Read(const std::vector<int64_t>& examples, std::vector<float>* x,
                                std::vector<uint8_t>* labels) {
  const int64_t features = table_.feature_columns_size();
  x->resize(examples.size() * features);
  labels->resize(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    ASSIGN_OR_RETURN(const Block* block, BlockOf(examples[i]));
    const int64_t row = examples[i] - block_first_[block->index];
    std::copy_n(block->x.data() + row * features, features, x->data() + i * features);
    (*labels)[i] = block->labels[row];
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
                                      std::vector<uint8_t>* labels) {
  const int64_t size = ImageExampleSize(image_);
  x->resize(examples.size() * size);
  labels->resize(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) {
    ASSIGN_OR_RETURN(const Image image, ReadFolderImage(listing_, examples[i]));
    WriteImageExample(image, image_, AugmentSeed(examples[i]), x->data() + i * size);
    (*labels)[i] = static_cast<uint8_t>(listing_.images[examples[i]].label);
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<ExampleReader>> OpenExampleReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                           bool test) {
  if (IsTableFormat(data)) {
    RETURN_IF_ERROR(ValidateTableData(data, map.table_data(), map.train_examples(), map.test_examples()));
    return std::unique_ptr<ExampleReader>(new TableExampleReader(data, map.table_data(), test));
  }
  if (IsImageFolderFormat(data)) {
    ASSIGN_OR_RETURN(ImageFolderListing listing, ListImageFolderAsPlanned(data, map.image_folder(), test));
    const std::optional<uint64_t> augment_seed = test ? std::nullopt : std::optional<uint64_t>(map.spec().seed());
    return std::unique_ptr<ExampleReader>(new ImageFolderExampleReader(data.image(), std::move(listing), augment_seed));
  }
  ASSIGN_OR_RETURN(ImageDataset images,
                   test ? LoadImageDataset(DataPath(data, data.test_images()), DataPath(data, data.test_labels()),
                                           data.max_test_examples())
                        : LoadImageDataset(DataPath(data, data.train_images()), DataPath(data, data.train_labels()),
                                           data.max_train_examples()));
  return std::unique_ptr<ExampleReader>(new ImageExampleReader(std::move(images), data.mean(), data.std()));
}

ExampleOrder TrainingOrder(uint64_t seed, int epoch, const ExampleReader& reader) {
  if (const auto* table = dynamic_cast<const TableExampleReader*>(&reader); table != nullptr) {
    return ExampleOrder::Blocked(BlockedOrder(seed, epoch, table->BlockSizes()));
  }
  return ExampleOrder::Shuffled(EpochOrder(seed, epoch, reader.count()));
}

}  // namespace tessera
