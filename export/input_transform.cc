#include "export/input_transform.h"

#include <cmath>

#include "core/image_decode.h"
#include "core/image_folder_data.h"

static_assert(tessera::kDefaultMaxImagePixels == (int64_t{1} << 26), "input_transform.h's default limit");

namespace tessera {
namespace {

// "a, b, c" (at most 10 names), for a message.
std::string HeaderText(const std::vector<std::string>& header) {
  std::string text;
  for (size_t i = 0; i < header.size() && i < 10; ++i) text += (i > 0 ? ", " : "") + header[i].substr(0, 40);
  if (header.size() > 10) text += ", ... (" + std::to_string(header.size()) + " columns)";
  return text;
}

}  // namespace

StatusOr<TableHeaderMap> MapTableHeader(const TablePreprocessing& table, const std::vector<std::string>& header,
                                        const std::string& path) {
  TableHeaderMap map;
  const auto find = [&](const std::string& name) {
    for (size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return static_cast<int>(i);
    }
    return -1;
  };
  for (size_t f = 0; f < table.columns.size(); ++f) {
    const int index = find(table.columns[f].name);
    if (index < 0) {
      return InvalidArgumentError(path + ": no column '" + table.columns[f].name + "' (feature " + std::to_string(f) +
                                  " of the model's " + std::to_string(table.columns.size()) +
                                  "); the header has " + HeaderText(header));
    }
    map.features.push_back(index);
  }
  map.label = find(table.label_column);
  return map;
}

Status LibsvmFeaturesToExample(const LibsvmPreprocessing& libsvm, const std::vector<LibsvmFeature>& features,
                               const std::string& where, float* out) {
  if (features.size() > static_cast<size_t>(libsvm.pairs)) {
    return InvalidArgumentError(where + ": " + std::to_string(features.size()) + " features: expected at most " +
                                std::to_string(libsvm.pairs) + " (the model's pairs per example)");
  }
  const uint64_t base = static_cast<uint64_t>(libsvm.index_base);
  const uint64_t end = base + static_cast<uint64_t>(libsvm.num_features);
  for (size_t k = 0; k < features.size(); ++k) {
    const uint64_t index = features[k].index;
    if (index < base || index >= end) {
      return InvalidArgumentError(where + ": feature index " + std::to_string(index) + ": expected in [" +
                                  std::to_string(base) + ", " + std::to_string(end) + ") (the model's " +
                                  std::to_string(libsvm.num_features) + " features, index_base " +
                                  std::to_string(base) + ")");
    }
    if (k > 0 && index <= features[k - 1].index) {
      return InvalidArgumentError(where + ": feature index " + std::to_string(index) + " after " +
                                  std::to_string(features[k - 1].index) + ": expected indexes that strictly increase");
    }
    out[2 * k] = static_cast<float>(index - base);  // exact: below 2^24
    out[2 * k + 1] = features[k].value;
  }
  for (int64_t k = static_cast<int64_t>(features.size()); k < libsvm.pairs; ++k) {
    out[2 * k] = -1.0f;  // padding, as LibsvmBlock::WriteExample
    out[2 * k + 1] = 0.0f;
  }
  return OkStatus();
}

StatusOr<int> LibsvmLabelClass(const LibsvmPreprocessing& libsvm, float label, int classes, const std::string& where) {
  if (libsvm.signed_binary) {
    if (label == -1.0f || label == 1.0f) return label > 0 ? 1 : 0;
    return InvalidArgumentError(where + ": label " + std::to_string(label) + ": expected -1 or +1 (the model's labels are "
                                "signed_binary)");
  }
  if (label >= 0 && label < static_cast<float>(classes) && std::floor(label) == label) return static_cast<int>(label);
  return InvalidArgumentError(where + ": label " + std::to_string(label) + ": expected a class id, an integer in [0, " +
                              std::to_string(classes) + ")");
}

int64_t ImageExampleValues(const ImagePreprocessing& image) {
  return static_cast<int64_t>(image.channels) * image.height * image.width;
}

Status ImageBytesToExample(const ImagePreprocessing& image, std::string_view name, std::string_view bytes, float* out,
                           int64_t max_pixels) {
  DecodeOptions options;  // full size, as training decodes
  options.max_pixels = max_pixels;
  ASSIGN_OR_RETURN(const Image decoded, DecodeImage(name, bytes, options));
  WriteImageExample(decoded, image.ToImageSpec(), std::nullopt, out);
  return OkStatus();
}

}  // namespace tessera
