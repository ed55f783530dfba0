// `tessera scheduler`: the scheduler role of a cluster.
#include <iostream>

#include "core/transport.h"
#include "tools/command.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "core/file_util.h"
#include "scheduler/scheduler.h"
#include "tools/spec_flags.h"

namespace tessera {

int RunScheduler(const ParsedArgs& args) {
  const Command& self = FindCommand("scheduler");
  if (!args.positional.empty()) return UsageError(self, "unexpected argument '" + args.positional[0] + "'");
  if (FLAGS_spec.empty()) return UsageError(self, "--spec is required");
  auto spec = LoadSpecWithOverrides(FLAGS_spec, args);
  if (!spec.ok()) return UsageError(self, spec.status().message());
  SchedulerOptions options;
  options.spec = *spec;
  options.host = FLAGS_host.empty() ? "0.0.0.0" : FLAGS_host;
  options.port = FLAGS_port < 0 ? 7000 : FLAGS_port;
  options.port_file = FLAGS_port_file;
  options.run_dir = FLAGS_run_dir;
  options.register_timeout_s = FLAGS_register_timeout;
  options.resume_from = FLAGS_resume_from;
  if (!options.run_dir.empty()) {
    if (Status s = MakeDirs(options.run_dir); !s.ok()) return UsageError(self, s.message());
  }
  const std::atomic<bool>* stop = InstallStopSignals();
  Transport transport;
  Scheduler scheduler(&transport, options, stop);
  return FinishRole("scheduler", scheduler.Run());
}

}  // namespace tessera
