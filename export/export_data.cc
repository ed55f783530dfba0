#include "export/export_data.h"

#include <nlohmann/json.hpp>

#include "core/byte_source.h"
#include "core/categorical.h"
#include "core/criteo_format.h"
#include "core/csv_reader.h"
#include "core/image_folder_data.h"
#include "core/json.h"
#include "core/libsvm_data.h"
#include "core/table_data.h"
#include "core/task.h"
#include "scheduler/job_shape.h"

namespace tessera {
namespace {

// The manifest is JSON, whose strings are UTF-8: a vocabulary value of
// other bytes (a Latin-1 file, say) could be written but not read back.
Status CheckVocabularyIsUtf8(const proto::CategoricalColumn& column) {
  for (int k = 0; k < column.vocabulary_size(); ++k) {
    if (nlohmann::json::parse(JsonQuote(column.vocabulary(k)), nullptr, /*allow_exceptions=*/false).is_discarded()) {
      return InvalidArgumentError("data.table.categorical_columns '" + column.name() + "': vocabulary value " +
                                  std::to_string(k) + " " + QuoteForMessage(column.vocabulary(k)) +
                                  " is not UTF-8, which the model's manifest (JSON) cannot hold");
    }
  }
  return OkStatus();
}

// The header names of the training files' label and feature columns, in the
// order the table's TableData gives them: the numeric ones, then the
// categorical ones with their hashing or vocabulary.
StatusOr<TablePreprocessing> DescribeTablePreprocessing(const proto::DataSpec& data, const proto::TableData& table) {
  const std::vector<std::string> files = TableFiles(data, Split::kTraining);
  if (files.empty()) return InvalidArgumentError("data.train_files is empty");
  ASSIGN_OR_RETURN(std::unique_ptr<CsvReader> reader, CsvReader::Open(files[0], TableCsvOptions(data)));
  const std::vector<std::string>& header = reader->Columns();
  TablePreprocessing t;
  t.format = data.format() == proto::DataSpec::TSV ? "tsv" : "csv";
  t.label_column = data.table().label_column();
  t.scaling = data.table().scaling() == proto::TableSpec::STANDARDIZE ? "standardize" : "none";
  for (int f = 0; f < table.feature_columns_size(); ++f) {
    const int index = table.feature_columns(f);
    if (index < 0 || index >= static_cast<int>(header.size())) {
      return DataLossError(files[0] + ": its header changed while the export read it");
    }
    TableColumn& c = t.columns.emplace_back();
    c.name = header[index];
    c.fill_value = data.table().fill_value();
    c.shift = table.shift(f);
    c.scale = table.scale(f);
  }
  for (const proto::CategoricalColumn& column : table.categorical_columns()) {
    RETURN_IF_ERROR(CheckVocabularyIsUtf8(column));
    auto c = MakeCategoricalTableColumn(column.name(), column);
    if (!c.ok()) return c.status().WithContext("the job's categorical columns");
    t.columns.push_back(*std::move(c));
  }
  return t;
}

ImagePreprocessing DescribeImagePreprocessing(const proto::ImageSpec& image) {
  ImagePreprocessing i;
  i.width = image.width();
  i.height = image.height();
  i.channels = image.channels();
  i.mean = ImageChannelMeans(image);
  i.std = ImageChannelStds(image);
  return i;
}

// What training's libsvm reader makes of a line: the planned features and
// pairs, the spec's index base and labels.
LibsvmPreprocessing DescribeLibsvmPreprocessing(const proto::LibsvmSpec& spec, const proto::LibsvmData& libsvm) {
  LibsvmPreprocessing l;
  l.num_features = libsvm.num_features();
  l.index_base = spec.index_base();
  l.pairs = libsvm.max_nonzeros();
  l.signed_binary = spec.labels() == proto::LibsvmSpec::SIGNED_BINARY;
  return l;
}

}  // namespace

bool IsExportDataFormat(const proto::DataSpec& data) {
  return IsTableFormat(data) || IsImageFolderFormat(data) || IsLibsvmFormat(data);
}

StatusOr<ExportData> PlanExportData(const proto::JobSpec& spec, int64_t trained_examples,
                                    const proto::TableVocabularies* stored) {
  auto shape = PlanJob(spec, stored);
  if (!shape.ok()) {
    return shape.status().WithContext("reading the job's data for its preprocessing");
  }
  if (trained_examples > 0 && shape->train_examples != trained_examples) {
    return InvalidArgumentError("the training data holds " + std::to_string(shape->train_examples) +
                                " training examples now, and the checkpoint's job trained on " +
                                std::to_string(trained_examples) +
                                ": it changed since, and the preprocessing read from it now would not be training's");
  }
  ExportData out;
  out.map = MakeClusterMap(spec, *shape, /*server_addresses=*/{}, JobStart());
  out.num_classes = shape->num_classes;
  out.loss = shape->task.loss;
  out.preprocessing.task = TaskOfLoss(shape->task.loss);
  // A regression's labels are values: it has no classes to name.
  if (out.preprocessing.task != Task::kRegression) out.preprocessing.class_names = shape->class_names;
  const proto::DataSpec& data = spec.data();
  if (data.format() == proto::DataSpec::CRITEO) {
    // Criteo's layout and hash are fixed: nothing to describe but the kind.
    out.preprocessing.kind = InputKind::kCriteo;
    out.input_shape = {kCriteoIntegerFields + kCriteoCategoricalFields};
  } else if (IsTableFormat(data)) {
    out.preprocessing.kind = InputKind::kTable;
    ASSIGN_OR_RETURN(out.preprocessing.table, DescribeTablePreprocessing(data, out.map.table_data()));
    out.input_shape = {static_cast<int64_t>(out.preprocessing.table.columns.size())};
    for (const proto::CategoricalColumn& c : out.map.table_data().categorical_columns()) {
      out.categorical_rows.push_back(CategoricalRows(c));
    }
  } else if (IsLibsvmFormat(data)) {
    out.preprocessing.kind = InputKind::kLibsvm;
    out.preprocessing.libsvm = DescribeLibsvmPreprocessing(data.libsvm(), out.map.libsvm_data());
    out.input_shape = LibsvmExampleShape(out.map.libsvm_data());
    out.sparse_features = out.map.libsvm_data().num_features();
  } else {
    out.preprocessing.kind = InputKind::kImage;
    out.preprocessing.image = DescribeImagePreprocessing(data.image());
    out.input_shape = ImageExampleShape(data.image());
  }
  return out;
}

StatusOr<std::unique_ptr<ExampleReader>> OpenExportReader(const ExportData& data, Split split) {
  return OpenExampleReader(data.map.spec().data(), data.map, split);
}

}  // namespace tessera
