// Local mode: a job run as child processes on 127.0.0.1 — 1 scheduler, the
// spec's servers and workers (this same binary, one role each) — with
// progress shown, the result printed, and no child left behind on success,
// failure or Ctrl-C. Used by `tessera train` and `tessera resume`.
#ifndef TESSERA_TOOLS_LOCAL_JOB_H_
#define TESSERA_TOOLS_LOCAL_JOB_H_

#include <cstdint>
#include <string>

#include "proto/job.pb.h"
#include "tools/command.h"
#include "tools/progress_view.h"

namespace tessera {

struct LocalJobOptions {
  // The run directory; it must exist and hold spec.pbtxt (the resolved spec).
  std::string run_dir;
  // A checkpoint directory to continue from; empty for a fresh job.
  std::string resume_from;
  // Compute threads per worker; 0: the cores divided among the workers.
  int threads = 0;
  ProgressMode progress = ProgressMode::kPlain;
  // Recoveries, at most this many in all: a server that dies is replaced and
  // the scheduler rolls the job back to the newest intact checkpoint (or the
  // start), the scheduler and workers running on; a scheduler that dies takes
  // every process down, and the job starts again from that checkpoint. Apart
  // from these, each launch starts at most this many replacement workers.
  // Default 3.
  int max_restarts = 3;
  // Every role with CURVE, on keys made for the launch in RUN/keys
  // (tools/local_curve_keys.h), instead of plain TCP. Both stay on
  // 127.0.0.1. Default false.
  bool curve = false;
};

// Runs the job and returns the command's exit code (0, 1 on a failed role,
// 130 when interrupted). Messages are prefixed "tessera COMMAND:".
int RunLocalJob(const Command& self, const proto::JobSpec& spec, const LocalJobOptions& options);

// What this machine offers the workers of a local job.
struct MachineResources {
  int cores = 1;
  uint64_t available_memory_bytes = 0;  // 0: unknown (not a limit then)
};

// This machine: its cores, and the memory /proc/meminfo says is available.
MachineResources ThisMachine();

// Workers per core a local job may have without --force: each is a process
// with at least one compute thread, and a BSP step waits for the slowest.
constexpr int kLocalWorkersPerCore = 4;

// The memory one worker of `spec` needs: 64 MiB for the process and the
// model, plus for IDX data its own copy of the training and test sets (the
// examples it will load), for a table two blocks, for image folders two
// batches (the one it trains on and the one read ahead). NotFound/DataLoss
// when an IDX file cannot be read.
StatusOr<uint64_t> WorkerMemoryBytes(const proto::JobSpec& spec);

// OK when `workers` workers of `bytes_per_worker` each fit on `machine`: at
// most kLocalWorkersPerCore per core, and (when known) the available memory
// holds them. Otherwise InvalidArgument, one line saying why and naming
// --force.
Status CheckLocalWorkers(int workers, uint64_t bytes_per_worker, const MachineResources& machine);

// CheckLocalWorkers for spec's workers on this machine.
Status CheckLocalWorkersFit(const proto::JobSpec& spec);

// How long the launcher waits for its scheduler to listen: 30 s, plus for a
// CSV/TSV table the time to read its files at 5 MB/s. The scheduler reads
// every record twice before it listens (its check of the spec, then its
// plan), at about 100 MB/s a pass on one core: a machine ten times slower
// still makes it. A file that cannot be sized adds nothing.
int64_t SchedulerListenTimeoutMs(const proto::DataSpec& data);

// --progress: auto, live, plain or none. InvalidArgument otherwise.
StatusOr<ProgressMode> ParseProgressMode(const std::string& flag);

// A role of a local job that exited with an error.
struct RoleFailure {
  std::string label;     // "scheduler", "server-1", "worker-0"
  int exit_code = 0;
  std::string log_path;  // its log (a restarted role appends to the same file)
};

// The one line a recovery prints for the role it lost: the job goes on, so
// none of that role's log is shown, only where it is. `from` says where the
// job restarts ("checkpoint DIR (step N)"); restart `restart` of `max_restarts`.
std::string RestartLine(const RoleFailure& failure, const std::string& from, int restart, int max_restarts);

// The message of a job that fails for good because of `failure`: which role,
// its exit code, and the last `tail_lines` lines of its log.
std::string FailureMessage(const RoleFailure& failure, int tail_lines = 5);

}  // namespace tessera

#endif  // TESSERA_TOOLS_LOCAL_JOB_H_
