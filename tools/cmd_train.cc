// `tessera train SPEC`: local mode. Launches 1 scheduler, S servers and W
// workers as child processes on 127.0.0.1 (this same binary, one role each),
// shows progress, waits, and prints the result. On success, failure or
// Ctrl-C no child is left behind.
#include <gflags/gflags.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "core/spec.h"
#include "tools/child_process.h"
#include "tools/command.h"
#include "tools/progress_view.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "tools/spec_flags.h"

DEFINE_string(progress, "auto", "progress display: auto (live line on a terminal, plain lines otherwise), live, plain, none");

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStopGraceMs = 3000;
constexpr int kPortFileTimeoutMs = 30000;

std::string DefaultRunDir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::localtime(&now));
  std::string dir = "runs/" + name + "-" + stamp;
  for (int i = 2; FileExists(dir); ++i) dir = "runs/" + name + "-" + stamp + "-" + std::to_string(i);
  return dir;
}

std::string LastLines(const std::string& path, int lines) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return "";
  const std::string& t = *text;
  size_t pos = t.size();
  if (pos > 0 && t[pos - 1] == '\n') --pos;
  for (int i = 0; i < lines && pos > 0; ++i) {
    pos = t.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  return t.substr(pos == 0 ? 0 : pos + 1);
}

class LocalCluster {
 public:
  explicit LocalCluster(std::string run_dir) : run_dir_(std::move(run_dir)) {}
  ~LocalCluster() { StopAll(); }

  Status Start(const std::string& label, const std::vector<std::string>& args) {
    ASSIGN_OR_RETURN(auto child, ChildProcess::Start(label, args, run_dir_ + "/logs/" + label + ".log"));
    children_.push_back(std::move(child));
    return OkStatus();
  }

  // The first child that ended with a non-zero code, or null. (Servers and
  // workers end with 0 once the scheduler has sent SHUTDOWN, which can be a
  // moment before the scheduler itself exits.)
  ChildProcess* FirstFailed() {
    for (auto& c : children_) {
      if (auto code = c->Poll(); code.has_value() && *code != 0) return c.get();
    }
    return nullptr;
  }

  ChildProcess* scheduler() { return children_.empty() ? nullptr : children_[0].get(); }

  // Waits for every child to exit on its own; false when one is still running after timeout_ms or failed.
  bool WaitAllClean(int timeout_ms) {
    bool clean = true;
    for (auto& c : children_) {
      auto code = c->Wait(timeout_ms);
      if (!code.has_value() || *code != 0) clean = false;
    }
    return clean;
  }

  void StopAll() {
    // Roles stop on SIGTERM; send it to all first so they stop in parallel.
    for (auto& c : children_) {
      if (!c->Poll().has_value()) kill(c->pid(), SIGTERM);
    }
    for (auto& c : children_) c->Stop(kStopGraceMs);
  }

 private:
  std::string run_dir_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

void PrintSummary(const std::string& run_dir, double wall) {
  auto summary = ReadFileToString(run_dir + "/summary.json");
  if (!summary.ok()) {
    std::cout << "job finished, but " << run_dir << "/summary.json is missing" << std::endl;
    return;
  }
  std::string one_line = *summary;
  for (char& c : one_line) {
    if (c == '\n') c = ' ';
  }
  char text[512];
  std::snprintf(text, sizeof(text),
                "done: test accuracy %.4f, train loss %.4f, %lld steps, %.0f samples/s, %s wall\n"
                "params_sha256 %s\nrun directory %s\n",
                JsonNumber(one_line, "test_accuracy"), JsonNumber(one_line, "train_loss"),
                static_cast<long long>(JsonNumber(one_line, "steps")), JsonNumber(one_line, "samples_per_sec"),
                FormatDuration(wall).c_str(), JsonString(one_line, "params_sha256").c_str(), run_dir.c_str());
  std::cout << text << std::flush;
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
  if (FLAGS_threads < 0) return UsageError(self, "--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  ProgressMode mode;
  if (FLAGS_progress == "auto") {
    mode = isatty(STDOUT_FILENO) ? ProgressMode::kLive : ProgressMode::kPlain;
  } else if (FLAGS_progress == "live") {
    mode = ProgressMode::kLive;
  } else if (FLAGS_progress == "plain") {
    mode = ProgressMode::kPlain;
  } else if (FLAGS_progress == "none") {
    mode = ProgressMode::kNone;
  } else {
    return UsageError(self, "--progress must be auto, live, plain or none, got '" + FLAGS_progress + "'");
  }

  const std::string run_dir = FLAGS_run_dir.empty() ? DefaultRunDir(spec->name()) : FLAGS_run_dir;
  if (FileExists(run_dir + "/summary.json") || FileExists(run_dir + "/spec.pbtxt")) {
    return UsageError(self, "run directory " + run_dir + " already holds a run; pick another --run-dir");
  }
  if (Status s = MakeDirs(run_dir + "/logs"); !s.ok()) return UsageError(self, s.message());
  if (Status s = WriteFileAtomic(run_dir + "/spec.pbtxt", JobSpecToText(*spec)); !s.ok()) {
    return UsageError(self, s.message());
  }
  auto self_exe = SelfExecutable();
  if (!self_exe.ok()) return UsageError(self, self_exe.status().message());

  const int servers = spec->cluster().servers();
  const int workers = spec->cluster().workers();
  int threads = FLAGS_threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / workers);

  const std::atomic<bool>* stop = InstallStopSignals();
  const auto start = Clock::now();
  std::cout << "training " << spec->name() << ": " << servers << " servers, " << workers << " workers, "
            << spec->epochs() << " epochs; run directory " << run_dir << std::endl;

  LocalCluster cluster(run_dir);
  const std::string port_file = run_dir + "/scheduler.port";
  auto fail = [&](const std::string& message) {
    cluster.StopAll();
    std::cerr << "tessera train: " << message << std::endl;
    return kExitFailure;
  };
  if (Status s = cluster.Start("scheduler", {*self_exe, "scheduler", "--spec", run_dir + "/spec.pbtxt", "--host",
                                             "127.0.0.1", "--port", "0", "--port_file", port_file, "--run_dir",
                                             run_dir});
      !s.ok()) {
    return fail(s.message());
  }
  // The scheduler writes its OS-chosen port once it listens.
  std::string port;
  const auto port_deadline = Clock::now() + std::chrono::milliseconds(kPortFileTimeoutMs);
  while (port.empty()) {
    if (stop->load()) {
      fail("interrupted");
      return kExitInterrupted;
    }
    if (auto code = cluster.scheduler()->Poll(); code.has_value()) {
      return fail("the scheduler exited with code " + std::to_string(*code) + ":\n" +
                  LastLines(cluster.scheduler()->log_path(), 5));
    }
    if (Clock::now() > port_deadline) return fail("the scheduler did not start listening within 30 s");
    if (auto text = ReadFileToString(port_file); text.ok() && !text->empty() && text->back() == '\n') {
      port = text->substr(0, text->size() - 1);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const std::string scheduler_address = "127.0.0.1:" + port;
  for (int i = 0; i < servers; ++i) {
    if (Status s = cluster.Start("server-" + std::to_string(i),
                                 {*self_exe, "server", "--scheduler", scheduler_address, "--host", "127.0.0.1"});
        !s.ok()) {
      return fail(s.message());
    }
  }
  for (int i = 0; i < workers; ++i) {
    if (Status s = cluster.Start("worker-" + std::to_string(i), {*self_exe, "worker", "--scheduler", scheduler_address,
                                                                 "--threads", std::to_string(threads),
                                                                 "--params_out", run_dir + "/params.bin"});
        !s.ok()) {
      return fail(s.message());
    }
  }

  ProgressView view(run_dir + "/metrics.jsonl", mode, stdout);
  while (true) {
    view.Update();
    if (stop->load()) {
      view.Finish();
      cluster.StopAll();
      std::cerr << "tessera train: interrupted; every process stopped. Logs in " << run_dir << "/logs" << std::endl;
      return kExitInterrupted;
    }
    if (ChildProcess* failed = cluster.FirstFailed(); failed != nullptr) {
      view.Finish();
      return fail(failed->label() + " exited with code " + std::to_string(*failed->Poll()) + "; the end of " +
                  failed->log_path() + ":\n" + LastLines(failed->log_path(), 5));
    }
    if (cluster.scheduler()->Poll() == std::optional<int>(0)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  view.Update();
  view.Finish();
  if (!cluster.WaitAllClean(10000)) {
    return fail("the job finished but not every process exited cleanly; see " + run_dir + "/logs");
  }
  PrintSummary(run_dir, std::chrono::duration<double>(Clock::now() - start).count());
  return kExitOk;
}

}  // namespace tessera
