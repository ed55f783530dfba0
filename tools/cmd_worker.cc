// `tessera worker`: a worker role of a cluster.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "core/zmq_transport.h"
#include "models/device.h"
#include "tools/command.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "worker/worker.h"

namespace tessera {

int RunWorker(const ParsedArgs& args) {
  const Command& self = FindCommand("worker");
  if (!args.positional.empty()) return UsageError(self, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_scheduler.empty()) return UsageError(self, "--scheduler HOST:PORT is required");
  if (auto e = NormalizeEndpoint(FLAGS_scheduler); !e.ok()) return UsageError(self, e.status().message());
  if (FLAGS_threads < 0) return UsageError(self, "--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  std::string scheduler_key;
  auto curve = CurveFlags(/*binds=*/false, /*connects=*/true, &scheduler_key);
  if (!curve.ok()) return UsageError(self, curve.status().message());
  auto device = ResolveDevice(FLAGS_device);
  if (!device.ok()) return UsageError(self, device.status().message());
  LOG(INFO) << "computing on " << DeviceName(*device) << " (--device=" << FLAGS_device << ")";
  WorkerOptions options;
  options.scheduler = FLAGS_scheduler;
  options.threads = FLAGS_threads;
  options.overlap_push = FLAGS_overlap_push;
  options.overlap_pull = FLAGS_overlap_pull;
  options.device = *device;
  options.device_auto = FLAGS_device == "auto";
  options.register_timeout_s = FLAGS_register_timeout;
  auto cluster_token = ReadTokenFlag("--cluster-token-file", FLAGS_cluster_token_file);
  if (!cluster_token.ok()) return UsageError(self, cluster_token.status().message());
  options.cluster_token = *cluster_token;
  options.reply_timeout_s = FLAGS_reply_timeout;
  options.scheduler_public_key = scheduler_key;
  options.params_out = FLAGS_params_out;
  options.test_step_delay = std::chrono::milliseconds(std::max(0, FLAGS_test_step_delay_ms));
  options.test_step_delay_rank = FLAGS_test_step_delay_rank;
  const std::atomic<bool>* stop = InstallStopSignals();
  std::unique_ptr<ZmqTransport> transport = MakeTransport(std::move(*curve));
  Worker worker(transport.get(), options, stop);
  return FinishRole("worker", worker.Run());
}

}  // namespace tessera
