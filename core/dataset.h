// An in-memory image classification dataset loaded from IDX files
// (MNIST / Fashion-MNIST layout), plus a writer for IDX files.
#ifndef TESSERA_CORE_DATASET_H_
#define TESSERA_CORE_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

inline constexpr int kImageDatasetClasses = 10;

struct ImageDataset {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count*rows*cols, row-major per example
  // An int32 images file (IDX type 0x0C: ids beyond 255, for an embedding)
  // fills `ids` instead of `pixels`.
  bool int32_values = false;
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;  // count, each < num_classes
  int num_classes = kImageDatasetClasses;
  int64_t example_size() const { return int64_t(rows) * cols; }
};

// Loads an images file (3-d IDX: count x rows x cols, unsigned bytes or
// int32) and a labels file (1-d IDX: count, unsigned bytes), gzip or plain. max_examples > 0 keeps only the first
// max_examples; max_examples <= 0 keeps all. On failure returns NotFound for a
// missing file; InvalidArgument naming the file for wrong ndims, zero rows,
// cols or count, mismatched counts, or a label >= 10; and whatever
// ReadIdxFile returns for a malformed or truncated file (DataLoss etc.).
StatusOr<ImageDataset> LoadImageDataset(const std::string& images_path, const std::string& labels_path,
                                        int64_t max_examples);

// `dataset` with only the examples `examples` (indexes, strictly
// ascending, each < count), in that order: the training or validation set
// of a split (HoldOut). Moves them down in place, and gives the rest of the
// memory back only when less than half is kept (by a copy of that), so the
// memory it adds for a moment is below half the dataset's.
ImageDataset SelectExamples(ImageDataset dataset, const std::vector<int64_t>& examples);

// The number of examples, reading only the two headers. Fails as
// LoadImageDataset does for header problems; labels are not checked.
StatusOr<int64_t> CountExamples(const std::string& images_path, const std::string& labels_path);

// Writes an unsigned-byte IDX file, gzip-compressed if `path` ends with ".gz",
// atomically: a temp file in the same directory, fsync, rename. On failure
// returns InvalidArgument when dims are not 1..4 values whose product is
// data.size(), NotFound when the directory does not exist, and
// FailedPrecondition or Unavailable for other I/O errors; the temp file is
// removed and `path` is left untouched.
Status WriteIdxFile(const std::string& path, const std::vector<uint32_t>& dims,
                    const std::vector<uint8_t>& data);
// The same for int32 values (IDX type 0x0C, big-endian).
Status WriteIdxInt32File(const std::string& path, const std::vector<uint32_t>& dims,
                         const std::vector<int32_t>& data);

}  // namespace tessera

#endif  // TESSERA_CORE_DATASET_H_
