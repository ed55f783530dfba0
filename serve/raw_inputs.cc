#include "serve/raw_inputs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "core/criteo_format.h"
#include "export/input_transform.h"
#include "serve/base64.h"

namespace tessera {
namespace {

using nlohmann::json;

// A JSON value for a message: its text (at most 40 characters) or its type.
std::string Shown(const json& v) {
  if (v.is_structured()) return std::string("an ") + v.type_name();
  return v.dump().substr(0, 40);
}

// One input's header: its name, datatype and N of shape [N] or [N, 1].
struct RawInput {
  std::string name, datatype;
  int64_t rows = 0;
  const json* data = nullptr;
};

StatusOr<RawInput> ParseRawInput(const json& input, size_t index) {
  const std::string where = "inputs[" + std::to_string(index) + "]";
  if (!input.is_object()) return InvalidArgumentError(where + " must be an object");
  for (const auto& [key, value] : input.items()) {
    if (key != "name" && key != "shape" && key != "datatype" && key != "data" && key != "parameters") {
      return InvalidArgumentError("unknown field '" + key.substr(0, 40) + "' in " + where);
    }
  }
  RawInput out;
  if (!input.contains("name") || !input["name"].is_string()) return InvalidArgumentError(where + ".name must be a string");
  out.name = input["name"].get<std::string>();
  if (!input.contains("datatype") || !input["datatype"].is_string()) {
    return InvalidArgumentError("input '" + out.name + "': datatype must be a string");
  }
  out.datatype = input["datatype"].get<std::string>();
  std::vector<int64_t> shape;
  if (input.contains("shape") && input["shape"].is_array()) {
    for (const json& d : input["shape"]) shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
  }
  if (shape.empty() || shape.size() > 2 || shape[0] < 1 || (shape.size() == 2 && shape[1] != 1)) {
    return InvalidArgumentError("input '" + out.name + "': expected shape [N] or [N,1] with N >= 1, found " +
                                (input.contains("shape") ? input["shape"].dump().substr(0, 40) : std::string("none")));
  }
  out.rows = shape[0];
  if (!input.contains("data") || !input["data"].is_array()) {
    return InvalidArgumentError("input '" + out.name + "': data must be an array");
  }
  out.data = &input["data"];
  if (static_cast<int64_t>(out.data->size()) != out.rows) {
    return InvalidArgumentError("input '" + out.name + "': data holds " + std::to_string(out.data->size()) +
                                " elements, the shape says " + std::to_string(out.rows));
  }
  return out;
}

// Element `row` of `in` ([N] flat, or [N, 1] nested one deep).
const json& Element(const RawInput& in, int64_t row) {
  const json& v = (*in.data)[row];
  return v.is_array() && v.size() == 1 ? v[0] : v;
}

// One table value: nullopt for null (a missing value), else the number as a float32.
StatusOr<std::optional<float>> TableValue(const RawInput& in, int64_t row) {
  const json& v = Element(in, row);
  if (v.is_null()) return std::optional<float>();
  const std::string where = "input '" + in.name + "' element " + std::to_string(row);
  const bool integer = in.datatype == "INT32" || in.datatype == "INT64";
  if (integer ? !v.is_number_integer() : !v.is_number()) {
    return InvalidArgumentError(where + ": expected " + (integer ? "an integer" : "a number") + " (" + in.datatype +
                                ") or null, found " + Shown(v));
  }
  if (in.datatype == "INT32" && (v.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
                                 v.get<int64_t>() > std::numeric_limits<int32_t>::max())) {
    return InvalidArgumentError(where + ": " + Shown(v) + " is not an INT32");
  }
  const double d = integer ? static_cast<double>(v.get<int64_t>()) : v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
    return InvalidArgumentError(where + ": " + Shown(v) + " is not within float32's range");
  }
  return std::optional<float>(static_cast<float>(d));
}

// One categorical field: a BYTES element's string as it is, an INT32 or
// INT64 element's decimal text (what a training file holding that integer
// has: "42", "-7"), null a missing value (the empty field, id 0).
StatusOr<std::string> CategoricalField(const RawInput& in, int64_t row) {
  const json& v = Element(in, row);
  if (v.is_null()) return std::string();
  const std::string where = "input '" + in.name + "' element " + std::to_string(row);
  if (in.datatype == "BYTES") {
    if (!v.is_string()) return InvalidArgumentError(where + ": expected a string (BYTES) or null, found " + Shown(v));
    return v.get<std::string>();
  }
  if (!v.is_number_integer()) {
    return InvalidArgumentError(where + ": expected an integer (" + in.datatype + ") or null, found " + Shown(v));
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgumentError(where + ": " + Shown(v) + " is not an INT64");
  }
  const int64_t i = v.get<int64_t>();
  if (in.datatype == "INT32" && (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max())) {
    return InvalidArgumentError(where + ": " + Shown(v) + " is not an INT32");
  }
  return std::to_string(i);
}

// The datatypes a column's input may have.
bool TakesDatatype(const TableColumn& column, const std::string& datatype) {
  if (column.is_categorical()) return datatype == "BYTES" || datatype == "INT32" || datatype == "INT64";
  return datatype == "FP32" || datatype == "FP64" || datatype == "INT32" || datatype == "INT64";
}

std::string ColumnList(const TablePreprocessing& t) {
  std::string list;
  for (size_t i = 0; i < t.columns.size() && i < 10; ++i) list += (i ? ", " : "") + t.columns[i].name;
  if (t.columns.size() > 10) list += ", ... (" + std::to_string(t.columns.size()) + " columns)";
  return list;
}

Status ParseTableInputs(const json& inputs, const TablePreprocessing& t, std::vector<float>* x, int64_t* batch) {
  std::map<std::string, size_t> column_of;
  for (size_t c = 0; c < t.columns.size(); ++c) column_of[t.columns[c].name] = c;
  std::vector<std::optional<RawInput>> by_column(t.columns.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(RawInput in, ParseRawInput(inputs[i], i));
    auto it = column_of.find(in.name);
    if (it == column_of.end()) {
      return InvalidArgumentError("unknown input '" + in.name.substr(0, 60) + "': the model's inputs are its columns " +
                                  ColumnList(t) + " (or its preprocessed tensor 'input')");
    }
    if (by_column[it->second].has_value()) return InvalidArgumentError("input '" + in.name + "' is given twice");
    if (!TakesDatatype(t.columns[it->second], in.datatype)) {
      return InvalidArgumentError("input '" + in.name + "': expected datatype " +
                                  (t.columns[it->second].is_categorical() ? "BYTES, INT32 or INT64 (a categorical "
                                                                            "column)"
                                                                          : "FP32, FP64, INT32 or INT64") +
                                  ", found " + in.datatype.substr(0, 40));
    }
    by_column[it->second] = std::move(in);
  }
  for (size_t c = 0; c < t.columns.size(); ++c) {
    if (!by_column[c].has_value()) {
      return InvalidArgumentError("missing input '" + t.columns[c].name + "' (column " + std::to_string(c) +
                                  " of the model's " + std::to_string(t.columns.size()) + ")");
    }
    if (by_column[c]->rows != by_column[0]->rows) {
      return InvalidArgumentError("input '" + t.columns[c].name + "' has " + std::to_string(by_column[c]->rows) +
                                  " rows, input '" + t.columns[0].name + "' " + std::to_string(by_column[0]->rows));
    }
  }
  *batch = by_column[0]->rows;
  const size_t features = t.columns.size();
  x->assign(static_cast<size_t>(*batch) * features, 0.0f);
  for (size_t c = 0; c < features; ++c) {
    const TableColumn& column = t.columns[c];
    for (int64_t r = 0; r < *batch; ++r) {
      if (column.is_categorical()) {
        ASSIGN_OR_RETURN(const std::string field, CategoricalField(*by_column[c], r));
        (*x)[r * features + c] = CategoricalFeature(column, field);
        continue;
      }
      ASSIGN_OR_RETURN(const std::optional<float> v, TableValue(*by_column[c], r));
      (*x)[r * features + c] = TableFeature(column, v);
    }
  }
  return OkStatus();
}

Status ParseImageInputs(const json& inputs, const ImagePreprocessing& image, int64_t max_bytes, std::vector<float>* x,
                        int64_t* batch) {
  if (inputs.size() != 1) {
    return InvalidArgumentError("expected exactly one input, '" + std::string(kImageInputName) +
                                "' (BYTES: base64 PNG or JPEG files), found " + std::to_string(inputs.size()));
  }
  ASSIGN_OR_RETURN(const RawInput in, ParseRawInput(inputs[0], 0));
  if (in.name != kImageInputName) {
    return InvalidArgumentError("unknown input '" + in.name.substr(0, 60) + "': the model's inputs are '" +
                                kImageInputName + "' (BYTES) or its preprocessed tensor 'input'");
  }
  if (in.datatype != "BYTES") {
    return InvalidArgumentError("input 'image': expected datatype BYTES, found " + in.datatype.substr(0, 40));
  }
  *batch = in.rows;
  const int64_t size = ImageExampleValues(image);
  const int64_t bytes_per_image = size * static_cast<int64_t>(sizeof(float));
  if (*batch > max_bytes / bytes_per_image) {
    return InvalidArgumentError("input 'image': " + std::to_string(*batch) + " images make " +
                                std::to_string(*batch) + " x " + std::to_string(bytes_per_image) +
                                " bytes of model input, more than the " + std::to_string(max_bytes) +
                                " a request may: send at most " + std::to_string(max_bytes / bytes_per_image) +
                                " per request");
  }
  x->resize(static_cast<size_t>(*batch) * size);
  for (int64_t r = 0; r < *batch; ++r) {
    const json& v = Element(in, r);
    const std::string where = "input 'image' element " + std::to_string(r);
    if (!v.is_string()) return InvalidArgumentError(where + ": expected a base64 string, found " + Shown(v));
    auto bytes = DecodeBase64(v.get_ref<const std::string&>());
    if (!bytes.ok()) return bytes.status().WithContext(where);
    RETURN_IF_ERROR(ImageBytesToExample(image, where, *bytes, x->data() + r * size, kServeMaxImagePixels));
  }
  return OkStatus();
}

// One [N, K] input of a libsvm model: its header and its N * K elements,
// row after row (data flat, or nested as the shape).
struct MatrixInput {
  std::string name, datatype;
  int64_t rows = 0, cols = 0;
  std::vector<const json*> elements;
};

StatusOr<MatrixInput> ParseMatrixInput(const json& input, size_t index) {
  const std::string where = "inputs[" + std::to_string(index) + "]";
  if (!input.is_object()) return InvalidArgumentError(where + " must be an object");
  for (const auto& [key, value] : input.items()) {
    if (key != "name" && key != "shape" && key != "datatype" && key != "data" && key != "parameters") {
      return InvalidArgumentError("unknown field '" + key.substr(0, 40) + "' in " + where);
    }
  }
  MatrixInput out;
  if (!input.contains("name") || !input["name"].is_string()) return InvalidArgumentError(where + ".name must be a string");
  out.name = input["name"].get<std::string>();
  const std::string named = "input '" + out.name.substr(0, 60) + "'";
  if (!input.contains("datatype") || !input["datatype"].is_string()) {
    return InvalidArgumentError(named + ": datatype must be a string");
  }
  out.datatype = input["datatype"].get<std::string>();
  std::vector<int64_t> shape;
  if (input.contains("shape") && input["shape"].is_array()) {
    for (const json& d : input["shape"]) shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
  }
  if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] > (int64_t{1} << 24) ||
      shape[1] > (int64_t{1} << 24)) {
    return InvalidArgumentError(named + ": expected shape [N, K] with N >= 1 and K >= 1, found " +
                                (input.contains("shape") ? input["shape"].dump().substr(0, 40) : std::string("none")));
  }
  out.rows = shape[0];
  out.cols = shape[1];
  if (!input.contains("data") || !input["data"].is_array()) return InvalidArgumentError(named + ": data must be an array");
  const json& data = input["data"];
  const bool nested = !data.empty() && data[0].is_array();
  if (static_cast<int64_t>(data.size()) != (nested ? out.rows : out.rows * out.cols)) {
    return InvalidArgumentError(named + ": data holds " + std::to_string(data.size()) + (nested ? " rows" : " elements") +
                                ", the shape says " + std::to_string(nested ? out.rows : out.rows * out.cols));
  }
  for (const json& row : data) {
    if (!nested) {
      out.elements.push_back(&row);
      continue;
    }
    if (!row.is_array() || static_cast<int64_t>(row.size()) != out.cols) {
      return InvalidArgumentError(named + ": each row of data must hold " + std::to_string(out.cols) + " elements");
    }
    for (const json& v : row) out.elements.push_back(&v);
  }
  return out;
}

// A row's pairs as a libsvm line's features: indexes as the file's (with
// the model's index_base), -1 a padding pair (value 0) after the features.
StatusOr<std::vector<LibsvmFeature>> LibsvmRow(const MatrixInput& indices, const MatrixInput& values, int64_t row) {
  std::vector<LibsvmFeature> features;
  bool padding = false;
  for (int64_t k = 0; k < indices.cols; ++k) {
    const json& i = *indices.elements[row * indices.cols + k];
    const json& v = *values.elements[row * values.cols + k];
    const std::string where = "row " + std::to_string(row) + " element " + std::to_string(k);
    if (!i.is_number_integer() || (i.is_number_unsigned() && i.get<uint64_t>() > (uint64_t{1} << 62)) ||
        i.get<int64_t>() < -1) {
      return InvalidArgumentError("input 'indices' " + where + ": expected a feature index (INT64) or -1 (padding), "
                                  "found " + Shown(i));
    }
    if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > std::numeric_limits<float>::max()) {
      return InvalidArgumentError("input 'values' " + where + ": expected a finite FP32 number, found " + Shown(v));
    }
    const int64_t index = i.get<int64_t>();
    if (index == -1 || padding) {
      if (index != -1 || v.get<double>() != 0) {
        return InvalidArgumentError("input 'indices' " + where + ": a padding pair (-1, 0) may only be followed by "
                                    "padding pairs, and its value must be 0");
      }
      padding = true;
      continue;
    }
    features.push_back({static_cast<uint64_t>(index), static_cast<float>(v.get<double>())});
  }
  return features;
}

Status ParseLibsvmInputs(const json& inputs, const LibsvmPreprocessing& l, int64_t max_bytes, std::vector<float>* x,
                         int64_t* batch) {
  std::optional<MatrixInput> indices, values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(MatrixInput in, ParseMatrixInput(inputs[i], i));
    const bool is_indices = in.name == kLibsvmIndicesName, is_values = in.name == kLibsvmValuesName;
    if (!is_indices && !is_values) {
      return InvalidArgumentError("unknown input '" + in.name.substr(0, 60) + "': the model's inputs are '" +
                                  kLibsvmIndicesName + "' (INT64 [N, K]) and '" + kLibsvmValuesName +
                                  "' (FP32 [N, K]), or its preprocessed tensor 'input'");
    }
    std::optional<MatrixInput>& slot = is_indices ? indices : values;
    if (slot.has_value()) return InvalidArgumentError("input '" + in.name + "' is given twice");
    const char* want = is_indices ? "INT64" : "FP32";
    if (in.datatype != want) {
      return InvalidArgumentError("input '" + in.name + "': expected datatype " + want + ", found " +
                                  in.datatype.substr(0, 40));
    }
    slot = std::move(in);
  }
  if (!indices.has_value() || !values.has_value()) {
    return InvalidArgumentError(std::string("missing input '") + (indices.has_value() ? kLibsvmValuesName : kLibsvmIndicesName) +
                                "': a libsvm model takes '" + kLibsvmIndicesName + "' and '" + kLibsvmValuesName + "'");
  }
  if (indices->rows != values->rows || indices->cols != values->cols) {
    return InvalidArgumentError("inputs 'indices' and 'values' must have the same shape, found [" +
                                std::to_string(indices->rows) + "," + std::to_string(indices->cols) + "] and [" +
                                std::to_string(values->rows) + "," + std::to_string(values->cols) + "]");
  }
  if (indices->cols > l.pairs) {
    return InvalidArgumentError("inputs 'indices' and 'values' have " + std::to_string(indices->cols) +
                                " pairs per row, the model takes at most " + std::to_string(l.pairs));
  }
  *batch = indices->rows;
  const int64_t size = 2 * static_cast<int64_t>(l.pairs);
  const int64_t bytes_per_row = size * static_cast<int64_t>(sizeof(float));
  if (*batch > max_bytes / bytes_per_row) {  // few pairs sent can make many padded ones
    return InvalidArgumentError("inputs 'indices' and 'values': " + std::to_string(*batch) + " rows make " +
                                std::to_string(*batch) + " x " + std::to_string(bytes_per_row) +
                                " bytes of model input, more than the " + std::to_string(max_bytes) +
                                " a request may: send at most " + std::to_string(max_bytes / bytes_per_row) +
                                " per request");
  }
  x->resize(static_cast<size_t>(*batch * size));
  for (int64_t r = 0; r < *batch; ++r) {
    ASSIGN_OR_RETURN(const std::vector<LibsvmFeature> features, LibsvmRow(*indices, *values, r));
    RETURN_IF_ERROR(LibsvmFeaturesToExample(l, features, "inputs 'indices' and 'values' row " + std::to_string(r),
                                            x->data() + r * size));
  }
  return OkStatus();
}

// One integer field of a Criteo model: an INT32 or INT64 element, or a
// BYTES element holding its decimal text as a Criteo file does; null or ""
// a missing value.
StatusOr<std::optional<int64_t>> CriteoInteger(const RawInput& in, int64_t row) {
  const json& v = Element(in, row);
  if (v.is_null()) return std::optional<int64_t>();
  const std::string where = "input '" + in.name + "' element " + std::to_string(row);
  if (in.datatype == "BYTES") {
    if (!v.is_string()) return InvalidArgumentError(where + ": expected a string (BYTES) or null, found " + Shown(v));
    const std::string text = v.get<std::string>();
    if (text.empty()) return std::optional<int64_t>();
    int64_t value = 0;
    const auto [stop, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || stop != text.data() + text.size()) {
      return InvalidArgumentError(where + ": expected an integer of int64 range (or \"\", for a missing value), " +
                                  "found " + Shown(v));
    }
    return std::optional<int64_t>(value);
  }
  if (!v.is_number_integer() ||
      (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
    return InvalidArgumentError(where + ": expected an integer (" + in.datatype + ") or null, found " + Shown(v));
  }
  const int64_t i = v.get<int64_t>();
  if (in.datatype == "INT32" && (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max())) {
    return InvalidArgumentError(where + ": " + Shown(v) + " is not an INT32");
  }
  return std::optional<int64_t>(i);
}

// A Criteo model's inputs: every one of I1-I13 and C1-C26 once, all with
// the same N (RawInputs' rules for each).
StatusOr<std::vector<RawInput>> CriteoFieldInputs(const json& inputs, int64_t* batch) {
  const std::vector<std::string>& names = CriteoColumnNames();  // "label", then the fields
  std::vector<std::optional<RawInput>> by_field(kCriteoFields - 1);
  for (size_t i = 0; i < inputs.size(); ++i) {
    ASSIGN_OR_RETURN(RawInput in, ParseRawInput(inputs[i], i));
    auto it = std::find(names.begin() + 1, names.end(), in.name);
    if (it == names.end()) {
      return InvalidArgumentError("unknown input '" + in.name.substr(0, 40) +
                                  "': a Criteo model takes I1-I13 and C1-C26");
    }
    const size_t field = static_cast<size_t>(it - names.begin() - 1);
    const bool integer = field < static_cast<size_t>(kCriteoIntegerFields);
    if (in.datatype != "BYTES" && in.datatype != "INT32" && in.datatype != "INT64") {
      return InvalidArgumentError("input '" + in.name + "': datatype must be BYTES, INT32 or INT64" +
                                  (integer ? "" : " (the field as a Criteo file holds it)") + ", got " +
                                  in.datatype.substr(0, 20));
    }
    if (by_field[field].has_value()) return InvalidArgumentError("input '" + in.name + "' appears twice");
    if (i > 0 && in.rows != *batch) {
      return InvalidArgumentError("input '" + in.name + "' has " + std::to_string(in.rows) + " rows, the others " +
                                  std::to_string(*batch));
    }
    *batch = in.rows;
    by_field[field] = std::move(in);
  }
  std::vector<RawInput> fields;
  for (size_t f = 0; f < by_field.size(); ++f) {
    if (!by_field[f].has_value()) return InvalidArgumentError("missing input '" + names[f + 1] + "'");
    fields.push_back(*by_field[f]);
  }
  return fields;
}

Status ParseCriteoInputs(const json& inputs, std::vector<float>* x, std::vector<uint64_t>* ids, int64_t* batch) {
  ASSIGN_OR_RETURN(const std::vector<RawInput> fields, CriteoFieldInputs(inputs, batch));
  const int64_t values = kCriteoIntegerFields + kCriteoCategoricalFields;
  x->assign(static_cast<size_t>(*batch * values), -1.0f);  // -1: an id slot, its row set when the batch runs
  ids->resize(static_cast<size_t>(*batch * kCriteoCategoricalFields));
  for (int64_t r = 0; r < *batch; ++r) {
    for (int i = 0; i < kCriteoIntegerFields; ++i) {
      ASSIGN_OR_RETURN(const std::optional<int64_t> v, CriteoInteger(fields[i], r));
      (*x)[r * values + i] = CriteoNumeric(v);
    }
    for (int c = 0; c < kCriteoCategoricalFields; ++c) {
      ASSIGN_OR_RETURN(const std::string field, CategoricalField(fields[kCriteoIntegerFields + c], r));
      (*ids)[r * kCriteoCategoricalFields + c] = CriteoId(c + 1, field);  // "": kNoSparseId
    }
  }
  return OkStatus();
}

JsonObject InputJson(const std::string& name, const char* datatype, std::vector<int64_t> shape = {-1}) {
  return JsonObject().Add("name", name).Add("datatype", datatype).Add("shape", shape);
}

}  // namespace

bool UsesRawInputs(const json& inputs, const ModelPreprocessing& p, const std::string& model_input) {
  if (p.kind == InputKind::kIdx || !inputs.is_array()) return false;
  if (p.kind == InputKind::kCriteo) return true;  // its ids cannot travel in a float tensor
  const bool own_tensor = inputs.size() == 1 && inputs[0].is_object() && inputs[0].contains("name") &&
                          inputs[0]["name"].is_string() && inputs[0]["name"].get<std::string>() == model_input;
  return !own_tensor;
}

Status ParseRawInputs(const json& inputs, const ModelPreprocessing& p, std::vector<float>* x, int64_t* batch,
                      int64_t max_image_input_bytes, std::vector<uint64_t>* sparse_ids) {
  if (p.kind == InputKind::kTable) return ParseTableInputs(inputs, p.table, x, batch);
  if (p.kind == InputKind::kCriteo) {
    if (sparse_ids == nullptr) return InvalidArgumentError("a Criteo model's ids have nowhere to go");
    return ParseCriteoInputs(inputs, x, sparse_ids, batch);
  }
  if (p.kind == InputKind::kLibsvm) return ParseLibsvmInputs(inputs, p.libsvm, max_image_input_bytes, x, batch);
  return ParseImageInputs(inputs, p.image, max_image_input_bytes, x, batch);
}

std::vector<JsonObject> RawInputsMetadata(const ModelPreprocessing& p) {
  std::vector<JsonObject> inputs;
  if (p.kind == InputKind::kImage) {
    inputs.push_back(InputJson(kImageInputName, "BYTES"));
    return inputs;
  }
  if (p.kind == InputKind::kCriteo) {
    const std::vector<std::string>& names = CriteoColumnNames();
    for (size_t f = 1; f < names.size(); ++f) {
      inputs.push_back(InputJson(names[f], f <= static_cast<size_t>(kCriteoIntegerFields) ? "INT64" : "BYTES"));
    }
    return inputs;
  }
  if (p.kind == InputKind::kLibsvm) {
    inputs.push_back(InputJson(kLibsvmIndicesName, "INT64", {-1, -1}));
    inputs.push_back(InputJson(kLibsvmValuesName, "FP32", {-1, -1}));
    return inputs;
  }
  for (const TableColumn& c : p.table.columns) {
    inputs.push_back(InputJson(c.name, c.is_categorical() ? "BYTES" : "FP32"));
  }
  return inputs;
}

}  // namespace tessera
