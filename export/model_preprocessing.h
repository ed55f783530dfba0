// What an exported model's inputs were before the model saw them: the
// manifest's "task", "class_names" and "preprocessing" (docs/FORMATS.md,
// "manifest.json"), so that `tessera predict` and `tessera serve` turn raw
// data into model inputs exactly as training did.
//
//   - IDX (and every manifest written before these fields): the input is
//     the model's own tensor; bytes are normalized with the manifest's
//     top-level "normalization" (export/model_repository_layout.h).
//   - table (CSV/TSV): the feature columns in the model's input order, the
//     numeric ones first: a "numeric" column with its fill value (what an
//     empty field becomes) and its scaling x = (v - shift) * scale, float32
//     arithmetic as training's ReadTableBlock does it; then a "categorical"
//     column (data.table.categorical_columns) with its hash_buckets or its
//     vocabulary, the field -> id mapping training used (core/categorical.h).
//   - image (image folders): width, height, channels (1: gray, 3: RGB in
//     channel order R, G, B), each channel's mean and std, and the resize
//     rule (the centered crop of the target's aspect ratio, resized:
//     core/image_decode.h's ResizeTo), as training's evaluation does it.
//   - libsvm (data.format LIBSVM, a sparse_linear first layer): the features'
//     index range (index_base, num_features), the pairs per example and how
//     labels read, so a line becomes the pairs training's ReadLibsvmBlock
//     and LibsvmBlock::WriteExample make of it.
//   - criteo (data.format CRITEO, a sparse_embedding first layer over a
//     sparse table): a line of Criteo's layout becomes the 13 integer
//     fields' CriteoNumeric and the 26 categorical fields' CriteoId
//     (core/criteo_format.h); each id reads its row of the model's table,
//     zeros when the table holds none. Nothing to record beyond the kind:
//     the layout and the hash are fixed (the manifest states them for
//     readers).
//
// This file owns the fields and their JSON (written and parsed, every value
// of an untrusted file checked); export/input_transform.h applies them.
// Plain values and functions without state: thread-safe.
#ifndef TESSERA_EXPORT_MODEL_PREPROCESSING_H_
#define TESSERA_EXPORT_MODEL_PREPROCESSING_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/categorical.h"
#include "core/json.h"
#include "core/status.h"
#include "core/task.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

enum class InputKind { kIdx, kTable, kImage, kLibsvm, kCriteo };

inline constexpr char kNumericColumn[] = "numeric";
inline constexpr char kCategoricalColumn[] = "categorical";

// One feature column of a table model, in the model's input order.
struct TableColumn {
  std::string name;                   // the header's name; unique, not empty
  std::string kind = kNumericColumn;  // or kCategoricalColumn
  // kind "numeric" only:
  float fill_value = 0;        // an empty field's value, before scaling
  float shift = 0, scale = 1;  // x = (v - shift) * scale; finite
  // kind "categorical" only: its hash_buckets (> 0) or its vocabulary (id
  // k + 1 for vocabulary[k]), as the run stored them (the column index
  // unused), and the field -> id mapping they make, training's own
  // (CategoricalIds; shared, never null for a categorical column).
  proto::CategoricalColumn categorical;
  std::shared_ptr<const CategoricalIds> ids;

  bool is_categorical() const { return kind == kCategoricalColumn; }
};

// A categorical column of the model named `name`, mapping fields as
// `column` (hash_buckets or a vocabulary) does. DataLoss as
// ValidateCategoricalColumn gives it for a column it refuses.
StatusOr<TableColumn> MakeCategoricalTableColumn(const std::string& name, const proto::CategoricalColumn& column);

struct TablePreprocessing {
  std::string format = "csv";  // "csv" or "tsv": the training files' delimiter
  std::string label_column;    // the training files' label column
  std::string scaling = "standardize";  // "standardize" or "none", how shift/scale were found
  std::vector<TableColumn> columns;
};

struct ImagePreprocessing {
  int width = 0, height = 0;  // in [1, 4096]
  int channels = 1;           // 1 (gray) or 3 (RGB)
  std::vector<float> mean, std;  // one per channel; each std > 0

  // The ImageSpec that training's WriteImageExample takes (no augmentation).
  proto::ImageSpec ToImageSpec() const;
};

// A libsvm model's input (core/libsvm_data.h's arithmetic): a line's
// features in file order as (index - index_base, value) float32 pairs, then
// (-1, 0) padding pairs up to `pairs`; values as written.
struct LibsvmPreprocessing {
  int64_t num_features = 1;  // features are [0, num_features); in [1, 2^24]
  int index_base = 1;        // 0 or 1: the file's index of feature 0
  int32_t pairs = 1;         // K of an example's [K, 2]; in [1, kMaxLibsvmNonzeros]
  // How a line's label is read: an integer class id ("class_ids") or -1/+1
  // for classes 0/1 ("signed_binary"), as data.libsvm.labels.
  bool signed_binary = false;
};

struct ModelPreprocessing {
  InputKind kind = InputKind::kIdx;
  // The manifest's "task" (export/task_outputs.h names it): multi-class
  // ("classification", softmax over the classes; what a manifest without
  // it means), binary (one logit, sigmoid) or regression (one value).
  Task task = Task::kMultiClass;
  // One per class (two for a binary model: labels 0 and 1); empty when the
  // manifest names none (old manifests, IDX, regression).
  std::vector<std::string> class_names;
  TablePreprocessing table;  // kind kTable only
  ImagePreprocessing image;  // kind kImage only
  LibsvmPreprocessing libsvm;  // kind kLibsvm only
  // kind kCriteo has no fields: Criteo's layout and CriteoId are fixed.
};

// True when p.class_names names the classes of a model of `num_outputs`
// outputs per example: one name per output (multi-class), two (binary: for
// its one logit); never for a regression. What predict's class_name column
// and serve's class_name output need.
bool NamesClasses(const ModelPreprocessing& p, int num_outputs);

// "idx", "table", "image", "libsvm" or "criteo".
const char* InputKindName(InputKind kind);

// The manifest's "preprocessing" object of `p`.
JsonObject PreprocessingJson(const ModelPreprocessing& p);

// Reads "task", "class_names" and "preprocessing" of a manifest.json (read
// from `path`, which errors name). A manifest without "preprocessing" (one
// written before it existed) is an IDX model's, task classification, no
// class names. InvalidArgument, naming the field, for a value of the wrong
// type or out of range: an unknown task or kind, a column without a name or
// named twice, a non-finite fill, shift or scale, a categorical column
// before a numeric one, without exactly one of hash_buckets (in [1, 2^24 - 1])
// and a vocabulary (non-empty, distinct strings), an image size outside
// [1, 4096], channels not 1 or 3, mean/std not one per channel or std <= 0,
// a libsvm index_base not 0 or 1, num_features or pairs out of range.
StatusOr<ModelPreprocessing> ParseManifestPreprocessing(const std::string& json, const std::string& path);

// OK when `p` fits a model of `input_shape` with `num_classes` outputs (its
// logits or value per example): a table's columns are its [F] features, its
// categorical columns the last ones, one per entry of `categorical_rows`
// (the model's column_embedding tables' rows; empty for a model without),
// each making as many ids (hash_buckets + 1, or the vocabulary's size + 1);
// an image's [C, H, W] its shape; libsvm's pairs its [2 * pairs] input (the
// ONNX graph's, flat) and num_features the rows of its sparse_linear first
// layer (`sparse_features`; 0 for a model without one, which libsvm
// preprocessing does not fit, nor other kinds such a model); criteo's
// [13 + 26] the input (whether the model has a sparse table the caller
// checks); the class
// names (when given) one per class (a binary model: two, for its one logit;
// a regression: none). InvalidArgument naming `path`.
Status CheckPreprocessingFitsModel(const ModelPreprocessing& p, const std::vector<int64_t>& input_shape,
                                   int num_classes, const std::vector<int64_t>& categorical_rows,
                                   const std::string& path, int64_t sparse_features = 0);

}  // namespace tessera

#endif  // TESSERA_EXPORT_MODEL_PREPROCESSING_H_
