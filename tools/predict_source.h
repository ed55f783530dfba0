// The examples `tessera predict` runs, whatever INPUT is, made into the
// model's inputs as training made them (export/input_transform.h):
//   - an IDX images file for an IDX model (PredictInput, predict_runner.h),
//     normalized with the manifest's normalization;
//   - a CSV or TSV file with a header for a table model: its columns found
//     by name (extra ones ignored), an empty field the column's fill value,
//     then the recorded scaling; a categorical column's field its id by the
//     recorded hashing or vocabulary (an empty field: 0); the label column, when the file has it,
//     gives each row's label (for the summary's accuracy, AUC or RMSE).
//     The delimiter is a tab for a name ending in .tsv or .tsv.gz, a comma
//     for .csv or .csv.gz, and otherwise the model's training format's.
//     Checked whole when opened,
//     so every mistake is found before anything runs, then read again a
//     batch at a time (memory holds a batch, not the file);
//   - for an image model, one PNG or JPEG file, or a folder: DIR/CLASS/IMAGE
//     when DIR holds folders (as training's image folders; each CLASS must
//     be one of the model's classes, and gives the images' class), else the
//     images directly in DIR; either way sorted bytewise, names starting
//     with '.' skipped, other files ignored. Images are decoded when a batch
//     reads them.
//   - a libsvm/svmlight file (plain or gzip; core/libsvm_reader.h) for a
//     libsvm model: each line's features made into the model's pairs as
//     training made them, its label (a class, or -1/+1 for signed_binary
//     labels) giving the summary's accuracy or AUC. Checked whole when
//     opened (an index outside the model's features or more features than
//     its pairs is one line naming FILE:LINE), then read again a batch at a
//     time.
// Example i is the same whichever process opens the input, so --workers
// children each read their own range of it.
// A source is used from one thread at a time.
#ifndef TESSERA_TOOLS_PREDICT_SOURCE_H_
#define TESSERA_TOOLS_PREDICT_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "tools/predict_runner.h"

namespace tessera {

class PredictSource {
 public:
  virtual ~PredictSource() = default;
  virtual int64_t count() const = 0;
  // Writes the model inputs of examples [first, first + n) into *x.
  // InvalidArgument naming the file for an image that does not decode.
  virtual Status Read(int64_t first, int64_t n, std::vector<float>* x) = 0;
  // The examples' own labels (a table's label column: class ids, 0 or 1 for
  // a binary model, a regression's values; class folders), one per
  // example; empty when the input gives none.
  const std::vector<float>& labels() const { return labels_; }
  // Example i's file, relative to the input (image folders); "" otherwise.
  virtual std::string Name(int64_t /*i*/) const { return ""; }
  // True when Name gives the examples' files (the CSV gets a "file" column).
  virtual bool has_names() const { return false; }

 protected:
  std::vector<float> labels_;
};

// Opens `path` as the input of `model`, by the model's preprocessing kind.
// `checked_rows` > 0 (a --workers child, whose parent checked the input
// whole): a table is not checked again, and is taken to hold that many rows
// (a file that turns out shorter is DataLoss when read; its labels are then
// not known); other inputs ignore it.
// InvalidArgument, one line naming the file (and line and column) with what
// was expected and what was found, for an input the model cannot take: a
// missing column, a field that is not a number, a label that is not one of
// the model's classes, a folder without images or a class folder the model
// does not know; NotFound for a missing file.
StatusOr<std::unique_ptr<PredictSource>> OpenPredictSource(const std::string& path, const PredictModel& model,
                                                           int64_t checked_rows = 0);

}  // namespace tessera

#endif  // TESSERA_TOOLS_PREDICT_SOURCE_H_
