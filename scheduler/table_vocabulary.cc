#include "scheduler/table_vocabulary.h"

#include "core/categorical.h"
#include "core/file_util.h"

namespace tessera {

namespace {

std::string VocabularyPath(const std::string& run_dir) { return run_dir + "/" + kTableVocabularyFile; }

}  // namespace

bool HasVocabularyColumns(const proto::DataSpec& data) {
  for (const proto::CategoricalColumnSpec& c : data.table().categorical_columns()) {
    if (c.has_vocabulary()) return true;
  }
  return false;
}

Status WriteTableVocabularies(const std::string& run_dir, const proto::TableData& table) {
  proto::TableVocabularies file;
  file.set_format_version(1);
  *file.mutable_columns() = table.categorical_columns();
  std::string bytes;
  if (!file.SerializeToString(&bytes)) return InternalError("cannot serialize the table's vocabularies");
  return WriteFileAtomic(VocabularyPath(run_dir), bytes);
}

StatusOr<proto::TableVocabularies> ReadTableVocabularies(const std::string& run_dir) {
  const std::string path = VocabularyPath(run_dir);
  if (!FileExists(path)) {
    return FailedPreconditionError(path + " is missing: a job with vocabulary columns (data.table."
                                          "categorical_columns) resumes with the vocabularies it started with");
  }
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
  proto::TableVocabularies file;
  if (!file.ParseFromString(bytes)) return DataLossError(path + " does not parse as TableVocabularies");
  if (file.format_version() != 1) {
    return DataLossError(path + ": format_version " + std::to_string(file.format_version()) + ", expected 1");
  }
  for (const proto::CategoricalColumn& column : file.columns()) {
    RETURN_IF_ERROR(ValidateCategoricalColumn(column).WithContext(path));
  }
  return file;
}

}  // namespace tessera
