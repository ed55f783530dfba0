// `tessera train SPEC`: checks the spec, makes the run directory, and runs
// the job in local mode (tools/local_job.h).
#include <ctime>

#include "core/file_util.h"
#include "core/spec.h"
#include "tools/command.h"
#include "tools/local_job.h"
#include "tools/role_flags.h"
#include "tools/spec_flags.h"

namespace tessera {
namespace {

std::string DefaultRunDir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string dir = "runs/" + name + "-" + stamp;
  for (int i = 2; FileExists(dir); ++i) dir = "runs/" + name + "-" + stamp + "-" + std::to_string(i);
  return dir;
}

}  // namespace

int RunTrain(const ParsedArgs& args) {
  const Command& self = FindCommand("train");
  if (args.positional.size() != 1) {
    return UsageError(self, args.positional.empty() ? "missing the job spec (tessera train SPEC.pbtxt)"
                                                    : "expected one job spec, got " +
                                                          std::to_string(args.positional.size()) + " arguments");
  }
  auto spec = LoadSpecWithOverrides(args.positional[0], args);
  if (!spec.ok()) return UsageError(self, spec.status().message());
  if (FLAGS_max_restarts < 0) {
    return UsageError(self, "--max-restarts must be >= 0, got " + std::to_string(FLAGS_max_restarts));
  }
  if (FLAGS_threads < 0) return UsageError(self, "--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  auto mode = ParseProgressMode(FLAGS_progress);
  if (!mode.ok()) return UsageError(self, mode.status().message());
  if (!FLAGS_force) {
    if (Status fits = CheckLocalWorkersFit(*spec); !fits.ok()) return UsageError(self, fits.message());
  }

  const std::string run_dir = FLAGS_run_dir.empty() ? DefaultRunDir(spec->name()) : FLAGS_run_dir;
  if (FileExists(run_dir + "/summary.json") || FileExists(run_dir + "/spec.pbtxt")) {
    return UsageError(self, "run directory " + run_dir + " already holds a run; pick another --run-dir");
  }
  if (Status s = MakeDirs(run_dir + "/logs"); !s.ok()) return UsageError(self, s.message());
  if (Status s = WriteFileAtomic(run_dir + "/spec.pbtxt", JobSpecToText(*spec)); !s.ok()) {
    return UsageError(self, s.message());
  }
  LocalJobOptions options;
  options.run_dir = run_dir;
  options.threads = FLAGS_threads;
  options.max_restarts = FLAGS_max_restarts;
  options.curve = FLAGS_curve;
  options.progress = *mode;
  return RunLocalJob(self, *spec, options);
}

}  // namespace tessera
