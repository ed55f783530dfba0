#include "tools/predict_source.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/byte_source.h"
#include "core/csv_reader.h"
#include "core/file_util.h"
#include "core/image_folder.h"
#include "core/image_folder_data.h"
#include "core/libsvm_reader.h"
#include "export/input_transform.h"
#include "tools/predict_criteo_source.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

bool EndsWith(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// An IDX images file, normalized as PredictRange always did.
class IdxSource : public PredictSource {
 public:
  IdxSource(PredictInput input, PixelNormalization norm) : input_(std::move(input)), norm_(norm) {}
  int64_t count() const override { return input_.count; }
  Status Read(int64_t first, int64_t n, std::vector<float>* x) override {
    const int64_t size = input_.example_size;
    x->resize(n * size);
    if (input_.images.type == kIdxInt32) {
      const int32_t* values = input_.images.ints.data() + first * size;
      for (int64_t i = 0; i < n * size; ++i) (*x)[i] = static_cast<float>(values[i]) * norm_.a + norm_.b;
    } else {
      const uint8_t* pixels = input_.images.data.data() + first * size;
      for (int64_t i = 0; i < n * size; ++i) (*x)[i] = static_cast<float>(pixels[i]) * norm_.a + norm_.b;
    }
    return OkStatus();
  }

 private:
  const PredictInput input_;
  const PixelNormalization norm_;
};

// The class in `field` of the label column: an integer in [0, classes).
StatusOr<int> ParseClass(std::string_view field, int classes) {
  int value = -1;
  const char* end = field.data() + field.size();
  auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end || value < 0 || value >= classes) {
    return InvalidArgumentError("expected a class id, an integer in [0, " + std::to_string(classes) + "), got " +
                                QuoteForMessage(field));
  }
  return value;
}

// The label in `field` of the label column as `task` reads it: a class id
// in [0, classes) (binary: 0 or 1), or a regression's finite number.
StatusOr<float> ParseLabel(std::string_view field, Task task, int classes) {
  if (task != Task::kRegression) {
    ASSIGN_OR_RETURN(const int c, ParseClass(field, task == Task::kBinary ? 2 : classes));
    return static_cast<float>(c);
  }
  float value = 0;
  const char* end = field.data() + field.size();
  auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return InvalidArgumentError("expected a number, got " + QuoteForMessage(field));
  }
  return value;
}

CsvOptions TableInputOptions(const std::string& path, const TablePreprocessing& table) {
  CsvOptions options;
  const bool tsv = EndsWith(path, ".tsv") || EndsWith(path, ".tsv.gz");
  const bool csv = EndsWith(path, ".csv") || EndsWith(path, ".csv.gz");
  options.delimiter = tsv || (!csv && table.format == "tsv") ? '\t' : ',';
  return options;
}

// A CSV/TSV file, checked whole when opened (every record's features and
// label), then read again record by record as batches ask for them, so
// memory holds one batch, not the file.
class TableSource : public PredictSource {
 public:
  static StatusOr<std::unique_ptr<PredictSource>> Open(const std::string& path, const PredictModel& model,
                                                       int64_t checked_rows);
  int64_t count() const override { return count_; }
  Status Read(int64_t first, int64_t n, std::vector<float>* x) override;

 private:
  TableSource(std::string path, TablePreprocessing table, Task task, int classes)
      : path_(std::move(path)), table_(std::move(table)), task_(task), classes_(classes) {}
  // Opens the file from its start; the header must map as when checked.
  Status Rewind();
  // The next record's features into out[features] and, when the file has
  // the label column, its label into *label; false at the end of the file.
  StatusOr<bool> ParseNext(float* out, float* label);
  // ParseNext for a record the check found: DataLoss when the file ends first.
  Status ParseKnown(float* out);

  const std::string path_;
  const TablePreprocessing table_;
  const Task task_;  // how the label column is read
  const int classes_;
  std::unique_ptr<CsvReader> reader_;
  TableHeaderMap map_;
  CsvRecord record_;
  int64_t next_ = 0;  // the record reader_ reads next
  int64_t count_ = 0;
};

Status TableSource::Rewind() {
  ASSIGN_OR_RETURN(reader_, CsvReader::Open(path_, TableInputOptions(path_, table_)));
  ASSIGN_OR_RETURN(map_, MapTableHeader(table_, reader_->Columns(), path_));
  next_ = 0;
  return OkStatus();
}

StatusOr<bool> TableSource::ParseNext(float* out, float* label) {
  ASSIGN_OR_RETURN(const bool more, reader_->Next(&record_));
  if (!more) return false;
  for (size_t f = 0; f < table_.columns.size(); ++f) {
    const TableColumn& column = table_.columns[f];
    if (column.is_categorical()) {
      out[f] = CategoricalFeature(column, record_.fields[map_.features[f]]);
      continue;
    }
    ASSIGN_OR_RETURN(const std::optional<float> v, reader_->ParseFloat(record_, map_.features[f]));
    out[f] = TableFeature(column, v);
  }
  if (map_.label >= 0) {
    auto parsed = ParseLabel(record_.fields[map_.label], task_, classes_);
    if (!parsed.ok()) {
      return parsed.status().WithContext(reader_->Place(record_) + ": column " + QuoteForMessage(table_.label_column) +
                                         " (the label)");
    }
    *label = *parsed;
  }
  ++next_;
  return true;
}

Status TableSource::ParseKnown(float* out) {
  float label = 0;
  ASSIGN_OR_RETURN(const bool more, ParseNext(out, &label));
  if (!more) return DataLossError(path_ + " ends before row " + std::to_string(next_) + ", which it held when checked");
  return OkStatus();
}

Status TableSource::Read(int64_t first, int64_t n, std::vector<float>* x) {
  const size_t features = table_.columns.size();
  if (first < next_) RETURN_IF_ERROR(Rewind());  // batches go forward; anything else starts again
  // Records before `first` are passed over unparsed (they were checked when opened).
  while (next_ < first) {
    ASSIGN_OR_RETURN(const bool more, reader_->Next(&record_));
    if (!more) return DataLossError(path_ + " ends before row " + std::to_string(next_) + ", which it held when checked");
    ++next_;
  }
  x->resize(static_cast<size_t>(n) * features);
  for (int64_t r = 0; r < n; ++r) RETURN_IF_ERROR(ParseKnown(x->data() + r * features));
  return OkStatus();
}

StatusOr<std::unique_ptr<PredictSource>> TableSource::Open(const std::string& path, const PredictModel& model,
                                                           int64_t checked_rows) {
  std::unique_ptr<TableSource> source(
      new TableSource(path, model.files.preprocessing.table, model.files.preprocessing.task,
                      model.model->num_classes()));
  RETURN_IF_ERROR(source->Rewind());
  if (checked_rows > 0) {
    source->count_ = checked_rows;
    return std::unique_ptr<PredictSource>(std::move(source));
  }
  std::vector<float> features(source->table_.columns.size());
  float label = 0;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, source->ParseNext(features.data(), &label));
    if (!more) break;
    if (source->map_.label >= 0) source->labels_.push_back(label);
    ++source->count_;
  }
  if (source->count_ == 0) return InvalidArgumentError(path + " holds no rows after its header");
  RETURN_IF_ERROR(source->Rewind());
  return std::unique_ptr<PredictSource>(std::move(source));
}

// A libsvm/svmlight file (plain or gzip), checked whole when opened (every
// line's features and label), then read again line by line as batches ask
// for them, as TableSource.
class LibsvmSource : public PredictSource {
 public:
  static StatusOr<std::unique_ptr<PredictSource>> Open(const std::string& path, const PredictModel& model,
                                                       int64_t checked_rows);
  int64_t count() const override { return count_; }
  Status Read(int64_t first, int64_t n, std::vector<float>* x) override;

 private:
  LibsvmSource(std::string path, LibsvmPreprocessing libsvm, int classes)
      : path_(std::move(path)), libsvm_(libsvm), classes_(classes) {}
  Status Rewind();
  // The next line's pairs into out[2 * pairs] and its class into *label;
  // false at the end of the file.
  StatusOr<bool> ParseNext(float* out, int* label);
  // ParseNext for a line the check found: DataLoss when the file ends first.
  Status ParseKnown(float* out);

  const std::string path_;
  const LibsvmPreprocessing libsvm_;
  const int classes_;  // of the labels: 2 for a binary model
  std::unique_ptr<LibsvmReader> reader_;
  LibsvmRecord record_;
  int64_t next_ = 0;  // the line reader_ reads next, counting records only
  int64_t count_ = 0;
};

Status LibsvmSource::Rewind() {
  ASSIGN_OR_RETURN(reader_, LibsvmReader::Open(path_));
  next_ = 0;
  return OkStatus();
}

StatusOr<bool> LibsvmSource::ParseNext(float* out, int* label) {
  ASSIGN_OR_RETURN(const bool more, reader_->Next(&record_));
  if (!more) return false;
  const std::string where = reader_->Where(record_);
  RETURN_IF_ERROR(LibsvmFeaturesToExample(libsvm_, record_.features, where, out));
  ASSIGN_OR_RETURN(*label, LibsvmLabelClass(libsvm_, record_.label, classes_, where));
  ++next_;
  return true;
}

Status LibsvmSource::ParseKnown(float* out) {
  int label = 0;
  ASSIGN_OR_RETURN(const bool more, ParseNext(out, &label));
  if (!more) return DataLossError(path_ + " ends before record " + std::to_string(next_) + ", which it held when checked");
  return OkStatus();
}

Status LibsvmSource::Read(int64_t first, int64_t n, std::vector<float>* x) {
  const int64_t size = 2 * static_cast<int64_t>(libsvm_.pairs);
  if (first < next_) RETURN_IF_ERROR(Rewind());  // batches go forward; anything else starts again
  std::vector<float> passed_over(size);           // the lines before `first`, read and dropped
  while (next_ < first) RETURN_IF_ERROR(ParseKnown(passed_over.data()));
  x->resize(static_cast<size_t>(n * size));
  for (int64_t r = 0; r < n; ++r) RETURN_IF_ERROR(ParseKnown(x->data() + r * size));
  return OkStatus();
}

StatusOr<std::unique_ptr<PredictSource>> LibsvmSource::Open(const std::string& path, const PredictModel& model,
                                                            int64_t checked_rows) {
  const ModelPreprocessing& p = model.files.preprocessing;
  std::unique_ptr<LibsvmSource> source(
      new LibsvmSource(path, p.libsvm, p.task == Task::kBinary ? 2 : model.model->num_classes()));
  RETURN_IF_ERROR(source->Rewind());
  if (checked_rows > 0) {
    source->count_ = checked_rows;
    return std::unique_ptr<PredictSource>(std::move(source));
  }
  std::vector<float> pairs(2 * static_cast<size_t>(p.libsvm.pairs));
  int label = 0;
  while (true) {
    ASSIGN_OR_RETURN(const bool more, source->ParseNext(pairs.data(), &label));
    if (!more) break;
    source->labels_.push_back(static_cast<float>(label));
    ++source->count_;
  }
  if (source->count_ == 0) return InvalidArgumentError(path + " holds no libsvm lines");
  RETURN_IF_ERROR(source->Rewind());
  return std::unique_ptr<PredictSource>(std::move(source));
}

// Image files, decoded when read.
class ImageSource : public PredictSource {
 public:
  ImageSource(ImagePreprocessing image, std::string dir, std::vector<std::string> names, std::vector<float> labels)
      : image_(std::move(image)), dir_(std::move(dir)), names_(std::move(names)) {
    labels_ = std::move(labels);
  }
  int64_t count() const override { return static_cast<int64_t>(names_.size()); }
  Status Read(int64_t first, int64_t n, std::vector<float>* x) override {
    const int64_t size = ImageExampleValues(image_);
    x->resize(n * size);
    for (int64_t i = 0; i < n; ++i) {
      const std::string path = Path(first + i);
      ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
      RETURN_IF_ERROR(ImageBytesToExample(image_, path, bytes, x->data() + i * size));
    }
    return OkStatus();
  }
  std::string Name(int64_t i) const override { return names_[i]; }
  bool has_names() const override { return true; }

 private:
  std::string Path(int64_t i) const { return dir_.empty() ? names_[i] : dir_ + "/" + names_[i]; }

  const ImagePreprocessing image_;
  const std::string dir_;
  const std::vector<std::string> names_;
};

// A file name the CSV's file column can hold on one line.
Status CheckPrintableName(const std::string& dir, const std::string& name) {
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return InvalidArgumentError(dir + ": the name of " + QuoteForMessage(name) +
                                  " holds a control character; expected a name the predictions' file column can hold");
    }
  }
  return OkStatus();
}

bool HasImageExtension(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return EndsWith(lower, ".png") || EndsWith(lower, ".jpg") || EndsWith(lower, ".jpeg");
}

// True when `dir` holds a folder whose name does not start with '.'.
bool HoldsClassFolders(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) return true;
  }
  return false;
}

// The images directly in `dir`, sorted bytewise.
StatusOr<std::vector<std::string>> ListLooseImages(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec, entry_ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !HasImageExtension(name)) continue;
    if (!entry.is_regular_file(entry_ec)) return InvalidArgumentError(dir + "/" + name + ": expected an image file, found "
                                                                "something else (a broken link?)");
    RETURN_IF_ERROR(CheckPrintableName(dir, name));
    names.push_back(name);
  }
  if (ec) return FailedPreconditionError("cannot read the folder " + dir + ": " + ec.message());
  if (names.empty()) {
    return InvalidArgumentError(dir + ": expected images (.png, .jpg, .jpeg) or class folders of them, found none");
  }
  std::sort(names.begin(), names.end());
  return names;
}

StatusOr<std::unique_ptr<PredictSource>> OpenImageSource(const std::string& path, const PredictModel& model) {
  const ModelPreprocessing& p = model.files.preprocessing;
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError(path + " does not exist");
  if (!fs::is_directory(path, ec)) {
    RETURN_IF_ERROR(CheckPrintableName(fs::path(path).parent_path().string(), path));
    return std::unique_ptr<PredictSource>(new ImageSource(p.image, "", {path}, {}));
  }
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (!HoldsClassFolders(dir)) {
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListLooseImages(dir));
    return std::unique_ptr<PredictSource>(new ImageSource(p.image, dir, std::move(names), {}));
  }
  ImageFolderOptions options;
  options.class_names = p.class_names;
  if (options.class_names.empty()) {
    for (int c = 0; c < model.model->num_classes(); ++c) options.class_names.push_back(std::to_string(c));
  }
  ASSIGN_OR_RETURN(ImageFolderListing listing, ListImageFolder(dir, options));
  std::vector<std::string> names;
  std::vector<float> labels;
  for (const ImageFolderEntry& e : listing.images) {
    RETURN_IF_ERROR(CheckPrintableName(dir, e.name));
    names.push_back(e.name);
    labels.push_back(e.label);
  }
  if (names.empty()) return InvalidArgumentError(dir + ": expected images in its class folders, found none");
  return std::unique_ptr<PredictSource>(new ImageSource(p.image, dir, std::move(names), std::move(labels)));
}

}  // namespace

StatusOr<std::unique_ptr<PredictSource>> OpenPredictSource(const std::string& path, const PredictModel& model,
                                                           int64_t checked_rows) {
  switch (model.files.preprocessing.kind) {
    case InputKind::kTable: return TableSource::Open(path, model, checked_rows);
    case InputKind::kImage: return OpenImageSource(path, model);
    case InputKind::kLibsvm: return LibsvmSource::Open(path, model, checked_rows);
    case InputKind::kCriteo: return OpenCriteoSource(path, model);
    case InputKind::kIdx: break;
  }
  ASSIGN_OR_RETURN(PredictInput input, LoadPredictInput(path, model.files.model.input_shape));
  RETURN_IF_ERROR(ValidatePredictInput(model, input, path));
  return std::unique_ptr<PredictSource>(
      new IdxSource(std::move(input), PredictPixelNormalization(model.files.normalization)));
}

}  // namespace tessera
