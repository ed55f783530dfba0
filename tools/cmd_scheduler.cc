// `tessera scheduler`: the scheduler role of a cluster.
#include <chrono>
#include <filesystem>
#include <iostream>

#include <glog/logging.h>

#include "core/zmq_transport.h"
#include "tools/command.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "scheduler/scheduler.h"
#include "scheduler/spill_space.h"
#include "tools/spec_flags.h"

namespace tessera {
namespace {

// A local job's servers spill their sparse tables under RUN/spill
// (tools/local_job.cc): its rows must fit there (scheduler/spill_space.h).
// A hand-started cluster's servers spill on their own machines' disks,
// which the scheduler cannot see: those are not checked.
Status CheckLocalSpillSpace(const SchedulerOptions& options) {
  if (options.launcher_token.empty() || options.run_dir.empty()) return OkStatus();
  const proto::ModelSpec& model = options.spec.model();
  if (SpillBytesNeeded(model, options.shape->distinct_sparse_ids) == 0) return OkStatus();
  const std::string dir = options.run_dir + "/spill";
  StatusOr<int64_t> free_bytes = FLAGS_test_spill_free_bytes;  // tests only: a small disk
  if (*free_bytes < 0) free_bytes = FreeDiskBytes(dir);
  if (!free_bytes.ok()) {  // no answer from the filesystem is no reason to refuse the job
    LOG(WARNING) << "not checking the disk for the sparse tables' spill: " << free_bytes.status().ToString();
    return OkStatus();
  }
  return CheckSpillSpace(model, options.shape->distinct_sparse_ids, dir, *free_bytes);
}

// Checks options->spec can run and plans the job once, before the socket
// binds (a resumed job with the vocabularies its run stored); every rollback
// reuses the plan, vocabularies included. A table's plan reads and checks
// every record as CheckSpecRunnable does (the same one-line errors), so a
// table is read once here, not twice; other data is checked whole first
// (image folders: every image decoded), which planning alone does not do.
Status PlanBeforeBinding(const std::string& spec_path, SchedulerOptions* options) {
  const proto::JobSpec& spec = options->spec;
  if (IsTableFormat(spec.data())) {
    RETURN_IF_ERROR(ValidateJobSpec(spec).WithContext(spec_path));
  } else {
    RETURN_IF_ERROR(CheckSpecRunnable(spec, spec_path));
  }
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(options->shape, PlanSchedulerJob(*options));
  options->planning_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return CheckLocalSpillSpace(*options);
}

}  // namespace

int RunScheduler(const ParsedArgs& args) {
  const Command& self = FindCommand("scheduler");
  if (!args.positional.empty()) return UsageError(self, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_spec.empty()) return UsageError(self, "--spec is required");
  auto spec = LoadSpecWithOverrides(FLAGS_spec, args, /*check_data=*/false);
  if (!spec.ok()) return UsageError(self, spec.status().message());
  SchedulerOptions options;
  options.spec = *spec;
  std::string no_scheduler_key;
  auto curve = CurveFlags(/*binds=*/true, /*connects=*/false, &no_scheduler_key);
  if (!curve.ok()) return UsageError(self, curve.status().message());
  // Without keys only this machine may reach the scheduler.
  options.host = !FLAGS_host.empty() ? FLAGS_host : curve->has_value() ? "0.0.0.0" : "127.0.0.1";
  if (Status s = CheckBindHost(options.host, curve->has_value()); !s.ok()) return UsageError(self, s.message());
  auto port = PortFlag(args, /*default_port=*/7000);
  if (!port.ok()) return UsageError(self, port.status().message());
  options.port = *port;
  options.port_file = FLAGS_port_file;
  options.run_dir = FLAGS_run_dir;
  options.register_timeout_s = FLAGS_register_timeout;
  options.resume_from = FLAGS_resume_from;
  auto launcher_token = ReadTokenFlag("--launcher-token-file", FLAGS_launcher_token_file);
  if (!launcher_token.ok()) return UsageError(self, launcher_token.status().message());
  options.launcher_token = *launcher_token;
  auto cluster_token = ReadTokenFlag("--cluster-token-file", FLAGS_cluster_token_file);
  if (!cluster_token.ok()) return UsageError(self, cluster_token.status().message());
  options.cluster_token = *cluster_token;
  // A checkpoint directory is verified when the job loads it; anything else names one to resolve.
  if (!FLAGS_resume_from.empty() && !FileExists(FLAGS_resume_from + "/MANIFEST")) {
    std::string note;
    auto checkpoint = ResolveCheckpoint(FLAGS_resume_from, &note);
    if (!checkpoint.ok()) return UsageError(self, "--resume-from: " + checkpoint.status().message());
    options.resume_from = *checkpoint;
  }
  if (!options.run_dir.empty()) {
    if (Status s = MakeDirs(options.run_dir); !s.ok()) return UsageError(self, s.message());
  }
  if (FLAGS_max_restarts < 0) {
    return UsageError(self, "--max-restarts must be >= 0, got " + std::to_string(FLAGS_max_restarts));
  }
  options.max_rollbacks = FLAGS_max_restarts;
  if (Status s = PlanBeforeBinding(FLAGS_spec, &options); !s.ok()) return UsageError(self, s.message());
  const std::atomic<bool>* stop = InstallStopSignals();
  std::unique_ptr<ZmqTransport> transport = MakeTransport(std::move(*curve));
  std::unique_ptr<Socket> socket;  // kept across rollbacks: the nodes know its address
  while (true) {
    Scheduler scheduler(transport.get(), options, stop, std::move(socket));
    Status ran = scheduler.Run();
    if (!scheduler.rolled_back()) return FinishRole("scheduler", ran);
    socket = scheduler.TakeSocket();
    ++options.rollbacks_done;
    // The newest intact checkpoint, else where this run began (a checkpoint it resumed, or the start).
    std::string note;
    auto checkpoint = options.run_dir.empty() ? StatusOr<std::string>(NotFoundError("no run directory"))
                                              : ResolveCheckpoint(options.run_dir, &note);
    if (checkpoint.ok()) {
      std::error_code ec;
      options.resume_from = std::filesystem::absolute(*checkpoint, ec).lexically_normal().string();
    } else if (checkpoint.status().code() != StatusCode::kNotFound) {
      return FinishRole("scheduler", checkpoint.status().WithContext("cannot roll back"));
    }
    LOG(WARNING) << "rollback " << options.rollbacks_done << " of " << options.max_rollbacks << ": "
                 << scheduler.rollback_reason() << "; the job goes on from "
                 << (options.resume_from.empty() ? std::string("its start") : options.resume_from);
  }
}

}  // namespace tessera
