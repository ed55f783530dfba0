// A child process of `tessera train`: this same binary running one role,
// its stdout and stderr appended to a log file. A child dies with its parent
// (PR_SET_PDEATHSIG), so even a SIGKILLed launcher leaves nothing behind.
//
// Not thread-safe. The destructor kills a child that is still running.
#ifndef TESSERA_TOOLS_CHILD_PROCESS_H_
#define TESSERA_TOOLS_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tessera {

class ChildProcess {
 public:
  // Starts `args` (args[0] is the program path) with output to log_path.
  // Unavailable when fork or the log file fails.
  static StatusOr<std::unique_ptr<ChildProcess>> Start(const std::string& label, const std::vector<std::string>& args,
                                                        const std::string& log_path);
  ~ChildProcess();

  const std::string& label() const { return label_; }
  const std::string& log_path() const { return log_path_; }
  pid_t pid() const { return pid_; }

  // The exit code once the child has ended (128+signal when killed); empty
  // while it runs. Never blocks.
  std::optional<int> Poll();

  // Waits up to timeout_ms for the child to end. Returns its exit code, or
  // empty on timeout.
  std::optional<int> Wait(int timeout_ms);

  // SIGTERM, then SIGKILL after grace_ms; reaps the child.
  void Stop(int grace_ms);

 private:
  ChildProcess(std::string label, pid_t pid, std::string log_path)
      : label_(std::move(label)), pid_(pid), log_path_(std::move(log_path)) {}

  std::string label_;
  pid_t pid_;
  std::string log_path_;
  std::optional<int> exit_code_;
};

// The path of the running executable (/proc/self/exe resolved).
StatusOr<std::string> SelfExecutable();

}  // namespace tessera

#endif  // TESSERA_TOOLS_CHILD_PROCESS_H_
