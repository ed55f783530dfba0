// A libsvm split (DataSpec format LIBSVM), read a block at a time
// (ReadLibsvmBlock) and kept compact: the last two blocks read (a batch may
// span the end of one and the start of the next), each line's pairs without
// padding. Read() makes each example max_nonzeros (feature, value) pairs,
// padded with (-1, 0): a batch is batch * max_nonzeros * 2 floats, never a
// dense vector of num_features values. Its examples are the lines
// [first, end) of split `files`' good lines in file order: all of them, or
// the training files' lines before or after those a validation_fraction
// holds out. Read is called from one thread at a time (ExampleReader).
#ifndef TESSERA_WORKER_LIBSVM_EXAMPLE_READER_H_
#define TESSERA_WORKER_LIBSVM_EXAMPLE_READER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "core/libsvm_data.h"
#include "worker/example_reader.h"

namespace tessera {

class LibsvmExampleReader : public ExampleReader {
 public:
  // REQUIRES: `libsvm` passed ValidateLibsvmData for this data spec, and
  // 0 <= first <= end <= the lines of the split's blocks.
  LibsvmExampleReader(proto::DataSpec data, proto::LibsvmData libsvm, Split files, int64_t first, int64_t end);
  int64_t count() const override { return end_ - first_; }
  Shape example_shape() const override { return LibsvmExampleShape(libsvm_); }
  int64_t sparse_features() const override { return libsvm_.num_features(); }
  int num_classes() const override { return libsvm_.num_classes(); }
  Status Read(const std::vector<int64_t>& examples, std::vector<float>* x, std::vector<float>* labels) override;

  // Each block's lines among [first, end), in file order (for BlockedOrder).
  std::vector<int64_t> BlockSizes() const;
  // Blocks read from the files so far.
  int64_t blocks_read() const { return blocks_read_; }
  // The floats the two cached blocks hold now (their pairs): what this
  // reader keeps of the data, whatever num_features is.
  int64_t cached_floats() const;

 private:
  struct CachedBlock {
    int64_t index = -1;
    LibsvmBlock lines;
  };
  const google::protobuf::RepeatedPtrField<proto::TableBlock>& blocks() const;
  // The cached block holding `record`, read when neither cached one does.
  StatusOr<const CachedBlock*> BlockOf(int64_t record);

  const proto::DataSpec data_;
  const proto::LibsvmData libsvm_;
  const Split files_;
  const int64_t first_, end_;         // the lines of the split that are this reader's examples
  std::vector<int64_t> block_first_;  // by block: its first line; then the split's lines
  CachedBlock cache_[2];
  int next_slot_ = 0;  // the cache slot the next read replaces
  int64_t blocks_read_ = 0;
};

// The readers of a libsvm job's split `split` as the cluster map describes
// it (ValidateLibsvmData first: DataLoss for a map that does not fit the
// spec); a validation_fraction holds out the training files' last lines.
StatusOr<std::unique_ptr<ExampleReader>> OpenLibsvmReader(const proto::DataSpec& data, const proto::ClusterMap& map,
                                                          Split split);

}  // namespace tessera

#endif  // TESSERA_WORKER_LIBSVM_EXAMPLE_READER_H_
