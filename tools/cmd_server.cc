// `tessera server`: a parameter server role of a cluster.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "core/zmq_transport.h"
#include "tools/command.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "server/server.h"

namespace tessera {

int RunServer(const ParsedArgs& args) {
  const Command& self = FindCommand("server");
  if (!args.positional.empty()) return UsageError(self, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_scheduler.empty()) return UsageError(self, "--scheduler HOST:PORT is required");
  if (auto e = NormalizeEndpoint(FLAGS_scheduler); !e.ok()) return UsageError(self, e.status().message());
  ServerOptions options;
  options.scheduler = FLAGS_scheduler;
  auto curve = CurveFlags(/*binds=*/true, /*connects=*/true, &options.scheduler_public_key);
  if (!curve.ok()) return UsageError(self, curve.status().message());
  if (curve->has_value()) options.curve_public_key = (*curve)->keys.public_key;
  options.host = FLAGS_host.empty() ? "127.0.0.1" : FLAGS_host;
  if (Status s = CheckBindHost(options.host, curve->has_value()); !s.ok()) return UsageError(self, s.message());
  auto port = PortFlag(args, /*default_port=*/0);
  if (!port.ok()) return UsageError(self, port.status().message());
  options.port = *port;
  options.register_timeout_s = FLAGS_register_timeout;
  options.spill_dir = FLAGS_spill_dir;
  auto cluster_token = ReadTokenFlag("--cluster-token-file", FLAGS_cluster_token_file);
  if (!cluster_token.ok()) return UsageError(self, cluster_token.status().message());
  options.cluster_token = *cluster_token;
  // Tests only (tests/checkpoint_write_test.cc): hold each checkpoint part before reporting it.
  options.checkpoint_report_delay = std::chrono::milliseconds(std::max(0, FLAGS_test_checkpoint_write_delay_ms));
  // Tests only (tests/sparse_bad_input_test.cc): a full disk under the spill database.
  options.test_spill_writes_before_full = FLAGS_test_spill_writes_before_full;
  const std::atomic<bool>* stop = InstallStopSignals();
  std::unique_ptr<ZmqTransport> transport = MakeTransport(std::move(*curve));
  Server server(transport.get(), options, stop);
  return FinishRole("server", server.Run());
}

}  // namespace tessera
