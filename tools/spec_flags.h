// Flags that override job spec fields, shared by `train` and `scheduler`.
#ifndef TESSERA_TOOLS_SPEC_FLAGS_H_
#define TESSERA_TOOLS_SPEC_FLAGS_H_

#include <string>

#include "core/status.h"
#include "proto/job.pb.h"
#include "tools/command.h"

namespace tessera {

// Loads the spec at `path`, applies the override flags that were given,
// and, with check_data (the default), checks it can run (CheckSpecRunnable).
// InvalidArgument/NotFound/DataLoss naming the field or file.
StatusOr<proto::JobSpec> LoadSpecWithOverrides(const std::string& path, const ParsedArgs& args,
                                               bool check_data = true);

// Applies the override flags that were given. InvalidArgument for a bad value.
Status ApplySpecOverrides(const ParsedArgs& args, proto::JobSpec* spec);

// Validates the spec, reads every byte of the data (IDX files, every record
// of a table, every image of an image folder decoded) and checks that the
// model fits its shape. `source` prefixes spec errors.
Status CheckSpecRunnable(const proto::JobSpec& spec, const std::string& source);

}  // namespace tessera

#endif  // TESSERA_TOOLS_SPEC_FLAGS_H_
