#include "tools/predict_runner.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_set>

#include "core/file_util.h"
#include "export/model_repository_layout.h"
#include "export/runtime_model.h"
#include "export/task_outputs.h"
#include "tools/predict_source.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

std::string ShapeOf(const std::vector<uint32_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Appends v as the shortest text that reads back as the same float.
void AppendFloat(std::string* out, float v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, ec == std::errc() ? end : buf);
}

}  // namespace

StatusOr<std::string> ResolveModelVersion(const std::string& model_dir, std::vector<std::string>* skipped) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) {
    return NotFoundError(model_dir + " is not a directory (MODEL_DIR is MODEL_REPO/NAME or MODEL_REPO/NAME/VERSION, "
                                     "as tessera export writes them)");
  }
  const std::map<int64_t, std::string> versions = ListVersions(model_dir);
  std::string name = fs::path(model_dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(model_dir).lexically_normal().parent_path().filename().string();
  // A version directory: it holds the files, or it is named as a version
  // and holds no versions itself (then ReadModelVersion says what is missing).
  if (FileExists(ManifestPath(model_dir)) || FileExists(ModelFilePath(model_dir)) ||
      (versions.empty() && ParseVersion(name) > 0)) {
    return model_dir;
  }
  if (versions.empty()) {
    return NotFoundError(model_dir + " holds no model version (VERSION/model.onnx and VERSION/manifest.json, as "
                                     "tessera export writes them)");
  }
  Status newest_error;
  for (auto newest = versions.rbegin(); newest != versions.rend(); ++newest) {
    const auto& [version, dir] = *newest;
    auto files = ReadModelVersion(dir);
    if (files.ok()) return dir;
    if (newest_error.ok()) newest_error = files.status();
    if (skipped != nullptr) skipped->push_back(std::to_string(version) + ": " + files.status().message());
  }
  return newest_error;
}

StatusOr<PredictModel> LoadPredictModel(const std::string& version_dir, Device device) {
  PredictModel loaded;
  ASSIGN_OR_RETURN(loaded.files, ReadModelVersion(version_dir));
  auto model = BuildRuntimeModel(loaded.files.model, device);
  if (!model.ok()) return model.status().WithContext(version_dir);
  loaded.model = std::move(model).value();
  return loaded;
}

StatusOr<PredictInput> LoadPredictInput(const std::string& path, const Shape& model_input) {
  PredictInput input;
  ASSIGN_OR_RETURN(input.images, ReadIdxFile(path));
  const std::vector<uint32_t>& dims = input.images.dims;
  if (dims.size() < 2) {
    return InvalidArgumentError(path + " is not an images file: its IDX shape is " + ShapeOf(dims) +
                                " (a labels file? images are [count, rows, cols])");
  }
  const Shape example = ExampleShape(dims);
  if (example != model_input) {
    return InvalidArgumentError(path + " holds images of " + ShapeText(example) + " (IDX shape " + ShapeOf(dims) +
                                "); the model takes " + ShapeText(model_input));
  }
  input.count = dims[0];
  input.example_size = NumElements(example);
  if (input.count == 0) return InvalidArgumentError(path + " holds no images");
  return input;
}

StatusOr<std::vector<uint8_t>> LoadPredictLabels(const std::string& path, int64_t count, int num_classes) {
  ASSIGN_OR_RETURN(IdxArray labels, ReadIdxFile(path));
  if (labels.type != kIdxUnsignedByte) return InvalidArgumentError(path + ": labels must be unsigned bytes (IDX type 0x08)");
  if (labels.dims.size() != 1) {
    return InvalidArgumentError(path + " is not a labels file: its IDX shape is " + ShapeOf(labels.dims) +
                                " (labels are [count])");
  }
  if (static_cast<int64_t>(labels.dims[0]) != count) {
    return InvalidArgumentError(path + " holds " + std::to_string(labels.dims[0]) + " labels for " +
                                std::to_string(count) + " images");
  }
  for (int64_t i = 0; i < count; ++i) {
    if (labels.data[i] >= num_classes) {
      return InvalidArgumentError(path + ": label " + std::to_string(labels.data[i]) + " of image " +
                                  std::to_string(i) + " is not below the model's " + std::to_string(num_classes) +
                                  " classes");
    }
  }
  return std::move(labels.data);
}

std::string PredictCsvHeader(Task task, int num_classes, bool class_name, bool file) {
  std::string header = task == Task::kBinary ? "index,probability,class" : task == Task::kRegression ? "index,value"
                                                                                                      : "index,class";
  for (int k = 0; task == Task::kMultiClass && k < num_classes; ++k) header += ",prob_" + std::to_string(k);
  if (class_name) header += ",class_name";
  if (file) header += ",file";
  return header + "\n";
}

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field) {
    quoted += c;
    if (c == '"') quoted += '"';
  }
  return quoted + "\"";
}

PixelNormalization PredictPixelNormalization(const InputNormalization& n) {
  // The workers' arithmetic (BatchReader), so that predictions are those of
  // the export's evaluation: in float, x = pixel * a + b with
  // a = 1 / (255 * std) and b = -mean / std. The manifest gives scale as the
  // float 1/255; its inverse is rounded back to the 255 it stands for.
  const double inverse = 1.0 / n.scale;
  const double levels = std::abs(inverse - std::round(inverse)) <= 1e-4 * inverse ? std::round(inverse) : inverse;
  const float mean = static_cast<float>(n.mean), std = static_cast<float>(n.std);
  PixelNormalization out;
  out.a = 1.0f / (static_cast<float>(levels) * std);
  out.b = -mean / std;
  return out;
}

Status ValidatePredictInput(const PredictModel& model, const PredictInput& input, const std::string& path) {
  const PixelNormalization norm = PredictPixelNormalization(model.files.normalization);
  auto check = [&](int64_t i, int64_t value) -> Status {
    const float x = static_cast<float>(value) * norm.a + norm.b;
    if (Status s = model.model->ValidateInputValues(&x, 1); !s.ok()) {
      return InvalidArgumentError(path + ": image " + std::to_string(i / input.example_size) + " holds the value " +
                                  std::to_string(value) + ", which the model cannot take: " + s.message());
    }
    return OkStatus();
  };
  const int64_t n = input.count * input.example_size;
  if (input.images.type == kIdxInt32) {
    // Each distinct value is checked once, where it first occurs.
    std::unordered_set<int32_t> checked;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t value = input.images.ints[i];
      if (checked.insert(value).second) RETURN_IF_ERROR(check(i, value));
    }
    return OkStatus();
  }
  // A byte has 256 values: each is checked once, where it first occurs.
  std::array<bool, 256> checked{};
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t pixel = input.images.data[i];
    if (checked[pixel]) continue;
    checked[pixel] = true;
    RETURN_IF_ERROR(check(i, pixel));
  }
  return OkStatus();
}

namespace {

// Appends one multi-class row's fields after its index: class, the
// probabilities (softmax in double), the class name when `names` is not
// null. Returns the class.
int AppendClassRow(const float* row, int classes, const std::vector<std::string>* names, std::vector<double>* e,
                   std::string* text) {
  const int best = static_cast<int>(std::max_element(row, row + classes) - row);
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += (*e)[k] = std::exp(static_cast<double>(row[k]) - row[best]);
  *text += ',';
  *text += std::to_string(best);
  for (int k = 0; k < classes; ++k) {
    *text += ',';
    AppendFloat(text, static_cast<float>((*e)[k] / sum));
  }
  if (names != nullptr) *text += ',' + CsvField((*names)[best]);
  return best;
}

// Appends one binary row's fields after its index: probability, class, the
// class name when `names` is not null. Returns the probability.
float AppendBinaryRow(float logit, const std::vector<std::string>* names, std::string* text) {
  const float p = SigmoidProbability(logit);
  const int64_t c = BinaryClass(p);
  *text += ',';
  AppendFloat(text, p);
  *text += ',';
  *text += std::to_string(c);
  if (names != nullptr) *text += ',' + CsvField((*names)[c]);
  return p;
}

}  // namespace

Status PredictRange(PredictModel* model, PredictSource* source, const PredictRangeOptions& options, std::FILE* out,
                    std::vector<double>* firsts) {
  const Task task = model->files.preprocessing.task;
  const int outputs_per_row = model->model->num_classes();
  const std::vector<std::string>& names = model->files.preprocessing.class_names;
  const std::vector<std::string>* class_names =
      NamesClasses(model->files.preprocessing, outputs_per_row) ? &names : nullptr;
  const int64_t batch_size = std::max<int64_t>(1, options.batch_size);
  std::vector<float> x;
  std::vector<double> e(outputs_per_row);
  std::string text;
  for (int64_t first = options.begin; first < options.end; first += batch_size) {
    if (options.stop != nullptr && options.stop->load()) return AbortedError("stopped");
    const int64_t count = std::min(batch_size, options.end - first);
    RETURN_IF_ERROR(source->Read(first, count, &x));
    const float* logits = model->model->Infer(x.data(), count);
    if (logits == nullptr) return InternalError("the model gave no logits");
    text.clear();
    for (int64_t r = 0; r < count; ++r) {
      const float* row = logits + r * outputs_per_row;
      text += std::to_string(first + r);
      double headline = row[0];  // a regression's value
      if (task == Task::kMultiClass) {
        headline = AppendClassRow(row, outputs_per_row, class_names, &e, &text);
      } else if (task == Task::kBinary) {
        headline = AppendBinaryRow(row[0], class_names, &text);
      } else {
        text += ',';
        AppendFloat(&text, row[0]);
      }
      if (source->has_names()) text += ',' + CsvField(source->Name(first + r));
      text += '\n';
      if (firsts != nullptr) firsts->push_back(headline);
    }
    if (std::fwrite(text.data(), 1, text.size(), out) != text.size()) {
      return UnavailableError(std::string("cannot write the predictions: ") + std::strerror(errno));
    }
    if (options.on_batch) options.on_batch(first + count - options.begin);
  }
  return OkStatus();
}

Status AppendPredictRows(const std::string& path, int64_t begin, int64_t end, std::FILE* out,
                         std::vector<double>* firsts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return DataLossError("cannot read " + path);
  int64_t expected = begin;
  std::string line;
  while (std::getline(in, line)) {
    // A row without its newline was cut short.
    if (in.eof()) return DataLossError(path + ": row " + std::to_string(expected) + " is incomplete");
    char* rest = nullptr;
    const long long index = std::strtoll(line.c_str(), &rest, 10);
    if (expected >= end || index != expected || *rest != ',') {
      return DataLossError(path + ": expected the row of image " + std::to_string(expected) + ", got '" +
                           line.substr(0, 40) + "'");
    }
    // As a float, as PredictRange gave it: its shortest decimal reads back as that float.
    if (firsts != nullptr) firsts->push_back(std::strtof(rest + 1, nullptr));
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), out) != line.size()) {
      return UnavailableError(std::string("cannot write the predictions: ") + std::strerror(errno));
    }
    ++expected;
  }
  if (in.bad()) return DataLossError("cannot read " + path);
  if (expected != end) {
    return DataLossError(path + " holds the rows of images " + std::to_string(begin) + ".." +
                         std::to_string(expected - 1) + ", not up to " + std::to_string(end - 1));
  }
  return OkStatus();
}

void SetComputeThreads(int threads) {
  if (threads <= 0) return;
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);  // oneDNN's threads
}

}  // namespace tessera
