// Where a worker's examples come from, whatever the data's format: an
// ExampleReader gives the examples of one split (training or test) by their
// index in file order, and an ExampleOrder says which example each position
// of a phase is. The IDX reader holds its split in memory; the table reader
// (CSV/TSV) holds one block or two and reads the rest from the files as
// positions reach them, and the image folder reader decodes each image when
// a batch reads it, so a worker's memory does not grow with the data.
#ifndef TESSERA_WORKER_EXAMPLE_READER_H_
#define TESSERA_WORKER_EXAMPLE_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/data_plan.h"
#include "core/dataset.h"
#include "core/spec.h"
#include "core/image_folder.h"
#include "core/image_folder_data.h"
#include "core/status.h"
#include "core/table_data.h"
#include "models/layer.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "worker/batch_reader.h"

namespace tessera {

// Which example (index in file order) each position of a phase is.
class ExampleOrder {
 public:
  // Position p is example p (evaluation).
  ExampleOrder() = default;
  // Position p is permutation[p] (IDX training: EpochOrder).
  static ExampleOrder Shuffled(std::vector<int64_t> permutation);
  // Blocks shuffled, then records within each (tables: BlockedOrder).
  static ExampleOrder Blocked(BlockedOrder order);

  // Not thread-safe (a blocked order keeps its last block's permutation).
  int64_t At(int64_t position) const;

 private:
  std::vector<int64_t> permutation_;
  std::optional<BlockedOrder> blocked_;
};

// One split of a data set (training, validation or test). Read is called
// from one thread at a time.
class ExampleReader {
 public:
  virtual ~ExampleReader() = default;
  virtual int64_t count() const = 0;
  // One example's shape: [1, rows, cols] for images, [features] for tables.
  virtual Shape example_shape() const = 0;
  // A table's categorical columns' numbers of ids, for Model::Create (their
  // ids are an example's last values); empty for other data.
  virtual std::vector<int64_t> categorical_rows() const { return {}; }
  // libsvm data's number of features, for Model::Create (its examples are
  // (feature, value) pairs); 0 for other data.
  virtual int64_t sparse_features() const { return 0; }
  virtual int num_classes() const = 0;
  // Fills x[examples.size() * example size] and labels[examples.size()]
  // with `examples` (indexes in [0, count())), normalized for the model.
  // Labels are floats: class ids (exact), 0 or 1, or a regression's targets.
  virtual Status Read(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels) = 0;
  // 64-bit ids per example, which travel beside x (CRITEO: 26, one per
  // categorical field; docs/FORMATS.md, "Sparse tables"); 0 for other data.
  virtual int64_t ids_per_example() const { return 0; }
  // Read, and *ids (when not null) gets the examples' ids,
  // [examples.size() * ids_per_example()], kNoSparseId for an empty slot
  // (core/sparse_id.h); x's values at the id slots are placeholders (-1)
  // that the worker overwrites with rows of its batch (worker/sparse_batch.h).
  virtual Status ReadWithIds(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels,
                             std::vector<uint64_t>* ids) {
    if (ids != nullptr) ids->clear();
    return Read(examples, x, labels);
  }
  // The training epoch the next reads belong to. A reader that augments its
  // examples (image folders) draws each one's augmentation from the job's
  // seed, the epoch and the example's index, so it does not depend on which
  // worker reads it; the others ignore it. Call it between reads, never
  // while one is in flight (the worker sets it before a training phase's
  // BatchPrefetcher starts).
  virtual void set_epoch(int /*epoch*/) {}
};

// The records of each block among [first, end), in file order, leaving out
// blocks with none: for BlockedOrder over a reader's range of a streamed
// split. block_first[b] is block b's first record; its last entry, the
// split's record count.
std::vector<int64_t> BlockSizesBetween(const std::vector<int64_t>& block_first, int64_t first, int64_t end);

// An IDX split in memory, read through BatchReader.
class ImageExampleReader : public ExampleReader {
 public:
  ImageExampleReader(ImageDataset dataset, float mean, float std);
  ImageExampleReader(const ImageExampleReader&) = delete;  // reader_ points into dataset_
  ImageExampleReader& operator=(const ImageExampleReader&) = delete;
  int64_t count() const override { return dataset_.count; }
  Shape example_shape() const override { return Shape{1, dataset_.rows, dataset_.cols}; }
  int num_classes() const override { return dataset_.num_classes; }
  Status Read(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels) override;
  const ImageDataset& dataset() const { return dataset_; }

 private:
  ImageDataset dataset_;
  BatchReader reader_;
};

// A CSV/TSV split, read a block at a time (ReadTableBlock), keeping the last
// two blocks read (a batch may span the end of one and the start of the next).
// Its examples are the records [first, end) of the files of split `files`
// (in file order): all of them, or the training files' records before or
// after those a validation_fraction holds out.
class TableExampleReader : public ExampleReader {
 public:
  // REQUIRES: `table` passed ValidateTableData for this data spec, and
  // 0 <= first <= end <= the records of the split's blocks; `ids` is
  // MakeCategoricalIds(table) (built here when null), shared with the other
  // readers of the job.
  TableExampleReader(proto::DataSpec data, proto::TableData table, Split files, int64_t first, int64_t end,
                     std::shared_ptr<const std::vector<CategoricalIds>> ids = nullptr);
  int64_t count() const override { return end_ - first_; }
  Shape example_shape() const override { return Shape{TableExampleValues(table_)}; }
  std::vector<int64_t> categorical_rows() const override;
  // The categorical columns' ids, for the job's other readers.
  const std::shared_ptr<const std::vector<CategoricalIds>>& ids() const { return ids_; }
  int num_classes() const override { return table_.num_classes(); }
  Status Read(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels) override;
  int64_t ids_per_example() const override { return TableIdsPerExample(data_); }
  Status ReadWithIds(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels,
                     std::vector<uint64_t>* ids) override;

  // Each block's records among [first, end), in file order (for BlockedOrder).
  std::vector<int64_t> BlockSizes() const;
  // Blocks read from the files so far.
  int64_t blocks_read() const { return blocks_read_; }

 private:
  struct Block {
    int64_t index = -1;
    std::vector<float> x;
    std::vector<float> labels;
    std::vector<uint64_t> ids;  // ids_per_example() per record
  };
  const google::protobuf::RepeatedPtrField<proto::TableBlock>& blocks() const;
  // The cached block holding `record`, read when neither cached one does.
  StatusOr<const Block*> BlockOf(int64_t record);

  const proto::DataSpec data_;
  const proto::TableData table_;
  const std::shared_ptr<const std::vector<CategoricalIds>> ids_;  // MakeCategoricalIds(table_)
  const Split files_;
  const int64_t first_, end_;         // the records of the split that are this reader's examples
  std::vector<int64_t> block_first_;  // by block: its first record; then the split's records
  Block cache_[2];
  int next_slot_ = 0;  // the cache slot the next read replaces
  int64_t blocks_read_ = 0;
};

// An image folder split (DataSpec format IMAGE_FOLDER): example i is image i
// of the listing, decoded when read and made into [channels, height, width]
// floats by WriteImageExample; its label is its class folder's. A training
// reader augments (when the spec asks) with the seed MixSeed(seed, epoch,
// i); a test reader never does.
class ImageFolderExampleReader : public ExampleReader {
 public:
  // `augment_seed`: the job's seed for a training split, nullopt for a test split.
  ImageFolderExampleReader(proto::ImageSpec image, ImageFolderListing listing, std::optional<uint64_t> augment_seed);
  int64_t count() const override { return static_cast<int64_t>(listing_.images.size()); }
  Shape example_shape() const override { return ImageExampleShape(image_); }
  int num_classes() const override { return static_cast<int>(listing_.class_names.size()); }
  // A file that no longer decodes is its error (InvalidArgument naming it).
  Status Read(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels) override;
  void set_epoch(int epoch) override { epoch_ = epoch; }

  const ImageFolderListing& listing() const { return listing_; }
  // The augmentation seed of `example` in the current epoch; nullopt when
  // this reader does not augment.
  std::optional<uint64_t> AugmentSeed(int64_t example) const;

 private:
  const proto::ImageSpec image_;
  const ImageFolderListing listing_;
  const std::optional<uint64_t> augment_seed_;  // set only when the spec augments
  int epoch_ = 0;
};

// The examples of split `split` as the cluster map describes them: the IDX
// files loaded (after max_*_examples; the training and validation sets then
// split by HoldOut with the job seed), a table reader over the map's blocks
// (a validation_fraction holds out the training files' last records), or an
// image folder reader over the folder listed again (which must list what the
// scheduler listed: ListImageFolderAsPlanned; a validation_fraction holds
// out the training folder's images by HoldOut with the job seed, and only
// the training split augments). FailedPrecondition for the validation split
// of a job without one. libsvm data reads as a table does
// (OpenLibsvmReader). A table's readers map categorical fields with
// `table_ids` (MakeCategoricalIds(map.table_data()), built here when null;
// the worker builds it once for all its splits, as a vocabulary's map may be
// large).
using SharedCategoricalIds = std::shared_ptr<const std::vector<CategoricalIds>>;
StatusOr<std::unique_ptr<ExampleReader>> OpenExampleReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                           Split split, SharedCategoricalIds table_ids = nullptr);

// The order of training epoch `epoch` over `reader`: EpochOrder for IDX
// data and image folders (each image is a file of its own: no blocks to
// keep together), BlockedOrder over the blocks for tables and libsvm data.
ExampleOrder TrainingOrder(uint64_t seed, int epoch, const ExampleReader& reader);

}  // namespace tessera

#endif  // TESSERA_WORKER_EXAMPLE_READER_H_
