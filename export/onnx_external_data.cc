#include "export/onnx_external_data.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "core/file_util.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

void AddEntry(onnx::TensorProto* t, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = t->add_external_data();
  entry->set_key(key);
  entry->set_value(value);
}

// Bytes per element of the fixed-size types an initializer may have here;
// 0 for any other (strings, complex, unknown).
uint64_t ElementBytes(int type) {
  switch (type) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
      return 4;
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
    case onnx::TensorProto::DOUBLE:
      return 8;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
      return 2;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
      return 1;
    default:
      return 0;
  }
}

// The bytes `t`'s dims and type take; nullopt for a type without a fixed
// size, a negative dim or a size past 2^62.
std::optional<uint64_t> TensorBytes(const onnx::TensorProto& t) {
  uint64_t bytes = ElementBytes(t.data_type());
  if (bytes == 0) return std::nullopt;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && bytes > (uint64_t{1} << 62) / static_cast<uint64_t>(d))) return std::nullopt;
    bytes *= static_cast<uint64_t>(d);
  }
  return bytes;
}

std::optional<uint64_t> ParseDecimal(const std::string& text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Where an external tensor's bytes are, checked against the file.
struct ExternalPlace {
  std::string path;
  uint64_t offset = 0, length = 0;
};

// The file `location` names in model_dir, refused when it is not a
// relative path that stays inside model_dir (links resolved).
StatusOr<std::string> ResolveLocation(const std::string& location, const std::string& model_dir,
                                      const std::string& where) {
  const fs::path relative(location);
  if (location.empty() || relative.is_absolute() || relative.has_root_name()) {
    return InvalidArgumentError(where + ": external data location '" + location +
                                "' must be a relative path inside the model's directory");
  }
  for (const fs::path& part : relative) {
    if (part == "..") {
      return InvalidArgumentError(where + ": external data location '" + location +
                                  "' leaves the model's directory ('..')");
    }
  }
  std::error_code ec;
  const fs::path dir = fs::canonical(model_dir, ec);
  if (ec) return InvalidArgumentError(where + ": cannot read the model's directory " + model_dir);
  const fs::path file = fs::canonical(dir / relative, ec);
  if (ec) return InvalidArgumentError(where + ": external data file " + (dir / relative).string() + " does not exist");
  const std::string dir_text = dir.string() + "/", file_text = file.string();
  if (file_text.compare(0, dir_text.size(), dir_text) != 0) {
    return InvalidArgumentError(where + ": external data location '" + location + "' resolves to " + file_text +
                                ", outside the model's directory");
  }
  if (!fs::is_regular_file(file, ec)) {
    return InvalidArgumentError(where + ": external data " + file_text + " is not a regular file");
  }
  return file_text;
}

StatusOr<ExternalPlace> PlaceOf(const onnx::TensorProto& t, const std::string& model_dir, const std::string& where) {
  std::optional<std::string> location;
  std::optional<uint64_t> offset, length;
  for (const onnx::StringStringEntryProto& entry : t.external_data()) {
    const std::string& key = entry.key();
    if (key == "location") {
      location = entry.value();
    } else if (key == "offset" || key == "length") {
      std::optional<uint64_t> value = ParseDecimal(entry.value());
      if (!value) {
        return InvalidArgumentError(where + ": external data " + key + " '" + entry.value() +
                                    "' is not a decimal byte count");
      }
      (key == "offset" ? offset : length) = value;
    } else if (key != "checksum") {
      return InvalidArgumentError(where + ": unknown external data key '" + key +
                                  "' (expected location, offset, length)");
    }
  }
  if (!location) return InvalidArgumentError(where + ": external data without a location");
  const std::optional<uint64_t> expected = TensorBytes(t);
  if (!expected) return InvalidArgumentError(where + ": external data of a type or dims without a fixed size");
  ExternalPlace place;
  ASSIGN_OR_RETURN(place.path, ResolveLocation(*location, model_dir, where));
  place.offset = offset.value_or(0);
  place.length = length.value_or(*expected);
  if (place.length != *expected) {
    return InvalidArgumentError(where + ": external data length " + std::to_string(place.length) +
                                ", expected " + std::to_string(*expected) + " bytes for its dims and type");
  }
  std::error_code ec;
  const uint64_t file_bytes = fs::file_size(place.path, ec);
  if (ec) return InvalidArgumentError(where + ": cannot read the size of " + place.path);
  if (place.offset > file_bytes || place.length > file_bytes - place.offset) {
    return InvalidArgumentError(where + ": external data bytes [" + std::to_string(place.offset) + ", " +
                                std::to_string(place.offset) + " + " + std::to_string(place.length) +
                                ") lie past the end of " +
                                place.path + " (" + std::to_string(file_bytes) + " bytes; truncated?)");
  }
  return place;
}

Status ReadPlace(const ExternalPlace& place, const std::string& where, std::string* bytes) {
  File f(std::fopen(place.path.c_str(), "rb"));
  if (f == nullptr) return InvalidArgumentError(where + ": cannot open " + place.path + ": " + std::strerror(errno));
  if (std::fseek(f.get(), static_cast<long>(place.offset), SEEK_SET) != 0) {
    return InvalidArgumentError(where + ": cannot seek in " + place.path);
  }
  bytes->resize(place.length);
  if (place.length > 0 && std::fread(bytes->data(), 1, place.length, f.get()) != place.length) {
    return InvalidArgumentError(where + ": " + place.path + " ended before its " + std::to_string(place.length) +
                                " bytes (changed while reading?)");
  }
  return OkStatus();
}

}  // namespace

uint64_t MoveInitializersToExternalData(onnx::ModelProto* model, uint64_t threshold,
                                        std::vector<std::string>* pieces) {
  onnx::GraphProto* graph = model->mutable_graph();
  uint64_t inline_bytes = 0;
  std::vector<int> by_size;
  for (int i = 0; i < graph->initializer_size(); ++i) {
    inline_bytes += graph->initializer(i).raw_data().size();
    by_size.push_back(i);
  }
  // Largest first; ties in graph order, so the file is the same every time.
  std::stable_sort(by_size.begin(), by_size.end(), [&](int a, int b) {
    return graph->initializer(a).raw_data().size() > graph->initializer(b).raw_data().size();
  });
  uint64_t offset = 0;
  for (int i : by_size) {
    if (inline_bytes <= threshold) break;
    onnx::TensorProto* t = graph->mutable_initializer(i);
    const uint64_t length = t->raw_data().size();
    pieces->push_back(std::move(*t->mutable_raw_data()));
    t->clear_raw_data();
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    AddEntry(t, "location", kExternalDataFileName);
    AddEntry(t, "offset", std::to_string(offset));
    AddEntry(t, "length", std::to_string(length));
    offset += length;
    inline_bytes -= length;
  }
  return offset;
}

Status WriteExternalDataFile(const std::string& path, const std::vector<std::string>& pieces) {
  File f(std::fopen(path.c_str(), "wbx"));
  if (f == nullptr) return UnavailableError("cannot create " + path + ": " + std::strerror(errno));
  for (const std::string& piece : pieces) {
    if (!piece.empty() && std::fwrite(piece.data(), 1, piece.size(), f.get()) != piece.size()) {
      return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
    }
  }
  if (std::fflush(f.get()) != 0 || ::fsync(fileno(f.get())) != 0) {
    return UnavailableError("cannot sync " + path + ": " + std::strerror(errno));
  }
  return OkStatus();
}

Status LoadExternalData(onnx::ModelProto* model, const std::string& model_dir) {
  onnx::GraphProto* graph = model->mutable_graph();
  for (int i = 0; i < graph->initializer_size(); ++i) {
    onnx::TensorProto* t = graph->mutable_initializer(i);
    if (t->data_location() != onnx::TensorProto::EXTERNAL) continue;
    const std::string where = "initializer '" + t->name() + "'";
    ASSIGN_OR_RETURN(const ExternalPlace place, PlaceOf(*t, model_dir, where));
    std::string bytes;
    RETURN_IF_ERROR(ReadPlace(place, where, &bytes));
    t->clear_external_data();
    t->clear_data_location();
    t->set_raw_data(std::move(bytes));
  }
  return OkStatus();
}

}  // namespace tessera
