// Flags that override job spec fields, shared by `train` and `scheduler`.
#ifndef TESSERA_TOOLS_SPEC_FLAGS_H_
#define TESSERA_TOOLS_SPEC_FLAGS_H_

#include <string>

#include "core/status.h"
#include "proto/job.pb.h"
#include "tools/command.h"

namespace tessera {

// Loads the spec at `path`, applies the override flags that were given,
// validates, and checks the data files are readable IDX files.
// InvalidArgument/NotFound/DataLoss naming the field or file.
StatusOr<proto::JobSpec> LoadSpecWithOverrides(const std::string& path, const ParsedArgs& args);

}  // namespace tessera

#endif  // TESSERA_TOOLS_SPEC_FLAGS_H_
