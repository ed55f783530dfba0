#include "export/input_transform.h"

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
