#include "export/model_preprocessing.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>

#include "core/criteo_format.h"
#include "core/libsvm_data.h"
#include "export/task_outputs.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr int kMaxImageSidePixels = 4096;
constexpr size_t kMaxColumns = 1 << 20;
constexpr size_t kMaxClasses = 1 << 16;

JsonObject ColumnJson(const TableColumn& c) {
  JsonObject column = JsonObject().Add("name", c.name).Add("kind", c.kind);
  if (!c.is_categorical()) {
    return column.AddFloat32("fill_value", c.fill_value).AddFloat32("shift", c.shift).AddFloat32("scale", c.scale);
  }
  if (c.categorical.hash_buckets() > 0) return column.Add("hash_buckets", c.categorical.hash_buckets());
  return column.Add("vocabulary",
                    std::vector<std::string>(c.categorical.vocabulary().begin(), c.categorical.vocabulary().end()));
}

JsonObject TableJson(const TablePreprocessing& t) {
  JsonArray columns;
  for (const TableColumn& c : t.columns) columns.Add(ColumnJson(c));
  return JsonObject()
      .Add("kind", "table")
      .Add("format", t.format)
      .Add("header", true)
      .Add("label_column", t.label_column)
      .Add("scaling", t.scaling)
      .Add("scaling_computed_from", "the training records, read again at export as the scheduler read them")
      .Add("formula", "x = (v - shift) * scale in float32, v the field parsed as a float32 or fill_value when empty")
      .Add("categorical_formula", "x = the field's id: 0 when empty; 1 + FNV-1a-64(field bytes) mod hash_buckets, or "
                                  "k + 1 for vocabulary[k] and 0 for a value not in it")
      .Add("columns", columns);
}

JsonObject ImageJson(const ImagePreprocessing& i) {
  return JsonObject()
      .Add("kind", "image")
      .Add("width", i.width)
      .Add("height", i.height)
      .Add("channels", i.channels)
      .Add("channel_order", i.channels == 3 ? "RGB" : "gray")
      .Add("layout", "CHW")
      .Add("resize", "center_crop_then_resize")
      .Add("resize_rule", "the largest centered box of width:height, resized by area averaging to shrink and "
                          "bilinear to enlarge, exact integer arithmetic (docs/FORMATS.md, Image folders)")
      .Add("formula", "x = (sample / 255 - mean[c]) / std[c]")
      .AddFloat32s("mean", i.mean)
      .AddFloat32s("std", i.std);
}

JsonObject LibsvmJson(const LibsvmPreprocessing& l) {
  return JsonObject()
      .Add("kind", "libsvm")
      .Add("num_features", l.num_features)
      .Add("index_base", l.index_base)
      .Add("pairs", static_cast<int64_t>(l.pairs))
      .Add("labels", l.signed_binary ? "signed_binary" : "class_ids")
      .Add("formula", "a line's features in file order as float32 pairs (index - index_base, value), values as "
                      "written, then (-1, 0) padding pairs up to pairs; the input is the pairs flat, [2 * pairs]")
      .Add("refused", "an index below index_base or at index_base + num_features or beyond, or more than pairs "
                      "features on a line");
}

// The field `key` of `object` as the type `check` accepts; InvalidArgument
// naming it otherwise.
StatusOr<const json*> Field(const json& object, const std::string& key, bool (json::*check)() const,
                            const char* type, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || !((*it).*check)()) {
    return InvalidArgumentError(where + ": '" + key + "' must be " + type);
  }
  return &*it;
}

StatusOr<std::string> StringField(const json& object, const std::string& key, const std::string& where) {
  ASSIGN_OR_RETURN(const json* v, Field(object, key, &json::is_string, "a string", where));
  return v->get<std::string>();
}

// A finite number that is a float32.
StatusOr<float> FloatField(const json& object, const std::string& key, const std::string& where) {
  ASSIGN_OR_RETURN(const json* v, Field(object, key, &json::is_number, "a number", where));
  const double d = v->get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) {
    return InvalidArgumentError(where + ": '" + key + "' must be a finite float32, got " + v->dump());
  }
  return static_cast<float>(d);
}

StatusOr<int> IntField(const json& object, const std::string& key, int low, int high, const std::string& where) {
  ASSIGN_OR_RETURN(const json* v, Field(object, key, &json::is_number_integer, "an integer", where));
  const int64_t i = v->get<int64_t>();
  if (i < low || i > high) {
    return InvalidArgumentError(where + ": '" + key + "' must be in [" + std::to_string(low) + ", " +
                                std::to_string(high) + "], got " + std::to_string(i));
  }
  return static_cast<int>(i);
}

StatusOr<std::vector<float>> FloatArray(const json& object, const std::string& key, const std::string& where) {
  ASSIGN_OR_RETURN(const json* v, Field(object, key, &json::is_array, "an array", where));
  std::vector<float> out;
  for (size_t i = 0; i < v->size(); ++i) {
    json item = json::object({{"v", (*v)[i]}});
    ASSIGN_OR_RETURN(const float f, FloatField(item, "v", where + " " + key + "[" + std::to_string(i) + "]"));
    out.push_back(f);
  }
  return out;
}

// A categorical column's "hash_buckets" or "vocabulary" (exactly one), checked
// as a stored vocabulary is (ValidateCategoricalColumn).
StatusOr<TableColumn> ParseCategoricalColumn(const json& c, const std::string& name, const std::string& where) {
  proto::CategoricalColumn column;
  const bool hashed = c.contains("hash_buckets"), listed = c.contains("vocabulary");
  if (hashed == listed) return InvalidArgumentError(where + ": needs exactly one of 'hash_buckets' and 'vocabulary'");
  if (hashed) {
    ASSIGN_OR_RETURN(const int buckets,
                     IntField(c, "hash_buckets", 1, static_cast<int>(kMaxCategoricalIds - 1), where));
    column.set_hash_buckets(buckets);
  } else {
    ASSIGN_OR_RETURN(const json* vocabulary, Field(c, "vocabulary", &json::is_array, "an array", where));
    if (vocabulary->empty() || static_cast<int64_t>(vocabulary->size()) > kMaxCategoricalIds - 1) {
      return InvalidArgumentError(where + ": 'vocabulary' must hold 1 to " + std::to_string(kMaxCategoricalIds - 1) +
                                  " values");
    }
    for (size_t k = 0; k < vocabulary->size(); ++k) {
      if (!(*vocabulary)[k].is_string()) {
        return InvalidArgumentError(where + ": vocabulary[" + std::to_string(k) + "] must be a string");
      }
      column.add_vocabulary((*vocabulary)[k].get<std::string>());
    }
  }
  auto made = MakeCategoricalTableColumn(name, column);
  if (!made.ok()) return InvalidArgumentError(where + ": " + made.status().message());
  return made;
}

StatusOr<TableColumn> ParseColumn(const json& c, const std::string& where) {
  if (!c.is_object()) return InvalidArgumentError(where + " must be an object");
  ASSIGN_OR_RETURN(const std::string name, StringField(c, "name", where));
  if (name.empty()) return InvalidArgumentError(where + ": 'name' must not be empty");
  ASSIGN_OR_RETURN(const std::string kind, StringField(c, "kind", where));
  if (kind == kCategoricalColumn) return ParseCategoricalColumn(c, name, where);
  if (kind != kNumericColumn) {
    return InvalidArgumentError(where + ": kind \"" + kind.substr(0, 40) +
                                "\" is not supported by this version of Tessera (numeric or categorical)");
  }
  TableColumn column;
  column.name = name;
  ASSIGN_OR_RETURN(column.fill_value, FloatField(c, "fill_value", where));
  ASSIGN_OR_RETURN(column.shift, FloatField(c, "shift", where));
  ASSIGN_OR_RETURN(column.scale, FloatField(c, "scale", where));
  return column;
}

StatusOr<TablePreprocessing> ParseTable(const json& p, const std::string& where) {
  TablePreprocessing t;
  ASSIGN_OR_RETURN(t.format, StringField(p, "format", where));
  if (t.format != "csv" && t.format != "tsv") {
    return InvalidArgumentError(where + ": 'format' must be \"csv\" or \"tsv\", got \"" + t.format.substr(0, 40) + "\"");
  }
  ASSIGN_OR_RETURN(t.label_column, StringField(p, "label_column", where));
  ASSIGN_OR_RETURN(t.scaling, StringField(p, "scaling", where));
  ASSIGN_OR_RETURN(const json* columns, Field(p, "columns", &json::is_array, "an array", where));
  if (columns->empty() || columns->size() > kMaxColumns) {
    return InvalidArgumentError(where + ": 'columns' must hold 1 to " + std::to_string(kMaxColumns) + " columns");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < columns->size(); ++i) {
    const std::string column_where = where + " columns[" + std::to_string(i) + "]";
    ASSIGN_OR_RETURN(TableColumn c, ParseColumn((*columns)[i], column_where));
    if (!names.insert(c.name).second || c.name == t.label_column) {
      return InvalidArgumentError(where + ": column '" + c.name.substr(0, 60) +
                                  "' is named twice, or is the label column");
    }
    // The model's input is the numeric features, then the ids (ReadTableBlock's order).
    if (!c.is_categorical() && !t.columns.empty() && t.columns.back().is_categorical()) {
      return InvalidArgumentError(column_where + ": a numeric column after a categorical one (the categorical "
                                  "columns come last)");
    }
    t.columns.push_back(std::move(c));
  }
  return t;
}

StatusOr<ImagePreprocessing> ParseImage(const json& p, const std::string& where) {
  ImagePreprocessing i;
  ASSIGN_OR_RETURN(i.width, IntField(p, "width", 1, kMaxImageSidePixels, where));
  ASSIGN_OR_RETURN(i.height, IntField(p, "height", 1, kMaxImageSidePixels, where));
  ASSIGN_OR_RETURN(i.channels, IntField(p, "channels", 1, 3, where));
  if (i.channels == 2) return InvalidArgumentError(where + ": 'channels' must be 1 or 3, got 2");
  ASSIGN_OR_RETURN(i.mean, FloatArray(p, "mean", where));
  ASSIGN_OR_RETURN(i.std, FloatArray(p, "std", where));
  if (static_cast<int>(i.mean.size()) != i.channels || static_cast<int>(i.std.size()) != i.channels) {
    return InvalidArgumentError(where + ": 'mean' and 'std' must hold one value per channel (" +
                                std::to_string(i.channels) + "), got " + std::to_string(i.mean.size()) + " and " +
                                std::to_string(i.std.size()));
  }
  for (float s : i.std) {
    if (!(s > 0)) return InvalidArgumentError(where + ": every 'std' must be > 0");
  }
  return i;
}

StatusOr<LibsvmPreprocessing> ParseLibsvm(const json& p, const std::string& where) {
  LibsvmPreprocessing l;
  ASSIGN_OR_RETURN(const int features, IntField(p, "num_features", 1, static_cast<int>(kMaxLibsvmFeatures), where));
  l.num_features = features;
  ASSIGN_OR_RETURN(l.index_base, IntField(p, "index_base", 0, 1, where));
  ASSIGN_OR_RETURN(l.pairs, IntField(p, "pairs", 1, kMaxLibsvmNonzeros, where));
  ASSIGN_OR_RETURN(const std::string labels, StringField(p, "labels", where));
  if (labels != "class_ids" && labels != "signed_binary") {
    return InvalidArgumentError(where + ": 'labels' must be \"class_ids\" or \"signed_binary\", got \"" +
                                labels.substr(0, 40) + "\"");
  }
  l.signed_binary = labels == "signed_binary";
  return l;
}

StatusOr<std::vector<std::string>> ParseClassNames(const json& manifest, const std::string& path) {
  std::vector<std::string> names;
  auto it = manifest.find("class_names");
  if (it == manifest.end()) return names;
  if (!it->is_array() || it->size() > kMaxClasses) {
    return InvalidArgumentError(path + ": 'class_names' must be an array of at most " + std::to_string(kMaxClasses) +
                                " strings");
  }
  for (const json& name : *it) {
    if (!name.is_string()) return InvalidArgumentError(path + ": 'class_names' must hold strings");
    names.push_back(name.get<std::string>());
  }
  return names;
}

// What a reader needs to turn a Criteo line into the model's inputs: the
// layout, the numeric transform and the id hash are fixed
// (core/criteo_format.h); the manifest states them.
JsonObject CriteoJson() {
  return JsonObject()
      .Add("kind", "criteo")
      .Add("integer_fields", kCriteoIntegerFields)
      .Add("categorical_fields", kCriteoCategoricalFields)
      .Add("numeric", "log(1 + x) in double, rounded to float, for x > 0; 0 for x <= 0 and an empty field")
      .Add("id", "64-bit FNV-1a over one byte, the field's number (1 to 26), then the value's bytes; "
                 "an empty field has no id")
      .Add("rows", "an id's row of the table, zeros when the table does not hold it");
}

// A sparse_linear model takes libsvm preprocessing, and only such a model does.
Status CheckLibsvmFitsModel(const ModelPreprocessing& p, const std::vector<int64_t>& input_shape,
                            const std::string& path, int64_t sparse_features) {
  if ((p.kind == InputKind::kLibsvm) != (sparse_features > 0)) {
    return InvalidArgumentError(path + (sparse_features > 0
                                            ? ": the model's first layer is a sparse_linear, whose inputs are libsvm "
                                              "pairs, and preprocessing's kind is \"" +
                                                  std::string(InputKindName(p.kind)) + "\", not \"libsvm\""
                                            : ": preprocessing's kind is \"libsvm\", and the model has no "
                                              "sparse_linear first layer"));
  }
  if (p.kind != InputKind::kLibsvm) return OkStatus();
  if (input_shape != std::vector<int64_t>{2 * static_cast<int64_t>(p.libsvm.pairs)}) {
    return InvalidArgumentError(path + ": preprocessing makes " + std::to_string(p.libsvm.pairs) +
                                " pairs per example, not the model's input shape");
  }
  if (p.libsvm.num_features != sparse_features) {
    return InvalidArgumentError(path + ": preprocessing has " + std::to_string(p.libsvm.num_features) +
                                " features, the model's sparse_linear weight " + std::to_string(sparse_features) +
                                " rows");
  }
  return OkStatus();
}

}  // namespace

StatusOr<TableColumn> MakeCategoricalTableColumn(const std::string& name, const proto::CategoricalColumn& column) {
  TableColumn c;
  c.name = name;
  c.kind = kCategoricalColumn;
  c.categorical.set_name(name);
  c.categorical.set_hash_buckets(column.hash_buckets());
  *c.categorical.mutable_vocabulary() = column.vocabulary();
  RETURN_IF_ERROR(ValidateCategoricalColumn(c.categorical));  // CategoricalIds' precondition
  c.ids = std::make_shared<const CategoricalIds>(c.categorical);
  return c;
}

proto::ImageSpec ImagePreprocessing::ToImageSpec() const {
  proto::ImageSpec spec;
  spec.set_width(width);
  spec.set_height(height);
  spec.set_channels(channels);
  for (float m : mean) spec.add_mean(m);
  for (float s : std) spec.add_std(s);
  return spec;
}

const char* InputKindName(InputKind kind) {
  switch (kind) {
    case InputKind::kTable: return "table";
    case InputKind::kImage: return "image";
    case InputKind::kLibsvm: return "libsvm";
    case InputKind::kCriteo: return "criteo";
    case InputKind::kIdx: break;
  }
  return "idx";
}

bool NamesClasses(const ModelPreprocessing& p, int num_outputs) {
  if (p.task == Task::kRegression) return false;
  const int classes = p.task == Task::kBinary ? 2 : num_outputs;
  return static_cast<int>(p.class_names.size()) == classes;
}

JsonObject PreprocessingJson(const ModelPreprocessing& p) {
  if (p.kind == InputKind::kTable) return TableJson(p.table);
  if (p.kind == InputKind::kImage) return ImageJson(p.image);
  if (p.kind == InputKind::kLibsvm) return LibsvmJson(p.libsvm);
  if (p.kind == InputKind::kCriteo) return CriteoJson();
  return JsonObject().Add("kind", "idx").Add("formula", "x = (pixel * scale - mean) / std, the manifest's normalization");
}

StatusOr<ModelPreprocessing> ParseManifestPreprocessing(const std::string& text, const std::string& path) {
  const json manifest = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (manifest.is_discarded() || !manifest.is_object()) return InvalidArgumentError(path + " is not a JSON object");
  ModelPreprocessing p;
  if (manifest.contains("task")) {
    ASSIGN_OR_RETURN(const std::string task, StringField(manifest, "task", path));
    ASSIGN_OR_RETURN(p.task, ParseManifestTask(task, path));
  }
  ASSIGN_OR_RETURN(p.class_names, ParseClassNames(manifest, path));
  auto pre = manifest.find("preprocessing");
  if (pre == manifest.end()) return p;  // written before preprocessing was recorded: IDX
  const std::string where = path + " preprocessing";
  if (!pre->is_object()) return InvalidArgumentError(where + " must be an object");
  ASSIGN_OR_RETURN(const std::string kind, StringField(*pre, "kind", where));
  if (kind == "table") {
    p.kind = InputKind::kTable;
    ASSIGN_OR_RETURN(p.table, ParseTable(*pre, where));
  } else if (kind == "image") {
    p.kind = InputKind::kImage;
    ASSIGN_OR_RETURN(p.image, ParseImage(*pre, where));
  } else if (kind == "libsvm") {
    p.kind = InputKind::kLibsvm;
    ASSIGN_OR_RETURN(p.libsvm, ParseLibsvm(*pre, where));
  } else if (kind == "criteo") {
    p.kind = InputKind::kCriteo;
  } else if (kind != "idx") {
    return InvalidArgumentError(where + ": kind must be \"idx\", \"table\", \"image\", \"libsvm\" or \"criteo\", " +
                                "got \"" +
                                kind.substr(0, 40) + "\"");
  }
  return p;
}

namespace {

// The table's categorical columns (the last ones) against the model's
// column_embedding tables: as many, each making as many ids.
Status CheckCategoricalFitsModel(const TablePreprocessing& t, const std::vector<int64_t>& categorical_rows,
                                 const std::string& path) {
  std::vector<const TableColumn*> categorical;
  for (const TableColumn& c : t.columns) {
    if (c.is_categorical()) categorical.push_back(&c);
  }
  if (categorical.size() != categorical_rows.size()) {
    return InvalidArgumentError(path + ": preprocessing lists " + std::to_string(categorical.size()) +
                                " categorical columns, the model reads " + std::to_string(categorical_rows.size()));
  }
  for (size_t c = 0; c < categorical.size(); ++c) {
    if (categorical[c]->ids->rows() != categorical_rows[c]) {
      return InvalidArgumentError(path + ": categorical column '" + categorical[c]->name.substr(0, 60) + "' makes " +
                                  std::to_string(categorical[c]->ids->rows()) + " ids, the model's table for it has " +
                                  std::to_string(categorical_rows[c]) + " rows");
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckPreprocessingFitsModel(const ModelPreprocessing& p, const std::vector<int64_t>& input_shape,
                                   int num_classes, const std::vector<int64_t>& categorical_rows,
                                   const std::string& path, int64_t sparse_features) {
  if (p.task != Task::kMultiClass && num_classes != 1) {
    return InvalidArgumentError(path + ": a " + ManifestTaskName(p.task) + " model has one output per example, " +
                                "this one has " + std::to_string(num_classes));
  }
  const int classes = p.task == Task::kBinary ? 2 : p.task == Task::kRegression ? 0 : num_classes;
  if (!p.class_names.empty() && static_cast<int>(p.class_names.size()) != classes) {
    return InvalidArgumentError(path + ": 'class_names' names " + std::to_string(p.class_names.size()) +
                                " classes, the model has " + std::to_string(classes));
  }
  if (p.kind == InputKind::kTable &&
      (input_shape.size() != 1 || input_shape[0] != static_cast<int64_t>(p.table.columns.size()))) {
    return InvalidArgumentError(path + ": preprocessing lists " + std::to_string(p.table.columns.size()) +
                                " columns, the model does not take that many features");
  }
  if (p.kind == InputKind::kTable) RETURN_IF_ERROR(CheckCategoricalFitsModel(p.table, categorical_rows, path));
  if (p.kind == InputKind::kImage &&
      input_shape != std::vector<int64_t>{p.image.channels, p.image.height, p.image.width}) {
    return InvalidArgumentError(path + ": preprocessing makes images of " + std::to_string(p.image.channels) + "x" +
                                std::to_string(p.image.height) + "x" + std::to_string(p.image.width) +
                                ", not the model's input shape");
  }
  if (p.kind == InputKind::kCriteo &&
      input_shape != std::vector<int64_t>{kCriteoIntegerFields + kCriteoCategoricalFields}) {
    return InvalidArgumentError(path + ": preprocessing \"criteo\" makes " +
                                std::to_string(kCriteoIntegerFields + kCriteoCategoricalFields) +
                                " features (13 numeric, 26 ids), not the model's input shape");
  }
  return CheckLibsvmFitsModel(p, input_shape, path, sparse_features);
}

}  // namespace tessera
