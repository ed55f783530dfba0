// Raw data into an exported model's input, by the manifest's preprocessing
// (export/model_preprocessing.h), with the same arithmetic training used, so
// that `tessera predict` (a CSV file, image files) and `tessera serve` (JSON
// values, encoded images) give the model the very bits training's
// evaluation gave it:
//   - a table field: parsed as training parses it (ParseFloatField: text to
//     float32 directly), an empty one replaced by the column's fill value,
//     then (v - shift) * scale in float32, as ReadTableBlock does; a
//     categorical field (its bytes as they are) its id by the column's
//     hashing or vocabulary, training's own CategoricalIds (an empty field
//     0), as ReadTableBlock does;
//   - an image: decoded by DecodeImage with default options and made into
//     [C, H, W] floats by WriteImageExample without augmentation, as
//     ImageFolderExampleReader's test split does;
//   - a libsvm line's features: (index - index_base, value) float32 pairs
//     in file order, then (-1, 0) padding pairs, as ReadLibsvmBlock and
//     LibsvmBlock::WriteExample make them.
// Functions without state: thread-safe.
#ifndef TESSERA_EXPORT_INPUT_TRANSFORM_H_
#define TESSERA_EXPORT_INPUT_TRANSFORM_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/libsvm_reader.h"
#include "core/status.h"
#include "export/model_preprocessing.h"

namespace tessera {

// One feature of a table model: v (nullopt for a missing value) made into
// the model's input. Inline so that predict and serve share one expression.
inline float TableFeature(const TableColumn& column, std::optional<float> v) {
  return (v.value_or(column.fill_value) - column.shift) * column.scale;
}

// One categorical feature of a table model: `field`'s id, as a float (ids
// are below 2^24, exact). REQUIRES: column.is_categorical().
inline float CategoricalFeature(const TableColumn& column, std::string_view field) {
  return static_cast<float>(column.ids->Id(field));
}

// Where a file's header has the model's columns.
struct TableHeaderMap {
  std::vector<int> features;  // by model column: the header index
  int label = -1;             // the label column's header index; -1 when absent
};

// Finds each of `table`'s columns in `header` by name (extra columns are
// ignored; the label column is optional). InvalidArgument naming `path`,
// the first missing column and its position among the model's features.
StatusOr<TableHeaderMap> MapTableHeader(const TablePreprocessing& table, const std::vector<std::string>& header,
                                        const std::string& path);

// Decodes `bytes` (a PNG or JPEG file; `name` starts every error message)
// and writes ImageExampleValues floats of the model's input at `out`.
// InvalidArgument for bytes that are not a whole PNG or JPEG (DecodeImage's
// one line), or an image of more than `max_pixels` pixels (checked from the
// header, before any pixel is decoded; default: training's limit,
// kDefaultMaxImagePixels). The limit only refuses: an image within it
// decodes to the same bits whatever the limit.
Status ImageBytesToExample(const ImagePreprocessing& image, std::string_view name, std::string_view bytes, float* out,
                           int64_t max_pixels = int64_t{1} << 26);

// Writes a libsvm line's `features` as the model's 2 * libsvm.pairs input
// floats at `out`. InvalidArgument starting with `where` (predict: FILE:LINE)
// for more than libsvm.pairs features, an index below index_base or at
// index_base + num_features or beyond, or indexes that do not strictly
// increase (LibsvmReader guarantees that of a file's lines); training
// refuses such a line too.
Status LibsvmFeaturesToExample(const LibsvmPreprocessing& libsvm, const std::vector<LibsvmFeature>& features,
                               const std::string& where, float* out);

// A libsvm line's label as training reads it (data.libsvm.labels): an
// integer class id in [0, classes), or -1 (class 0) and +1 (class 1) for
// signed_binary. InvalidArgument starting with `where` otherwise.
StatusOr<int> LibsvmLabelClass(const LibsvmPreprocessing& libsvm, float label, int classes, const std::string& where);

// The values of one example: channels * height * width.
int64_t ImageExampleValues(const ImagePreprocessing& image);

}  // namespace tessera

#endif  // TESSERA_EXPORT_INPUT_TRANSFORM_H_
