// Loading and validating job specs (protobuf text format, strict: unknown
// fields are errors).
#ifndef TESSERA_CORE_SPEC_H_
#define TESSERA_CORE_SPEC_H_

#include <string>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

// Parses `text`. InvalidArgument with "SOURCE:LINE:COL: problem" on a syntax
// error or an unknown field.
StatusOr<proto::JobSpec> ParseJobSpec(const std::string& text, const std::string& source_name);

// Reads and parses the file at `path`. NotFound when it cannot be read.
StatusOr<proto::JobSpec> LoadJobSpec(const std::string& path);

// Checks every value; returns InvalidArgument naming the first bad field,
// e.g. "cluster.workers must be >= 1, got 0".
Status ValidateJobSpec(const proto::JobSpec& spec);

// Checks the optimizer's hyperparameters; InvalidArgument naming the field
// ("optimizer.momentum must be in [0, 1), got 1"). Servers call it on the
// spec they receive, too.
Status ValidateOptimizerSpec(const proto::OptimizerSpec& spec);

// The spec in text format, every default made explicit (for the run directory).
std::string JobSpecToText(const proto::JobSpec& spec);

// The splits of a data set. The validation split is held out of the
// training files (data.validation_fraction) or read from files of its own
// (data.validation_files).
enum class Split { kTraining, kValidation, kTest };

// "training", "validation", "test".
const char* SplitName(Split split);

// True when `data` asks for a validation split (a validation_fraction or
// validation_files).
bool HasValidationSplit(const proto::DataSpec& data);

// Path of the data file `name` under data.dir (absolute names stay as they are).
std::string DataPath(const proto::DataSpec& data, const std::string& name);

}  // namespace tessera

#endif  // TESSERA_CORE_SPEC_H_
