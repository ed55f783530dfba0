// Flags shared by several commands (defined once in role_flags.cc).
#ifndef TESSERA_TOOLS_ROLE_FLAGS_H_
#define TESSERA_TOOLS_ROLE_FLAGS_H_

#include <gflags/gflags.h>

#include <memory>
#include <optional>
#include <string>

#include "core/status.h"
#include "core/zmq_transport.h"
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
DECLARE_string(curve_secret_key);
DECLARE_string(curve_allow_keys);
DECLARE_string(scheduler_public_key);
DECLARE_bool(insecure);
DECLARE_bool(curve);

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

// What the CURVE flags give a role: nullopt without --curve-secret-key,
// else its key pair, the allow-list (`binds`: the scheduler, a server) and
// the scheduler's public key through *scheduler_key (`connects`: a server,
// a worker). InvalidArgument naming the flag and the file's line and column
// for a missing or bad key file, or a flag that CURVE needs and lacks.
StatusOr<std::optional<CurveSettings>> CurveFlags(bool binds, bool connects, std::string* scheduler_key);

// Checks a role may bind `host`: any address with CURVE, else only a
// loopback one unless --insecure was given (then it logs a warning).
// InvalidArgument saying so otherwise.
Status CheckBindHost(const std::string& host, bool curve);

// The role's transport: CURVE when `curve` holds settings, else plain TCP.
std::unique_ptr<ZmqTransport> MakeTransport(std::optional<CurveSettings> curve);

}  // namespace tessera

#endif  // TESSERA_TOOLS_ROLE_FLAGS_H_
