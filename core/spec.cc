#include "core/spec.h"

#include <cmath>
#include <cstdio>
#include <set>

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/text_format.h>

#include "core/categorical.h"
#include "core/consistency.h"
#include "core/file_util.h"
#include "core/image_folder_data.h"
#include "core/sparse_table_spec.h"

namespace tessera {
namespace {

// Keeps the first error, with the offending line quoted: protobuf's own
// message ("Expected integer, got: many") does not name the field.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  FirstErrorCollector(std::string source, const std::string& text) : source_(std::move(source)), text_(text) {}
  void AddError(int line, int column, const std::string& message) override {
    if (!first_.empty()) return;
    first_ = source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
    const std::string quoted = Line(line);
    if (!quoted.empty()) first_ += " (in '" + quoted + "')";
  }
  const std::string& first() const { return first_; }

 private:
  std::string Line(int line) const {
    size_t begin = 0;
    for (int i = 0; i < line && begin != std::string::npos; ++i) {
      begin = text_.find('\n', begin);
      if (begin != std::string::npos) ++begin;
    }
    if (begin == std::string::npos || begin >= text_.size()) return "";
    size_t end = text_.find('\n', begin);
    std::string l = text_.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    const size_t first = l.find_first_not_of(" \t");
    const size_t last = l.find_last_not_of(" \t\r");
    if (first == std::string::npos) return "";
    l = l.substr(first, last - first + 1);
    return l.size() > 80 ? l.substr(0, 77) + "..." : l;
  }

  std::string source_;
  const std::string& text_;
  std::string first_;
};

Status Require(bool ok, const std::string& message) {
  return ok ? OkStatus() : InvalidArgumentError(message);
}

std::string Got(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.7g", v);
  return std::string(", got ") + buf;
}

}  // namespace

StatusOr<proto::JobSpec> ParseJobSpec(const std::string& text, const std::string& source_name) {
  proto::JobSpec spec;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors(source_name, text);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &spec)) {
    return InvalidArgumentError(errors.first().empty() ? source_name + ": does not parse" : errors.first());
  }
  return spec;
}

StatusOr<proto::JobSpec> LoadJobSpec(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseJobSpec(text, path);
}

// One distinct, non-empty name per class (their count is checked against the data).
Status ValidateClassNames(const proto::DataSpec& d) {
  std::set<std::string> seen;
  for (const std::string& name : d.class_names()) {
    RETURN_IF_ERROR(Require(!name.empty(), "data.class_names must not hold an empty name"));
    RETURN_IF_ERROR(Require(seen.insert(name).second, "data.class_names holds '" + name + "' twice"));
  }
  return OkStatus();
}

// Whether a spec sets fields of another format than its own. (The table
// and image blocks themselves may be there: a spec written back makes every
// default explicit.)
bool HasTableFields(const proto::DataSpec& d) {
  return d.train_files_size() > 0 || d.test_files_size() > 0 || !d.table().label_column().empty() ||
         d.table().feature_columns_size() > 0 || d.table().categorical_columns_size() > 0;
}

bool HasImageFields(const proto::DataSpec& d) {
  const proto::ImageSpec& i = d.image();
  return !d.train_dir().empty() || !d.test_dir().empty() || i.width() != 0 || i.height() != 0 || i.mean_size() > 0 ||
         i.std_size() > 0 || i.random_crop() || i.horizontal_flip();
}

Status RequireNoEmbedding(const proto::JobSpec& spec, const std::string& format) {
  return Require(spec.model().layer_size() == 0 || !spec.model().layer(0).has_embedding(),
                 "an Embedding first layer takes ids, and data.format " + format +
                     " gives scaled numbers: use IDX data for ids, or a table's data.table.categorical_columns with a "
                         "column_embedding first layer");
}

// One categorical column: named, neither the label nor a numeric feature,
// hashed into [1, 2^24 - 1] buckets or with a vocabulary of at most that.
Status ValidateCategoricalColumnSpec(const proto::TableSpec& t, int c) {
  const proto::CategoricalColumnSpec& column = t.categorical_columns(c);
  const std::string where = "data.table.categorical_columns[" + std::to_string(c) + "]";
  const std::string named = where + " '" + column.name() + "'";
  const int64_t max_ids = kMaxCategoricalIds - 1;
  RETURN_IF_ERROR(Require(!column.name().empty(), where + ".name must name a column"));
  RETURN_IF_ERROR(Require(column.name() != t.label_column(), named + " is the label column"));
  for (const std::string& feature : t.feature_columns()) {
    RETURN_IF_ERROR(Require(feature != column.name(), named + " is also in data.table.feature_columns (a "
                                                              "column is numeric or categorical, not both)"));
  }
  for (int other = 0; other < c; ++other) {
    RETURN_IF_ERROR(Require(t.categorical_columns(other).name() != column.name(), named + " is listed twice"));
  }
  if (t.sparse_ids()) {
    return Require(column.ids_case() == proto::CategoricalColumnSpec::IDS_NOT_SET,
                   named + ": hash_buckets and vocabulary are for a column_embedding's small ids; with "
                           "data.table.sparse_ids every value is hashed to a 64-bit id (set neither)");
  }
  switch (column.ids_case()) {
    case proto::CategoricalColumnSpec::kHashBuckets:
      return Require(column.hash_buckets() >= 1 && column.hash_buckets() <= max_ids,
                     named + ": hash_buckets must be in [1, " + std::to_string(max_ids) + "] (ids travel as float32), got " +
                         std::to_string(column.hash_buckets()));
    case proto::CategoricalColumnSpec::kVocabulary:
      RETURN_IF_ERROR(Require(column.vocabulary().max_size() >= 0 && column.vocabulary().max_size() <= max_ids,
                              named + ": vocabulary.max_size must be in [0, " + std::to_string(max_ids) +
                                  "] (ids travel as float32), got " + std::to_string(column.vocabulary().max_size())));
      return Require(column.vocabulary().min_count() >= 1,
                     named + ": vocabulary.min_count must be >= 1, got " + std::to_string(column.vocabulary().min_count()));
    case proto::CategoricalColumnSpec::IDS_NOT_SET:
      break;
  }
  return InvalidArgumentError(named + " needs hash_buckets or a vocabulary");
}

// A CSV or TSV table whose categorical columns are 64-bit ids.
bool HasSparseIdTable(const proto::DataSpec& d) {
  return (d.format() == proto::DataSpec::CSV || d.format() == proto::DataSpec::TSV) && d.table().sparse_ids();
}

// With data.table.sparse_ids the categorical columns are the bags of a
// sparse_embedding first layer, one id each: as many fields as columns.
Status ValidateSparseIdColumns(const proto::JobSpec& spec) {
  const proto::TableSpec& t = spec.data().table();
  const int columns = t.categorical_columns_size();
  RETURN_IF_ERROR(Require(columns >= 1 && columns <= kMaxSparseIdColumns,
                          "data.table.sparse_ids needs 1 to " + std::to_string(kMaxSparseIdColumns) +
                              " data.table.categorical_columns (each column's number salts its ids' hash)" +
                              Got(columns)));
  const proto::ModelSpec& m = spec.model();
  RETURN_IF_ERROR(Require(m.layer_size() > 0 && m.layer(0).has_sparse_embedding(),
                          "data.table.sparse_ids gives each categorical column a 64-bit id: the model's first layer "
                          "must be a sparse_embedding (e.g. layer { sparse_embedding { table: \"ids\" fields: " +
                              std::to_string(columns) + " } })"));
  const proto::SparseEmbeddingSpec& e = m.layer(0).sparse_embedding();
  return Require(e.fields() == columns && e.values_per_field() == 1,
                 "data.table.sparse_ids gives " + std::to_string(columns) +
                     " bags of one id each (one per categorical column): model.layer[0].sparse_embedding needs "
                     "fields: " + std::to_string(columns) + " and values_per_field: 1, got " +
                     std::to_string(e.fields()) + " and " + std::to_string(e.values_per_field()));
}

// Categorical columns need a column_embedding first layer, which turns their
// ids into vectors (with data.table.sparse_ids, a sparse_embedding).
Status ValidateCategoricalColumns(const proto::JobSpec& spec) {
  const proto::TableSpec& t = spec.data().table();
  for (int c = 0; c < t.categorical_columns_size(); ++c) RETURN_IF_ERROR(ValidateCategoricalColumnSpec(t, c));
  if (t.sparse_ids()) return ValidateSparseIdColumns(spec);
  const bool column_embedding = spec.model().layer_size() > 0 && spec.model().layer(0).has_column_embedding();
  if (t.categorical_columns_size() > 0) {
    return Require(column_embedding, "data.table.categorical_columns give ids: the model's first layer must be a "
                                     "column_embedding");
  }
  return OkStatus();
}

// A table names its files and label column.
Status ValidateTableFormat(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  const std::string format = d.format() == proto::DataSpec::CSV ? "CSV" : "TSV";
  RETURN_IF_ERROR(Require(!HasImageFields(d), "data.train_dir, data.test_dir and data.image are for data.format "
                                              "IMAGE_FOLDER; this spec's format is " + format));
  RETURN_IF_ERROR(Require(d.train_files_size() >= 1 && d.test_files_size() >= 1,
                          "data.format " + format + " needs data.train_files and data.test_files (one or more each)"));
  RETURN_IF_ERROR(Require(!d.table().label_column().empty(), "data.format " + format +
                                                                  " needs data.table.label_column: the column of "
                                                                  "each record's class"));
  const int classes = d.table().num_classes();
  RETURN_IF_ERROR(Require(classes >= 0 && classes <= 256, "data.table.num_classes must be in [0, 256]" + Got(classes)));
  RETURN_IF_ERROR(Require(std::isfinite(d.table().fill_value()), "data.table.fill_value must be a finite number"));
  for (const std::string& name : d.table().feature_columns()) {
    RETURN_IF_ERROR(Require(!name.empty(), "data.table.feature_columns must not hold an empty name"));
  }
  RETURN_IF_ERROR(ValidateCategoricalColumns(spec));
  return RequireNoEmbedding(spec, format);
}

// image.mean or image.std: none, one, or one per channel, each finite (std > 0).
Status ValidateChannelValues(const google::protobuf::RepeatedField<float>& values, int channels, const std::string& name,
                             bool positive) {
  RETURN_IF_ERROR(Require(values.size() <= 1 || values.size() == channels,
                          "data.image." + name + " must hold one value or one per channel (" +
                              std::to_string(channels) + "), got " + std::to_string(values.size())));
  for (const float v : values) {
    RETURN_IF_ERROR(Require(std::isfinite(v) && (!positive || v > 0),
                            "data.image." + name + (positive ? " must be > 0" : " must be a finite number") + Got(v)));
  }
  return OkStatus();
}

Status ValidateImageSpec(const proto::ImageSpec& i) {
  for (const auto& [name, side] : {std::pair{"width", i.width()}, std::pair{"height", i.height()}}) {
    RETURN_IF_ERROR(Require(side >= 1 && side <= kMaxImageSide,
                            std::string("data.format IMAGE_FOLDER needs data.image.") + name + " in [1, " +
                                std::to_string(kMaxImageSide) + "]: the size every image is resized to" + Got(side)));
  }
  RETURN_IF_ERROR(Require(i.channels() == 1 || i.channels() == 3,
                          "data.image.channels must be 1 (gray) or 3 (RGB)" + Got(i.channels())));
  RETURN_IF_ERROR(ValidateChannelValues(i.mean(), i.channels(), "mean", /*positive=*/false));
  RETURN_IF_ERROR(ValidateChannelValues(i.std(), i.channels(), "std", /*positive=*/true));
  return Require(i.min_crop_scale() > 0 && i.min_crop_scale() <= 1,
                 "data.image.min_crop_scale must be in (0, 1]" + Got(i.min_crop_scale()));
}

// The model a libsvm data set needs: a sparse_linear first layer.
Status RequireSparseLinearFirst(const proto::JobSpec& spec) {
  return Require(spec.model().layer_size() > 0 && spec.model().layer(0).has_sparse_linear(),
                 "data.format LIBSVM gives each example as (feature, value) pairs: the model's first layer must be "
                 "a sparse_linear (e.g. layer { sparse_linear { out_features: 256 } })");
}

// libsvm files: the split files, and data.libsvm's numbers in range.
Status ValidateLibsvmFormat(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  const proto::LibsvmSpec& l = d.libsvm();
  RETURN_IF_ERROR(Require(!HasImageFields(d), "data.train_dir, data.test_dir and data.image are for data.format "
                                              "IMAGE_FOLDER; this spec's format is LIBSVM"));
  RETURN_IF_ERROR(Require(d.table().label_column().empty() && d.table().feature_columns_size() == 0 &&
                              d.table().categorical_columns_size() == 0,
                          "data.table's columns are for data.format CSV or TSV; this spec's format is LIBSVM (its "
                          "settings are data.libsvm)"));
  RETURN_IF_ERROR(Require(d.train_files_size() >= 1 && d.test_files_size() >= 1,
                          "data.format LIBSVM needs data.train_files and data.test_files (one or more each)"));
  RETURN_IF_ERROR(Require(l.index_base() == 0 || l.index_base() == 1,
                          "data.libsvm.index_base must be 0 or 1" + Got(l.index_base())));
  RETURN_IF_ERROR(Require(l.num_features() >= 0 && l.num_features() <= (int64_t{1} << 24),
                          "data.libsvm.num_features must be in [0, 16777216] (2^24: features travel as float32)" +
                              Got(static_cast<double>(l.num_features()))));
  RETURN_IF_ERROR(Require(l.max_nonzeros() >= 0 && l.max_nonzeros() <= (1 << 20),
                          "data.libsvm.max_nonzeros must be in [0, 1048576]" + Got(l.max_nonzeros())));
  if (!proto::LibsvmSpec::Labels_IsValid(l.labels())) {
    return InvalidArgumentError("data.libsvm.labels " + std::to_string(l.labels()) + " is unknown");
  }
  RETURN_IF_ERROR(Require(l.num_classes() >= 0 && l.num_classes() <= 256,
                          "data.libsvm.num_classes must be in [0, 256]" + Got(l.num_classes())));
  RETURN_IF_ERROR(Require(l.labels() != proto::LibsvmSpec::SIGNED_BINARY || l.num_classes() == 0 ||
                              l.num_classes() == 2,
                          "data.libsvm.labels SIGNED_BINARY gives 2 classes; data.libsvm.num_classes is " +
                              std::to_string(l.num_classes())));
  return RequireSparseLinearFirst(spec);
}

// Criteo click logs name their files; their columns are Criteo's, and
// their 26 categorical fields are ids for a sparse_embedding of 26 bags of
// one id each.
Status ValidateCriteoFormat(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  RETURN_IF_ERROR(Require(!HasImageFields(d), "data.train_dir, data.test_dir and data.image are for data.format "
                                              "IMAGE_FOLDER; this spec's format is CRITEO"));
  RETURN_IF_ERROR(Require(d.table().label_column().empty() && d.table().feature_columns_size() == 0 &&
                              d.table().categorical_columns_size() == 0,
                          "data.table's columns are for data.format CSV or TSV; this spec's format is CRITEO (its "
                          "columns are fixed: a label, I1-I13, C1-C26; its settings are data.criteo)"));
  RETURN_IF_ERROR(Require(d.train_files_size() >= 1 && d.test_files_size() >= 1,
                          "data.format CRITEO needs data.train_files and data.test_files (one or more each)"));
  const proto::ModelSpec& m = spec.model();
  RETURN_IF_ERROR(Require(m.layer_size() > 0 && m.layer(0).has_sparse_embedding(),
                          "data.format CRITEO gives 26 categorical fields as 64-bit ids: the model's first layer "
                          "must be a sparse_embedding (e.g. layer { sparse_embedding { table: \"ids\" fields: 26 } })"));
  const proto::SparseEmbeddingSpec& e = m.layer(0).sparse_embedding();
  return Require(e.fields() == 26 && e.values_per_field() == 1,
                 "data.format CRITEO gives 26 bags of one id each: model.layer[0].sparse_embedding needs fields: 26 "
                 "and values_per_field: 1, got " + std::to_string(e.fields()) + " and " +
                     std::to_string(e.values_per_field()));
}

// Image folders name their two folders and the images' size.
Status ValidateImageFolderFormat(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  RETURN_IF_ERROR(Require(!HasTableFields(d), "data.train_files, data.test_files and data.table's columns are for "
                                              "data.format CSV or TSV; this spec's format is IMAGE_FOLDER"));
  RETURN_IF_ERROR(Require(!d.train_dir().empty() && !d.test_dir().empty(),
                          "data.format IMAGE_FOLDER needs data.train_dir and data.test_dir: folders of class folders "
                          "of .png, .jpg or .jpeg files"));
  RETURN_IF_ERROR(Require(d.max_train_examples() == 0 && d.max_test_examples() == 0,
                          "data.max_train_examples and data.max_test_examples are not for data.format IMAGE_FOLDER "
                          "(its images are listed class by class, so the first N would be the first classes): use "
                          "smaller folders"));
  RETURN_IF_ERROR(ValidateImageSpec(d.image()));
  return RequireNoEmbedding(spec, "IMAGE_FOLDER");
}

// The fields of data.format: tables name their files and label column, image
// folders their folders and the images' size, IDX data uses none of them.
Status ValidateDataFormat(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  switch (d.format()) {
    case proto::DataSpec::IDX:
      RETURN_IF_ERROR(Require(!HasTableFields(d), "data.train_files, data.test_files and data.table's columns are for "
                                                  "data.format CSV or TSV; this spec's format is IDX (set data.format)"));
      return Require(!HasImageFields(d), "data.train_dir, data.test_dir and data.image are for data.format "
                                         "IMAGE_FOLDER; this spec's format is IDX (set data.format)");
    case proto::DataSpec::CSV:
    case proto::DataSpec::TSV:
      return ValidateTableFormat(spec);
    case proto::DataSpec::IMAGE_FOLDER:
      return ValidateImageFolderFormat(spec);
    case proto::DataSpec::LIBSVM:
      return ValidateLibsvmFormat(spec);
    case proto::DataSpec::CRITEO:
      return ValidateCriteoFormat(spec);
  }
  return InvalidArgumentError("data.format " + std::to_string(d.format()) + " is unknown");
}

// The validation split (data.validation_*) and early stopping.
Status ValidateValidation(const proto::JobSpec& spec) {
  const proto::DataSpec& d = spec.data();
  const bool table = d.format() == proto::DataSpec::CSV || d.format() == proto::DataSpec::TSV ||
                     d.format() == proto::DataSpec::LIBSVM || d.format() == proto::DataSpec::CRITEO;
  const float fraction = d.validation_fraction();
  RETURN_IF_ERROR(
      Require(fraction >= 0 && fraction < 0.5, "data.validation_fraction must be in [0, 0.5)" + Got(fraction)));
  RETURN_IF_ERROR(Require(table || d.validation_files_size() == 0,
                          "data.validation_files are for data.format CSV, TSV, LIBSVM or CRITEO; IDX and "
                          "IMAGE_FOLDER data hold out data.validation_fraction of its training examples"));
  RETURN_IF_ERROR(Require(fraction == 0 || d.validation_files_size() == 0,
                          "data.validation_fraction and data.validation_files both give a validation set: set one"));
  RETURN_IF_ERROR(Require(d.max_validation_examples() >= 0,
                          "data.max_validation_examples must be >= 0" + Got(d.max_validation_examples())));
  RETURN_IF_ERROR(Require(d.max_validation_examples() == 0 || d.validation_files_size() > 0,
                          "data.max_validation_examples limits data.validation_files (data.validation_fraction "
                          "holds out a fraction of what data.max_train_examples leaves)"));
  const proto::EarlyStoppingSpec& e = spec.early_stopping();
  if (!proto::EarlyStoppingSpec::Metric_IsValid(e.metric())) {
    return InvalidArgumentError("early_stopping.metric " + std::to_string(e.metric()) + " is unknown");
  }
  RETURN_IF_ERROR(Require(e.patience() >= 0, "early_stopping.patience must be >= 0" + Got(e.patience())));
  RETURN_IF_ERROR(Require(e.min_delta() >= 0 && std::isfinite(e.min_delta()),
                          "early_stopping.min_delta must be a finite number >= 0" + Got(e.min_delta())));
  if (e.patience() == 0) return OkStatus();
  RETURN_IF_ERROR(Require(HasValidationSplit(d), "early_stopping.patience needs a validation split: set "
                                                 "data.validation_fraction (or data.validation_files for CSV/TSV)"));
  return Require(spec.eval_every_epoch(), "early_stopping.patience needs eval_every_epoch: true (it reads the "
                                          "validation metric after every epoch)");
}

Status ValidateJobSpec(const proto::JobSpec& spec) {
  RETURN_IF_ERROR(Require(!spec.name().empty(), "name must not be empty"));
  for (char c : spec.name()) {
    RETURN_IF_ERROR(Require(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.',
                            "name may hold only letters, digits, '-', '_' and '.', got '" + spec.name() + "'"));
  }
  RETURN_IF_ERROR(Require(spec.batch_size() >= 1, "batch_size must be >= 1" + Got(spec.batch_size())));
  RETURN_IF_ERROR(Require(spec.batch_size() <= 65536, "batch_size must be <= 65536" + Got(spec.batch_size())));
  RETURN_IF_ERROR(Require(spec.epochs() >= 1, "epochs must be >= 1" + Got(spec.epochs())));
  RETURN_IF_ERROR(Require(spec.epochs() <= 100000, "epochs must be <= 100000" + Got(spec.epochs())));
  RETURN_IF_ERROR(Require(spec.staleness() >= 0, "staleness must be >= 0" + Got(spec.staleness())));
  RETURN_IF_ERROR(Require(spec.staleness() <= kMaxStaleness,
                          "staleness must be <= " + std::to_string(kMaxStaleness) + Got(spec.staleness())));
  RETURN_IF_ERROR(Require(spec.staleness() == 0 || spec.consistency() == proto::SSP,
                          "staleness needs consistency: SSP" + Got(spec.staleness())));

  const proto::ClusterSpec& c = spec.cluster();
  RETURN_IF_ERROR(Require(c.servers() >= 1, "cluster.servers must be >= 1" + Got(c.servers())));
  RETURN_IF_ERROR(Require(c.servers() <= 256, "cluster.servers must be <= 256" + Got(c.servers())));
  RETURN_IF_ERROR(Require(c.workers() >= 1, "cluster.workers must be >= 1" + Got(c.workers())));
  RETURN_IF_ERROR(Require(c.workers() <= 1024, "cluster.workers must be <= 1024" + Got(c.workers())));
  RETURN_IF_ERROR(Require(c.heartbeat_interval_ms() >= 10,
                          "cluster.heartbeat_interval_ms must be >= 10" + Got(c.heartbeat_interval_ms())));
  RETURN_IF_ERROR(Require(c.heartbeat_timeout_ms() > c.heartbeat_interval_ms(),
                          "cluster.heartbeat_timeout_ms must be > heartbeat_interval_ms" + Got(c.heartbeat_timeout_ms())));

  const proto::DataSpec& d = spec.data();
  RETURN_IF_ERROR(Require(!d.dir().empty(), "data.dir must not be empty"));
  RETURN_IF_ERROR(Require(d.std() > 0, "data.std must be > 0" + Got(d.std())));
  RETURN_IF_ERROR(Require(d.shards_per_worker() >= 1, "data.shards_per_worker must be >= 1" + Got(d.shards_per_worker())));
  RETURN_IF_ERROR(Require(d.max_train_examples() >= 0, "data.max_train_examples must be >= 0" + Got(d.max_train_examples())));
  RETURN_IF_ERROR(Require(d.max_test_examples() >= 0, "data.max_test_examples must be >= 0" + Got(d.max_test_examples())));
  RETURN_IF_ERROR(ValidateDataFormat(spec));
  RETURN_IF_ERROR(ValidateClassNames(d));
  RETURN_IF_ERROR(ValidateValidation(spec));

  RETURN_IF_ERROR(ValidateOptimizerSpec(spec.optimizer()));
  const proto::CheckpointSpec& k = spec.checkpoint();
  RETURN_IF_ERROR(Require(k.every_epochs() >= 0, "checkpoint.every_epochs must be >= 0" + Got(k.every_epochs())));
  RETURN_IF_ERROR(Require(k.keep_last() >= 1, "checkpoint.keep_last must be >= 1" + Got(k.keep_last())));
  RETURN_IF_ERROR(Require(k.sparse_full_every() >= 1 && k.sparse_full_every() <= 1000,
                          "checkpoint.sparse_full_every must be in [1, 1000]" + Got(k.sparse_full_every())));
  RETURN_IF_ERROR(Require(k.every_steps() >= 0, "checkpoint.every_steps must be >= 0" + Got(k.every_steps())));
  RETURN_IF_ERROR(Require(k.every_seconds() >= 0, "checkpoint.every_seconds must be >= 0" + Got(k.every_seconds())));

  const proto::ModelSpec& m = spec.model();
  RETURN_IF_ERROR(Require(m.layer_size() >= 1, "model needs at least one layer"));
  RETURN_IF_ERROR(ValidateSparseTables(m));
  for (int i = 0; i < m.layer_size(); ++i) {
    const proto::LayerSpec& l = m.layer(i);
    const std::string where = "model.layer[" + std::to_string(i) + "]";
    const bool int8 = (l.has_linear() && l.linear().has_int8()) || (l.has_conv2d() && l.conv2d().has_int8());
    RETURN_IF_ERROR(Require(!int8, where + " is an int8 layer: those are for inference only (tessera export "
                                           "--quantize int8 makes them); a job trains float layers"));
    switch (l.kind_case()) {
      case proto::LayerSpec::kLinear:
        RETURN_IF_ERROR(Require(l.linear().out_features() >= 1,
                                where + ".linear.out_features must be >= 1" + Got(l.linear().out_features())));
        RETURN_IF_ERROR(Require(l.linear().out_features() <= (1 << 24),
                                where + ".linear.out_features must be <= 16777216" + Got(l.linear().out_features())));
        break;
      // Their settings depend on the input shape; Model::Create checks them.
      case proto::LayerSpec::kRelu:
      case proto::LayerSpec::kConv2D:
      case proto::LayerSpec::kMaxPool2D:
      case proto::LayerSpec::kFlatten:
      case proto::LayerSpec::kDropout:
      case proto::LayerSpec::kBatchNorm:
        break;
      case proto::LayerSpec::kEmbedding:
        RETURN_IF_ERROR(Require(i == 0, where + " is an embedding: it must be the first layer (its inputs are the "
                                                "data's values, as ids)"));
        break;
      case proto::LayerSpec::kColumnEmbedding:
        RETURN_IF_ERROR(Require(i == 0, where + " is a column_embedding: it must be the first layer (its inputs "
                                                "are the table's examples)"));
        RETURN_IF_ERROR(Require(spec.data().table().categorical_columns_size() > 0 &&
                                    (spec.data().format() == proto::DataSpec::CSV ||
                                     spec.data().format() == proto::DataSpec::TSV),
                                where + " is a column_embedding: it needs a CSV or TSV table with "
                                        "data.table.categorical_columns"));
        RETURN_IF_ERROR(Require(l.column_embedding().embedding_dim() >= 1,
                                where + ".column_embedding.embedding_dim must be >= 1" +
                                    Got(l.column_embedding().embedding_dim())));
        break;
      case proto::LayerSpec::kSparseLinear:
        RETURN_IF_ERROR(Require(i == 0, where + " is a sparse_linear: it must be the first layer (its inputs are "
                                                "the libsvm data's (feature, value) pairs)"));
        RETURN_IF_ERROR(Require(spec.data().format() == proto::DataSpec::LIBSVM,
                                where + " is a sparse_linear: it needs libsvm data (data.format LIBSVM)"));
        RETURN_IF_ERROR(Require(l.sparse_linear().out_features() >= 1 && l.sparse_linear().out_features() <= (1 << 24),
                                where + ".sparse_linear.out_features must be in [1, 16777216]" +
                                    Got(l.sparse_linear().out_features())));
        break;
      case proto::LayerSpec::kSparseEmbedding:
        RETURN_IF_ERROR(ValidateSparseEmbeddingLayer(m, i));
        RETURN_IF_ERROR(CheckBudgetHoldsABatch(m, i, spec.batch_size()));
        RETURN_IF_ERROR(Require(spec.data().format() == proto::DataSpec::CRITEO || HasSparseIdTable(spec.data()),
                                where + " is a sparse_embedding: it needs data whose examples carry 64-bit ids "
                                        "(data.format CRITEO, or a CSV/TSV table with data.table.sparse_ids)"));
        break;
      case proto::LayerSpec::kDotInteraction:
        RETURN_IF_ERROR(ValidateDotInteractionLayer(m, i));
        break;
      case proto::LayerSpec::KIND_NOT_SET:
        return InvalidArgumentError(where + " sets no layer kind (linear, relu, conv2d, max_pool2d, flatten, dropout, "
                                            "batch_norm, embedding, column_embedding, sparse_linear, "
                                            "sparse_embedding, dot_interaction)");
    }
  }
  return OkStatus();
}

Status ValidateOptimizerSpec(const proto::OptimizerSpec& o) {
  if (!proto::OptimizerSpec::Type_IsValid(o.type())) {
    return InvalidArgumentError("optimizer.type " + std::to_string(o.type()) + " is unknown");
  }
  // Written so that NaN fails every check.
  RETURN_IF_ERROR(Require(o.learning_rate() > 0, "optimizer.learning_rate must be > 0" + Got(o.learning_rate())));
  RETURN_IF_ERROR(Require(o.momentum() >= 0 && o.momentum() < 1, "optimizer.momentum must be in [0, 1)" + Got(o.momentum())));
  RETURN_IF_ERROR(Require(o.weight_decay() >= 0, "optimizer.weight_decay must be >= 0" + Got(o.weight_decay())));
  RETURN_IF_ERROR(Require(o.beta1() >= 0 && o.beta1() < 1, "optimizer.beta1 must be in [0, 1)" + Got(o.beta1())));
  RETURN_IF_ERROR(Require(o.beta2() >= 0 && o.beta2() < 1, "optimizer.beta2 must be in [0, 1)" + Got(o.beta2())));
  RETURN_IF_ERROR(Require(o.epsilon() > 0, "optimizer.epsilon must be > 0" + Got(o.epsilon())));
  if (!proto::OptimizerSpec::Schedule_IsValid(o.schedule())) {
    return InvalidArgumentError("optimizer.schedule " + std::to_string(o.schedule()) + " is unknown");
  }
  RETURN_IF_ERROR(Require(o.warmup_epochs() >= 0 && std::isfinite(o.warmup_epochs()),
                          "optimizer.warmup_epochs must be a finite number >= 0" + Got(o.warmup_epochs())));
  if (o.schedule() == proto::OptimizerSpec::STEP) {
    RETURN_IF_ERROR(
        Require(o.step_epochs() >= 1, "optimizer.step_epochs must be >= 1 with schedule STEP" + Got(o.step_epochs())));
  }
  RETURN_IF_ERROR(Require(o.step_epochs() >= 0, "optimizer.step_epochs must be >= 0" + Got(o.step_epochs())));
  RETURN_IF_ERROR(Require(o.gamma() > 0 && o.gamma() <= 1, "optimizer.gamma must be in (0, 1]" + Got(o.gamma())));
  const std::string lr = Got(o.learning_rate()).substr(sizeof(", got ") - 1);  // the number alone
  RETURN_IF_ERROR(Require(o.min_learning_rate() >= 0 && o.min_learning_rate() <= o.learning_rate(),
                          "optimizer.min_learning_rate must be in [0, learning_rate = " + lr + "]" +
                              Got(o.min_learning_rate())));
  return OkStatus();
}

namespace {

// Sets every unset singular field to its default, recursing into messages
// (an unset oneof member stays unset: setting it would change the choice).
void FillDefaults(google::protobuf::Message* message) {
  const google::protobuf::Descriptor* d = message->GetDescriptor();
  const google::protobuf::Reflection* r = message->GetReflection();
  using FD = google::protobuf::FieldDescriptor;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->is_repeated()) {
      if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
        for (int k = 0; k < r->FieldSize(*message, f); ++k) FillDefaults(r->MutableRepeatedMessage(message, f, k));
      }
      continue;
    }
    if (f->containing_oneof() != nullptr && !r->HasField(*message, f)) continue;
    // An int8 block's presence makes a layer int8 (inference only): never add one.
    if (f->message_type() == proto::Int8Spec::descriptor() && !r->HasField(*message, f)) continue;
    switch (f->cpp_type()) {
      case FD::CPPTYPE_MESSAGE: FillDefaults(r->MutableMessage(message, f)); break;
      case FD::CPPTYPE_INT32: if (!r->HasField(*message, f)) r->SetInt32(message, f, f->default_value_int32()); break;
      case FD::CPPTYPE_INT64: if (!r->HasField(*message, f)) r->SetInt64(message, f, f->default_value_int64()); break;
      case FD::CPPTYPE_UINT32: if (!r->HasField(*message, f)) r->SetUInt32(message, f, f->default_value_uint32()); break;
      case FD::CPPTYPE_UINT64: if (!r->HasField(*message, f)) r->SetUInt64(message, f, f->default_value_uint64()); break;
      case FD::CPPTYPE_FLOAT: if (!r->HasField(*message, f)) r->SetFloat(message, f, f->default_value_float()); break;
      case FD::CPPTYPE_DOUBLE: if (!r->HasField(*message, f)) r->SetDouble(message, f, f->default_value_double()); break;
      case FD::CPPTYPE_BOOL: if (!r->HasField(*message, f)) r->SetBool(message, f, f->default_value_bool()); break;
      case FD::CPPTYPE_ENUM: if (!r->HasField(*message, f)) r->SetEnum(message, f, f->default_value_enum()); break;
      case FD::CPPTYPE_STRING: if (!r->HasField(*message, f)) r->SetString(message, f, f->default_value_string()); break;
    }
  }
}

}  // namespace

std::string JobSpecToText(const proto::JobSpec& spec) {
  proto::JobSpec full = spec;
  FillDefaults(&full);
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.PrintToString(full, &text);
  return text;
}

const char* SplitName(Split split) {
  switch (split) {
    case Split::kTraining: return "training";
    case Split::kValidation: return "validation";
    case Split::kTest: return "test";
  }
  return "unknown";
}

bool HasValidationSplit(const proto::DataSpec& data) {
  return data.validation_fraction() > 0 || data.validation_files_size() > 0;
}

std::string DataPath(const proto::DataSpec& data, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return data.dir() + "/" + name;
}

}  // namespace tessera
