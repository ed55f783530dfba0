// Flags shared by several commands (defined once in role_flags.cc).
#ifndef TESSERA_TOOLS_ROLE_FLAGS_H_
#define TESSERA_TOOLS_ROLE_FLAGS_H_

#include <gflags/gflags.h>

#include <string>

#include "core/status.h"
#include "tools/command.h"

DECLARE_string(spec);
DECLARE_string(launcher_token_file);
DECLARE_string(cluster_token_file);
DECLARE_int32(test_checkpoint_write_delay_ms);
DECLARE_int32(test_step_delay_ms);
DECLARE_int32(test_step_delay_rank);
DECLARE_int64(test_spill_writes_before_full);
DECLARE_int64(test_spill_free_bytes);
DECLARE_string(host);
DECLARE_string(spill_dir);
DECLARE_int32(port);
DECLARE_string(port_file);
DECLARE_string(run_dir);
DECLARE_int32(register_timeout);
DECLARE_string(scheduler);
DECLARE_int32(threads);
DECLARE_bool(overlap_push);
DECLARE_bool(overlap_pull);
DECLARE_string(device);
DECLARE_string(params_out);
DECLARE_string(progress);
DECLARE_string(resume_from);
DECLARE_bool(json);
DECLARE_int32(max_restarts);
DECLARE_int32(reply_timeout);
DECLARE_bool(force);

namespace tessera {

// Exit code for a role's final status, after logging it and printing one line.
int FinishRole(const char* role, const Status& status);

// The port --port gives, or `default_port` when the flag was not given.
// InvalidArgument unless it is in [0, 65535] (0: the OS picks a free one):
// a larger value would wrap around to another port, a negative one to the
// default.
StatusOr<int> PortFlag(const ParsedArgs& args, int default_port);

// The secret in the file a token flag names (`flag`, e.g. "--cluster-token-file"),
// or "" when `path` is empty. InvalidArgument naming the flag when the file
// cannot be read or is empty.
StatusOr<std::string> ReadTokenFlag(const std::string& flag, const std::string& path);

}  // namespace tessera

#endif  // TESSERA_TOOLS_ROLE_FLAGS_H_
