#include "tools/local_job.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <glog/logging.h>

#include "core/checkpoint_manifest.h"
#include "core/file_util.h"
#include "core/idx_reader.h"
#include "core/image_folder_data.h"
#include "core/spec.h"
#include "core/libsvm_data.h"
#include "core/table_data.h"
#include "core/zmq_transport.h"
#include "tools/local_curve_keys.h"
#include "models/device.h"
#include "models/model.h"
#include "tools/child_process.h"
#include "tools/class_table.h"
#include "tools/task_table.h"
#include "tools/role_flags.h"
#include "tools/signals.h"
#include "worker/worker.h"

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStopGraceMs = 3000;
constexpr int kPortFileTimeoutMs = 30000;
constexpr int64_t kSlowestTableScanBytesPerMs = 5000;  // 5 MB/s
constexpr int kSchedulerExitGraceMs = 1000;

// Tells the scheduler at once that a node process exited (NODE_EXITED), so
// that it does not wait for the node's heartbeats to stop.
// 128 random bits as hex.
std::string RandomToken() {
  std::random_device rd;
  char hex[33];
  for (int i = 0; i < 4; ++i) std::snprintf(hex + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  return std::string(hex, 32);
}

// Writes `contents` to `path` readable by this user only (mode 0600).
Status WritePrivateFile(const std::string& path, const std::string& contents) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return UnavailableError("cannot create " + path + ": " + std::strerror(errno));
  fchmod(fd, 0600);  // an existing file (a resumed run's) keeps no wider mode
  const bool written = write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  close(fd);
  if (!written) return UnavailableError("cannot write " + path);
  return OkStatus();
}

class ExitNotifier {
 public:
  // `token`: the secret the scheduler was given (--launcher_token_file);
  // `keys`: the launch's CURVE keys, or null for plain TCP.
  ExitNotifier(const std::string& scheduler_address, std::string token, const LocalCurveKeys* keys)
      : token_(std::move(token)),
        transport_(keys == nullptr ? std::make_unique<ZmqTransport>()
                                   : std::make_unique<ZmqTransport>(CurveSettings{keys->launcher, {}, nullptr})) {
    auto endpoint = NormalizeEndpoint(scheduler_address);
    if (endpoint.ok()) {
      ConnectOptions options;
      if (keys != nullptr) options.server_public_key = keys->scheduler_public_key;
      auto socket = transport_->Connect(SocketKind::kDealer, *endpoint, options);
      if (socket.ok()) socket_ = std::move(socket).value();
    }
  }

  void Notify(const ChildProcess& child, int exit_code) {
    if (socket_ == nullptr) return;  // the heartbeats still tell it
    proto::Header h;
    h.set_op(proto::NODE_EXITED);
    h.mutable_node_exited()->set_pid(child.pid());
    h.mutable_node_exited()->set_exit_code(exit_code);
    h.mutable_node_exited()->set_token(token_);
    socket_->Send(h).IgnoreError();
  }

 private:
  std::string token_;
  std::unique_ptr<ZmqTransport> transport_;
  std::unique_ptr<Socket> socket_;
};

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

  Status Start(const std::string& label, const std::vector<std::string>& args, bool replacement = false) {
    ASSIGN_OR_RETURN(auto child, ChildProcess::Start(label, args, run_dir_ + "/logs/" + label + ".log"));
    children_.push_back(std::move(child));
    replacement_.push_back(replacement);
    lost_.push_back(false);
    return OkStatus();
  }

  // The first child that ended with a non-zero code and is not known to be
  // lost, or null. (Servers and workers end with 0 once the scheduler has
  // sent SHUTDOWN, which can be a moment before the scheduler itself exits.)
  ChildProcess* FirstFailed() {
    for (size_t i = 0; i < children_.size(); ++i) {
      if (lost_[i]) continue;
      if (auto code = children_[i]->Poll(); code.has_value() && *code != 0) return children_[i].get();
    }
    return nullptr;
  }

  // A worker or server that died: the job goes on without it (FirstFailed skips it).
  void MarkLost(const ChildProcess* child) {
    for (size_t i = 0; i < children_.size(); ++i) {
      if (children_[i].get() == child) lost_[i] = true;
    }
  }

  ChildProcess* scheduler() { return children_.empty() ? nullptr : children_[0].get(); }

  // SIGKILLs the child with `pid` when its label starts with `prefix` and it
  // is still running (not yet reaped, so the pid is still its own); whether
  // it did.
  bool KillIfRunning(const std::string& prefix, int pid) {
    for (size_t i = 0; i < children_.size(); ++i) {
      const ChildProcess& c = *children_[i];
      if (lost_[i] || c.pid() != pid || c.label().rfind(prefix, 0) != 0 || children_[i]->Poll().has_value()) continue;
      kill(pid, SIGKILL);
      return true;
    }
    return false;
  }

  // Children whose label starts with `prefix`, not lost and still running.
  int Running(const std::string& prefix) {
    int n = 0;
    for (size_t i = 0; i < children_.size(); ++i) {
      if (!lost_[i] && children_[i]->label().rfind(prefix, 0) == 0 && !children_[i]->Poll().has_value()) ++n;
    }
    return n;
  }

  // Waits for every child to exit on its own; false when one is still running after timeout_ms or failed.
  // Lost workers and servers do not count, nor does a replacement that is
  // still running after 2 s (it came too late to join, and is stopped).
  bool WaitAllClean(int timeout_ms) {
    bool clean = true;
    for (size_t i = 0; i < children_.size(); ++i) {
      if (lost_[i]) continue;
      auto code = children_[i]->Wait(replacement_[i] ? std::min(timeout_ms, 2000) : timeout_ms);
      if (!code.has_value() && replacement_[i]) {
        children_[i]->Stop(kStopGraceMs);
        continue;
      }
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
  std::vector<bool> replacement_, lost_;  // by child
};

// With a validation split: the best epoch, its checkpoint, and whether training stopped early.
std::string BestEpochText(const std::string& summary_line) {
  const int best = static_cast<int>(JsonNumber(summary_line, "best_epoch", -1));
  if (best < 0) return "";
  std::string text = "best epoch " + std::to_string(best) + " by the validation metric";
  const std::string checkpoint = JsonString(summary_line, "best_checkpoint");
  text += checkpoint.empty() ? " (no checkpoint of it)" : ": checkpoint " + checkpoint + " (export --best)";
  const int stopped = static_cast<int>(JsonNumber(summary_line, "stopped_at_epoch", 0));
  if (stopped > 0) text += "; stopped early after epoch " + std::to_string(stopped);
  return text + "\n";
}

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
                "done: %s, train loss %.4f, %lld steps, %.0f samples/s, %s wall\n"
                "params_sha256 %s\nrun directory %s\n",
                TestFiguresText(*summary).c_str(), JsonNumber(one_line, "train_loss"),
                static_cast<long long>(JsonNumber(one_line, "steps")), JsonNumber(one_line, "samples_per_sec"),
                FormatDuration(wall).c_str(), JsonString(one_line, "params_sha256").c_str(), run_dir.c_str());
  std::cout << ClassTable(*summary) << TaskTable(*summary) << BestEpochText(one_line) << text << std::flush;
}

}  // namespace

MachineResources ThisMachine() {
  MachineResources machine;
  machine.cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  auto meminfo = ReadFileToString("/proc/meminfo");
  if (meminfo.ok()) {
    const size_t at = meminfo->find("MemAvailable:");
    if (at != std::string::npos) {
      machine.available_memory_bytes = std::strtoull(meminfo->c_str() + at + 13, nullptr, 10) * 1024;  // in kB
    }
  }
  return machine;
}

StatusOr<uint64_t> WorkerMemoryBytes(const proto::JobSpec& spec) {
  constexpr uint64_t kWorkerBaseBytes = uint64_t{64} << 20;
  const proto::DataSpec& d = spec.data();
  uint64_t bytes = kWorkerBaseBytes;
  // A table's worker holds two blocks at most, whatever the data's size.
  if (IsTableFormat(d)) return bytes + 2 * kTableBlockValues * sizeof(float);
  // A libsvm worker holds two compact blocks of (feature, value) pairs at most.
  if (IsLibsvmFormat(d)) return bytes + 2 * kLibsvmBlockPairs * 2 * sizeof(float);
  // An image folder's worker decodes each image as a batch reads it: it holds
  // a batch and the one read ahead (evaluation's batches of at least 256
  // being the larger), whatever the data's size.
  if (IsImageFolderFormat(d)) {
    const uint64_t batch = std::max(spec.batch_size(), kMinEvalBatch);
    return bytes + 2 * batch * static_cast<uint64_t>(ImageExampleSize(d.image())) * sizeof(float);
  }
  for (const auto& [images, max_examples] : {std::pair{d.train_images(), d.max_train_examples()},
                                             std::pair{d.test_images(), d.max_test_examples()}}) {
    uint8_t type = 0;
    ASSIGN_OR_RETURN(std::vector<uint32_t> dims, ReadIdxDims(DataPath(d, images), &type));
    if (dims.empty()) continue;
    uint64_t examples = dims[0];
    if (max_examples > 0) examples = std::min<uint64_t>(examples, max_examples);
    uint64_t values = 1;
    for (size_t i = 1; i < dims.size(); ++i) values *= dims[i];
    const uint64_t value_bytes = type == 0x0C ? 4 : 1;  // int32 ids, else unsigned bytes
    bytes += examples * (values * value_bytes + 1);     // + its label
  }
  return bytes;
}

Status CheckLocalWorkers(int workers, uint64_t bytes_per_worker, const MachineResources& machine) {
  const int by_cores = kLocalWorkersPerCore * machine.cores;
  const uint64_t by_memory = machine.available_memory_bytes == 0 || bytes_per_worker == 0
                                 ? UINT64_MAX
                                 : machine.available_memory_bytes / bytes_per_worker;
  if (workers <= by_cores && static_cast<uint64_t>(workers) <= by_memory) return OkStatus();
  const uint64_t most = std::min<uint64_t>(by_cores, by_memory);
  std::string why = std::to_string(kLocalWorkersPerCore) + " per core, " + std::to_string(machine.cores) + " cores";
  if (by_memory != UINT64_MAX) {
    why += "; the " + std::to_string(machine.available_memory_bytes >> 20) + " MiB of available memory hold " +
           std::to_string(by_memory) + ", each worker loading the data set, about " +
           std::to_string(bytes_per_worker >> 20) + " MiB";
  }
  return InvalidArgumentError(std::to_string(workers) + " workers are more than this machine can run: at most " +
                              std::to_string(most) + " (" + why + "); use fewer, or --force to start them anyway");
}

Status CheckLocalWorkersFit(const proto::JobSpec& spec) {
  ASSIGN_OR_RETURN(uint64_t bytes_per_worker, WorkerMemoryBytes(spec));
  return CheckLocalWorkers(spec.cluster().workers(), bytes_per_worker, ThisMachine());
}

int64_t SchedulerListenTimeoutMs(const proto::DataSpec& data) {
  int64_t bytes = 0;
  if (IsTableFormat(data) || IsLibsvmFormat(data)) {
    for (const Split split : {Split::kTraining, Split::kValidation, Split::kTest}) {
      for (const std::string& path : TableFiles(data, split)) {
        std::error_code error;
        const uintmax_t size = std::filesystem::file_size(path, error);
        if (!error) bytes += static_cast<int64_t>(size);
      }
    }
  }
  return kPortFileTimeoutMs + bytes / kSlowestTableScanBytesPerMs;
}

StatusOr<ProgressMode> ParseProgressMode(const std::string& flag) {
  if (flag == "auto") return isatty(STDOUT_FILENO) ? ProgressMode::kLive : ProgressMode::kPlain;
  if (flag == "live") return ProgressMode::kLive;
  if (flag == "plain") return ProgressMode::kPlain;
  if (flag == "none") return ProgressMode::kNone;
  return InvalidArgumentError("--progress must be auto, live, plain or none, got '" + flag + "'");
}

namespace {

// One launch of the cluster. A lost server is replaced in place (the
// scheduler rolls the job back; the scheduler and the workers go on), each
// replacement counting in *recoveries, the --max-restarts budget this launch
// shares with whole-cluster restarts. When a role fails otherwise, every
// process is stopped and *failure says which role; nothing is printed about
// it (the caller says whether the job restarts or fails), and *restartable
// is set (only then) unless no restart can help (a usage error, a permanent one).
int RunAttempt(const Command& self, const proto::JobSpec& spec, const LocalJobOptions& options,
               const std::string& resume_from, int* recoveries, bool* restartable,
               std::optional<RoleFailure>* failure) {
  const std::string& run_dir = options.run_dir;
  const ProgressMode mode = options.progress;
  auto self_exe = SelfExecutable();
  if (!self_exe.ok()) return UsageError(self, self_exe.status().message());

  const int servers = spec.cluster().servers();
  const int workers = spec.cluster().workers();
  int threads = options.threads;
  if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / workers);

  const std::atomic<bool>* stop = InstallStopSignals();
  const auto start = Clock::now();
  std::cout << "training " << spec.name() << ": " << servers << " servers, " << workers << " workers, "
            << spec.epochs() << " epochs; run directory " << run_dir << std::endl;

  LocalCluster cluster(run_dir);
  // Before the scheduler starts: a restart's or resume's run directory holds
  // the lines of earlier runs, and only this run's are shown (and acted on).
  ProgressView view(run_dir + "/metrics.jsonl", mode, stdout);
  view.SkipExistingLines();
  const std::string port_file = run_dir + "/scheduler.port";
  // A port file left by an earlier run (resume reuses the directory) must not be read as this one's.
  std::remove(port_file.c_str());
  auto fail = [&](const std::string& message) {
    cluster.StopAll();
    std::cerr << "tessera " << self.name << ": " << message << std::endl;
    return kExitFailure;
  };
  // Only this launcher may tell the scheduler that a node exited, and only
  // the nodes it starts may join: the two secrets it shares with them live
  // in files only this user can read.
  const std::string token_file = run_dir + "/launcher.token";
  const std::string token = RandomToken();
  if (Status s = WritePrivateFile(token_file, token); !s.ok()) return fail(s.message());
  const std::string cluster_token_file = run_dir + "/cluster.token";
  if (Status s = WritePrivateFile(cluster_token_file, RandomToken()); !s.ok()) return fail(s.message());
  // With --curve, keys for this launch and each role's flags for them.
  std::optional<LocalCurveKeys> keys;
  std::vector<std::string> scheduler_keys, server_keys, worker_keys;
  if (options.curve) {
    auto made = MakeLocalCurveKeys(run_dir);
    if (!made.ok()) return fail(made.status().message());
    keys = *made;
    scheduler_keys = keys->SchedulerFlags();
    server_keys = keys->ServerFlags();
    worker_keys = keys->WorkerFlags();
  }
  const auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  // The scheduler rolls the job back when a server is lost, as often as the
  // budget left allows; this launcher starts the replacement servers.
  const int restarts_left = std::max(0, options.max_restarts - *recoveries);
  std::vector<std::string> scheduler_args = {*self_exe, "scheduler", "--spec", run_dir + "/spec.pbtxt", "--host",
                                             "127.0.0.1", "--port", "0", "--port_file", port_file, "--run_dir",
                                             run_dir, "--resume_from", resume_from, "--max_restarts",
                                             std::to_string(restarts_left), "--launcher_token_file", token_file,
                                             "--cluster_token_file", cluster_token_file};
  if (FLAGS_test_spill_free_bytes >= 0) {
    scheduler_args.push_back("--test_spill_free_bytes=" + std::to_string(FLAGS_test_spill_free_bytes));
  }
  if (Status s = cluster.Start("scheduler", with(scheduler_args, scheduler_keys)); !s.ok()) {
    return fail(s.message());
  }
  // The scheduler writes its OS-chosen port once it listens.
  std::string port;
  const int64_t port_timeout_ms = SchedulerListenTimeoutMs(spec.data());
  const auto port_deadline = Clock::now() + std::chrono::milliseconds(port_timeout_ms);
  while (port.empty()) {
    if (stop->load()) {
      fail("interrupted");
      return kExitInterrupted;
    }
    if (auto code = cluster.scheduler()->Poll(); code.has_value()) {
      fail("the scheduler exited with code " + std::to_string(*code) + ":\n" +
           LastLines(cluster.scheduler()->log_path(), 5));
      // Planning found a mistake in the spec or the data (e.g. a sparse
      // table's spill beyond the disk): the user's, so the job's exit is 2.
      return *code == kExitUsage ? kExitUsage : kExitFailure;
    }
    if (Clock::now() > port_deadline) {
      return fail("the scheduler did not start listening within " + std::to_string(port_timeout_ms / 1000) + " s");
    }
    if (auto text = ReadFileToString(port_file); text.ok() && !text->empty() && text->back() == '\n') {
      port = text->substr(0, text->size() - 1);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const std::string scheduler_address = "127.0.0.1:" + port;
  ExitNotifier exits(scheduler_address, token, keys.has_value() ? &*keys : nullptr);
  int server_labels = 0;
  auto start_server = [&](bool replacement) {
    // Rows of sparse tables beyond their memory budget go to the run's disk, not $TMPDIR's.
    std::vector<std::string> args = {*self_exe, "server", "--scheduler", scheduler_address, "--host", "127.0.0.1",
                                     "--cluster_token_file", cluster_token_file, "--spill_dir",
                                     run_dir + "/spill/server-" + std::to_string(server_labels)};
    if (FLAGS_test_checkpoint_write_delay_ms > 0) {
      args.push_back("--test_checkpoint_write_delay_ms=" + std::to_string(FLAGS_test_checkpoint_write_delay_ms));
    }
    if (FLAGS_test_spill_writes_before_full >= 0) {
      args.push_back("--test_spill_writes_before_full=" + std::to_string(FLAGS_test_spill_writes_before_full));
    }
    return cluster.Start("server-" + std::to_string(server_labels++), with(args, server_keys), replacement);
  };
  for (int i = 0; i < servers; ++i) {
    if (Status s = start_server(false); !s.ok()) return fail(s.message());
  }
  int worker_labels = 0;
  auto start_worker = [&](bool replacement) {
    std::vector<std::string> args = {*self_exe, "worker", "--scheduler", scheduler_address, "--cluster_token_file",
                                     cluster_token_file, "--threads", std::to_string(threads),
                                     "--params_out", run_dir + "/params.bin",
                                     std::string("--overlap_push=") + (FLAGS_overlap_push ? "true" : "false"),
                                     std::string("--overlap_pull=") + (FLAGS_overlap_pull ? "true" : "false"),
                                     "--device", FLAGS_device};
    if (FLAGS_test_step_delay_ms > 0) {
      args.push_back("--test_step_delay_ms=" + std::to_string(FLAGS_test_step_delay_ms));
      args.push_back("--test_step_delay_rank=" + std::to_string(FLAGS_test_step_delay_rank));
    }
    return cluster.Start("worker-" + std::to_string(worker_labels++), with(args, worker_keys), replacement);
  };
  for (int i = 0; i < workers; ++i) {
    if (Status s = start_worker(false); !s.ok()) return fail(s.message());
  }
  int replacements = 0;

  // A server the scheduler lost to silence (frozen, say) is lost for good:
  // it is killed, so that it exits and is replaced like a dead one.
  std::vector<int> lost_servers;
  view.set_on_line([&](const std::string& line) {
    if (JsonString(line, "event") == "rollback" && JsonNumber(line, "pid") > 0) {
      lost_servers.push_back(static_cast<int>(JsonNumber(line, "pid")));
    }
  });
  bool stopping = false;
  Clock::time_point stop_deadline;
  while (true) {
    view.Update();
    for (int pid : lost_servers) {
      if (cluster.KillIfRunning("server-", pid)) {
        view.Finish();
        std::cerr << "tessera " << self.name << ": the scheduler lost the server with pid " << pid
                  << " (it stopped answering); it is killed and replaced" << std::endl;
      }
    }
    lost_servers.clear();
    if (stop->load() && !stopping) {
      // First signal: the scheduler takes a final checkpoint and shuts the
      // job down; a second signal (or 90 s) stops every process at once.
      stopping = true;
      stop_deadline = Clock::now() + std::chrono::seconds(90);
      view.Finish();
      std::cerr << "tessera " << self.name << ": stopping after a final checkpoint (interrupt again to stop now)"
                << std::endl;
      kill(cluster.scheduler()->pid(), SIGTERM);
    }
    if (stopping) {
      const bool scheduler_done = cluster.scheduler()->Poll().has_value();
      if (scheduler_done || StopSignalCount() > 1 || Clock::now() > stop_deadline) {
        cluster.WaitAllClean(scheduler_done ? 5000 : 0);
        cluster.StopAll();
        std::string how = "every process stopped";
        if (scheduler_done) {
          const std::string tail = LastLines(cluster.scheduler()->log_path(), 1);
          const size_t at = tail.find("stopped by signal; ");
          if (at != std::string::npos) how = tail.substr(at + 19, tail.find('\n', at) - at - 19);
        }
        std::cerr << "tessera " << self.name << ": interrupted; " << how << ". Logs in " << run_dir << "/logs"
                  << std::endl;
        return kExitInterrupted;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (ChildProcess* failed = cluster.FirstFailed(); failed != nullptr) {
      const bool is_server = failed->label().rfind("server-", 0) == 0;
      // Servers also end (with 1) when the scheduler ends the job: give it a
      // moment to exit first, so that its failure is not taken for a lost server's.
      const bool scheduler_alive = !(is_server ? cluster.scheduler()->Wait(kSchedulerExitGraceMs)
                                               : cluster.scheduler()->Poll())
                                        .has_value();
      if (!scheduler_alive) failed = cluster.FirstFailed();  // the scheduler, when it failed
      const int code = *failed->Poll();
      // A rolled-back job waits for its full worker count (as a resume does):
      // with a lost worker unreplaced, a rollback would wait in vain.
      // A bad spec or data, a full disk: a replacement or restart would fail the same way.
      const bool permanent = code == kExitUsage || code == kExitPermanent;
      if (is_server && !permanent && scheduler_alive &&
          *recoveries < options.max_restarts && cluster.Running("worker-") >= workers) {
        // A lost server: the scheduler, told at once (else by its missing
        // heartbeats), tells every node ROLLBACK and runs the job again from the newest checkpoint once
        // the replacement registers (one that registers first waits as a
        // spare). The scheduler and workers keep running, the workers their data.
        exits.Notify(*failed, code);
        cluster.MarkLost(failed);
        ++*recoveries;
        view.Finish();
        std::cerr << "tessera " << self.name << ": " << failed->label() << " exited with code " << code << "; server-"
                  << server_labels << " replaces it and the job rolls back to its newest checkpoint (restart "
                  << *recoveries << " of " << options.max_restarts << ")" << std::endl;
        if (Status s = start_server(true); !s.ok()) return fail(s.message());
        continue;
      }
      if (failed->label().rfind("worker-", 0) == 0 && !permanent && scheduler_alive) {
        // A lost worker does not stop the job: the scheduler hands its data
        // to the others; a replacement joins at the next phase.
        exits.Notify(*failed, code);
        cluster.MarkLost(failed);
        view.Finish();
        std::cerr << "tessera " << self.name << ": " << failed->label() << " exited with code " << code
                  << "; the job goes on without it";
        if (replacements < options.max_restarts) {
          ++replacements;
          std::cerr << ", worker-" << worker_labels << " replaces it (" << replacements << " of "
                    << options.max_restarts << ")";
          if (Status s = start_worker(true); !s.ok()) return fail(s.message());
        }
        std::cerr << std::endl;
        continue;
      }
      view.Finish();
      cluster.StopAll();
      *restartable = !permanent;
      *failure = RoleFailure{failed->label(), code, failed->log_path()};
      return kExitFailure;
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

}  // namespace

std::string RestartLine(const RoleFailure& failure, const std::string& from, int restart, int max_restarts) {
  const std::string role = failure.label == "scheduler" ? "the scheduler" : failure.label;
  return role + " was lost (exited with code " + std::to_string(failure.exit_code) + "; log: " + failure.log_path +
         "); restarting from " + from + " (restart " + std::to_string(restart) + " of " +
         std::to_string(max_restarts) + ")";
}

std::string FailureMessage(const RoleFailure& failure, int tail_lines) {
  std::string tail = LastLines(failure.log_path, tail_lines);
  if (!tail.empty() && tail.back() == '\n') tail.pop_back();  // the message is printed as a line
  return failure.label + " exited with code " + std::to_string(failure.exit_code) + "; the end of " +
         failure.log_path + ":\n" + tail;
}

int RunLocalJob(const Command& self, const proto::JobSpec& spec, const LocalJobOptions& options) {
  // --device=cuda without a usable GPU fails here, before any process starts.
  auto device = ResolveDevice(FLAGS_device);
  if (!device.ok()) return UsageError(self, device.status().message());
  // And --device cuda with a layer CUDA cannot run (sparse_linear); auto then uses the CPU.
  if (Status s = CheckDeviceLayers(spec.model(), *device); !s.ok() && FLAGS_device != "auto") {
    return UsageError(self, s.message());
  }
  std::string resume_from = options.resume_from;
  // Server replacements and whole-cluster restarts so far: together at most options.max_restarts.
  int recoveries = 0;
  auto print = [&](const std::string& message) {
    std::cerr << "tessera " << self.name << ": " << message << std::endl;
  };
  while (true) {
    bool restartable = false;
    std::optional<RoleFailure> failure;
    const int code = RunAttempt(self, spec, options, resume_from, &recoveries, &restartable, &failure);
    if (!restartable || recoveries >= options.max_restarts || StopSignalCount() > 0) {
      // The job ends here: the failed role's log tail says why.
      if (failure.has_value()) print(FailureMessage(*failure));
      return code;
    }
    ++recoveries;
    // A lost scheduler (or a server that could not be replaced in place):
    // start every process again from the newest intact checkpoint (or the
    // job's start) and go on; under BSP the result is the same as without
    // the loss. Only a line says so: the lost role's log, with its ERROR
    // lines, is no failure of the job (it stays in its file).
    std::string note;
    auto checkpoint = ResolveCheckpoint(options.run_dir, &note);
    if (checkpoint.ok()) {
      std::error_code ec;
      resume_from = std::filesystem::absolute(*checkpoint, ec).lexically_normal().string();
    } else if (checkpoint.status().code() == StatusCode::kNotFound) {
      note = "the start, there is no checkpoint yet";
    } else {
      if (failure.has_value()) print(FailureMessage(*failure));
      print("cannot restart: " + checkpoint.status().message());
      return code;
    }
    CHECK(failure.has_value()) << "a restartable attempt names the role that failed";
    print(RestartLine(*failure, note, recoveries, options.max_restarts));
  }
}

}  // namespace tessera
