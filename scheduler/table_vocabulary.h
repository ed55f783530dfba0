// The categorical columns a job started with, stored in its run directory
// (RUN/table_vocabulary.pb, proto::TableVocabularies; docs/FORMATS.md) so
// that a resumed job gives every value the id it had when the parameters
// were trained, whatever the data files hold by then. The scheduler writes
// it when it plans a job and reads it when it resumes one; only jobs with a
// vocabulary column need it (hashed ids depend on the spec alone).
// Functions only; no state.
#ifndef TESSERA_SCHEDULER_TABLE_VOCABULARY_H_
#define TESSERA_SCHEDULER_TABLE_VOCABULARY_H_

#include <string>

#include "core/status.h"
#include "proto/checkpoint.pb.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

inline constexpr char kTableVocabularyFile[] = "table_vocabulary.pb";

// Whether `data` is a table with a categorical column that has a vocabulary.
bool HasVocabularyColumns(const proto::DataSpec& data);

// Writes table.categorical_columns to RUN_DIR/table_vocabulary.pb
// (atomically). The file system's error on failure.
Status WriteTableVocabularies(const std::string& run_dir, const proto::TableData& table);

// Reads RUN_DIR/table_vocabulary.pb: FailedPrecondition when it is missing
// (a run directory from before vocabularies were stored, or not this
// job's), DataLoss when it does not parse, has another format_version, or
// holds a column ValidateCategoricalColumn refuses.
StatusOr<proto::TableVocabularies> ReadTableVocabularies(const std::string& run_dir);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_TABLE_VOCABULARY_H_
