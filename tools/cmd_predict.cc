// `tessera predict MODEL_DIR INPUT --out FILE [--workers N]`: batch
// inference of an exported model over an IDX images file, a CSV/TSV file (a
// table model) or image files (an image model; tools/predict_source.h), the
// predictions as CSV in the input's order (docs/FORMATS.md, "Predictions").
//
// With --workers 1 the command runs the model itself; with N > 1 it starts N
// `tessera predict-worker` children (hidden from `tessera --help`), each
// running a contiguous range of whole batches into a part file, and joins
// the parts in order. Everything is written in a temporary directory next to
// FILE (.predict-PID-RANDOM/) and the joined file renamed to FILE at the end,
// so FILE appears complete or not at all; the directory is removed whatever
// happens (only a SIGKILLed parent leaves it, and its children die with it).
#include <gflags/gflags.h>
#include <glog/logging.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>

#include "core/file_util.h"
#include "core/task_metrics.h"
#include "models/device.h"
#include "tools/child_process.h"
#include "tools/command.h"
#include "tools/predict_pool.h"
#include "tools/predict_runner.h"
#include "tools/predict_source.h"
#include "tools/progress_view.h"
#include "tools/role_flags.h"
#include "tools/signals.h"

DECLARE_string(out);
DECLARE_int32(workers);
DECLARE_int32(batch_size);
DEFINE_string(labels, "", "predict: an IDX labels file for INPUT; the summary line then gives the accuracy");
DEFINE_string(range, "", "predict-worker: the examples to run, BEGIN:END (END excluded)");
DEFINE_string(test_worker_fault, "",
              "predict, predict-worker: for tests only, left out of --help: crash:I or stall:I (several, "
              "comma-separated) makes the worker whose range holds image I exit 1, or hang until it is killed, "
              "before it runs anything; predict hands it to its workers");

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxWorkers = 256;
constexpr int64_t kDefaultBatchSize = 64;
constexpr int64_t kMaxBatchSize = 1 << 16;

// Test hook, --test-worker-fault: `spec` is crash:I (or stall:I; several,
// comma-separated), and the worker whose range [begin, end) holds image I
// exits 1 (or hangs until it is killed) before it runs anything. Lets the
// tests fail one worker while the others are still running.
void MaybeInjectFault(const std::string& spec, int64_t begin, int64_t end) {
  std::string rest = spec;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) continue;
    const int64_t image = std::atoll(item.c_str() + colon + 1);
    if (image < begin || image >= end) continue;
    if (item.compare(0, colon, "crash") == 0) {
      std::cerr << "tessera predict-worker: injected crash (--test-worker-fault)" << std::endl;
      std::_Exit(kExitFailure);
    }
    if (item.compare(0, colon, "stall") == 0) {
      while (true) pause();
    }
  }
}

// Progress on stderr: a line redrawn in place (live), a line every few
// seconds (plain), or nothing.
class PredictProgress {
 public:
  PredictProgress(ProgressMode mode, int64_t total) : mode_(mode), total_(total) {}
  void Update(int64_t done) {
    const auto now = std::chrono::steady_clock::now();
    if (mode_ == ProgressMode::kNone || now - last_ < (mode_ == ProgressMode::kLive ? kLiveEvery : kPlainEvery)) return;
    last_ = now;
    Print(done);
  }
  void Finish(int64_t done) {
    if (mode_ == ProgressMode::kNone || !shown_) return;
    if (mode_ == ProgressMode::kLive) {
      Print(done);
      std::fputc('\n', stderr);
    }
  }

 private:
  static constexpr auto kLiveEvery = std::chrono::milliseconds(200);
  static constexpr auto kPlainEvery = std::chrono::seconds(5);
  void Print(int64_t done) {
    std::fprintf(stderr, "%spredicted %lld of %lld examples (%d%%)%s", mode_ == ProgressMode::kLive ? "\r" : "",
                 static_cast<long long>(done), static_cast<long long>(total_),
                 static_cast<int>(100 * done / std::max<int64_t>(1, total_)), mode_ == ProgressMode::kLive ? "" : "\n");
    std::fflush(stderr);
    shown_ = true;
  }
  ProgressMode mode_;
  int64_t total_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
  bool shown_ = false;
};

// "auto" shows a live line only when stderr is a terminal.
StatusOr<ProgressMode> PredictProgressMode(const std::string& flag) {
  if (flag == "auto") return isatty(STDERR_FILENO) ? ProgressMode::kLive : ProgressMode::kNone;
  if (flag == "live") return ProgressMode::kLive;
  if (flag == "plain") return ProgressMode::kPlain;
  if (flag == "none") return ProgressMode::kNone;
  return InvalidArgumentError("--progress must be auto, live, plain or none, got '" + flag + "'");
}

// The temporary directory next to FILE, removed when this goes out of scope.
class TempDir {
 public:
  static StatusOr<std::unique_ptr<TempDir>> CreateIn(const std::string& parent) {
    std::random_device rd;
    char suffix[32];
    std::snprintf(suffix, sizeof(suffix), "%d-%08x", static_cast<int>(getpid()), static_cast<unsigned>(rd()));
    // A dot first: hidden, and no CSV glob takes it.
    const std::string path = parent + "/.predict-" + suffix;
    std::error_code ec;
    if (!fs::create_directory(path, ec) || ec) {
      return UnavailableError("cannot create a directory in " + parent + ": " +
                              (ec ? ec.message() : std::string("it exists")));
    }
    return std::unique_ptr<TempDir>(new TempDir(path));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

std::string DoubleText(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

// Flushes, fsyncs and closes the joined file; Unavailable on any error.
Status CloseDurably(std::FILE* file, const std::string& path) {
  const bool ok = std::fflush(file) == 0 && std::ferror(file) == 0 && fsync(fileno(file)) == 0;
  const std::string error = ok ? "" : std::strerror(errno);
  if (std::fclose(file) != 0 && ok) return UnavailableError("cannot write " + path + ": " + std::strerror(errno));
  if (!ok) return UnavailableError("cannot write " + path + ": " + error);
  return OkStatus();
}

// The summary's figures against the input's labels, by the model's task:
// ", accuracy A (C of N)" from each row's class; ", AUC A, log loss L"
// from the binary probabilities; ", RMSE E, R\u00b2 R" from the values.
// `firsts` holds each row's second field (PredictRange).
std::string LabelSummary(Task task, const std::vector<double>& firsts, const std::vector<float>& labels) {
  const int64_t count = static_cast<int64_t>(labels.size());
  if (task == Task::kBinary) {
    BinaryMetrics metrics;
    for (int64_t i = 0; i < count; ++i) metrics.Add(static_cast<int64_t>(labels[i]), firsts[i]).IgnoreError();
    const BinaryResult r = metrics.Result();
    return ", AUC " + (r.auc_defined ? DoubleText(r.auc) : std::string("undefined (one class only)")) +
           ", log loss " + DoubleText(r.log_loss);
  }
  if (task == Task::kRegression) {
    RegressionMetrics metrics;
    for (int64_t i = 0; i < count; ++i) metrics.Add(labels[i], firsts[i]).IgnoreError();
    const RegressionResult r = metrics.Result();
    return ", RMSE " + DoubleText(r.rmse) + ", R\u00b2 " + (r.r2_defined ? DoubleText(r.r2) : std::string("undefined"));
  }
  int64_t correct = 0;
  for (int64_t i = 0; i < count; ++i) correct += firsts[i] == labels[i];
  return ", accuracy " + DoubleText(static_cast<double>(correct) / count) + " (" + std::to_string(correct) + " of " +
         std::to_string(count) + ")";
}

}  // namespace

int RunPredict(const ParsedArgs& args) {
  const Command& self = FindCommand("predict");
  if (args.positional.size() != 2) {
    return UsageError(self, "expected a model and an input (tessera predict MODEL_DIR INPUT --out FILE)");
  }
  const std::string& model_dir = args.positional[0];
  const std::string& input_path = args.positional[1];
  if (FLAGS_out.empty()) return UsageError(self, "--out FILE is required");
  const int workers = args.set_flags.count("workers") ? FLAGS_workers : 1;
  if (workers < 1 || workers > kMaxWorkers) {
    return UsageError(self, "--workers must be in [1, " + std::to_string(kMaxWorkers) + "], got " +
                                std::to_string(workers));
  }
  const int64_t batch_size = args.set_flags.count("batch_size") ? FLAGS_batch_size : kDefaultBatchSize;
  if (batch_size < 1 || batch_size > kMaxBatchSize) {
    return UsageError(self, "--batch-size must be in [1, " + std::to_string(kMaxBatchSize) + "], got " +
                                std::to_string(batch_size));
  }
  if (FLAGS_threads < 0) return UsageError(self, "--threads must be >= 0, got " + std::to_string(FLAGS_threads));
  auto mode = PredictProgressMode(FLAGS_progress);
  if (!mode.ok()) return UsageError(self, mode.status().message());

  // Where FILE goes: an existing directory, and FILE not a directory itself.
  const std::string out = FLAGS_out;
  const fs::path parent = fs::path(out).parent_path();
  const std::string out_dir = parent.empty() ? std::string(".") : parent.string();
  std::error_code ec;
  if (!fs::is_directory(out_dir, ec)) return UsageError(self, "the directory of --out, " + out_dir + ", does not exist");
  if (fs::is_directory(out, ec)) return UsageError(self, "--out " + out + " is a directory; it must name a file");

  // The model, the input, the labels: every mistake here is the user's.
  std::vector<std::string> skipped;
  auto version_dir = ResolveModelVersion(model_dir, &skipped);
  if (!version_dir.ok()) return UsageError(self, version_dir.status().message());
  for (const std::string& why : skipped) LOG(WARNING) << "passing over version " << why;
  auto device = ResolveDevice(FLAGS_device);
  if (!device.ok()) return UsageError(self, device.status().message());
  // With worker processes this one only checks the model and the input, on
  // the CPU: it must not hold a GPU the workers want.
  const Device check_device = workers > 1 ? Device::kCpu : *device;
  auto model = LoadPredictModel(*version_dir, check_device);
  if (!model.ok()) return UsageError(self, model.status().message());
  auto input = OpenPredictSource(input_path, *model);
  if (!input.ok()) return UsageError(self, input.status().message());
  const int64_t count = (*input)->count();
  std::vector<float> labels = (*input)->labels();
  if (!FLAGS_labels.empty()) {
    if (model->files.preprocessing.kind != InputKind::kIdx) {
      return UsageError(self, "--labels names an IDX labels file, for IDX models; this model's input gives its own "
                              "labels (a table's label column, image class folders)");
    }
    auto read = LoadPredictLabels(FLAGS_labels, count, model->model->num_classes());
    if (!read.ok()) return UsageError(self, read.status().message());
    labels.assign(read->begin(), read->end());
  }
  auto self_exe = SelfExecutable();
  if (!self_exe.ok()) return UsageError(self, self_exe.status().message());
  auto temp = TempDir::CreateIn(out_dir);
  if (!temp.ok()) return UsageError(self, temp.status().message());

  const std::atomic<bool>* stop = InstallStopSignals();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<PredictWorkerRange> ranges = SplitPredictRanges(count, batch_size, workers);
  const int used = static_cast<int>(ranges.size());
  PredictProgress progress(*mode, count);
  const std::string joined = (*temp)->path() + "/predictions.csv";
  std::FILE* file = std::fopen(joined.c_str(), "wb");
  if (file == nullptr) return UsageError(self, "cannot create " + joined + ": " + std::strerror(errno));
  const int num_classes = model->model->num_classes();
  const Task task = model->files.preprocessing.task;
  const std::string header = PredictCsvHeader(task, num_classes, NamesClasses(model->files.preprocessing, num_classes),
                                              (*input)->has_names());
  std::fwrite(header.data(), 1, header.size(), file);
  std::vector<double> firsts;  // each row's class, probability or value
  Status status;
  if (used == 1) {
    if (check_device != *device) {
      // Too few images for several workers: this process predicts, on the device asked for.
      model = LoadPredictModel(*version_dir, *device);
      if (!model.ok()) status = model.status();
    }
    SetComputeThreads(FLAGS_threads);
    PredictRangeOptions options;
    options.begin = 0;
    options.end = count;
    options.batch_size = batch_size;
    options.on_batch = [&](int64_t done) { progress.Update(done); };
    options.stop = stop;
    if (status.ok()) status = PredictRange(&*model, input->get(), options, file, &firsts);
  } else {
    PredictPoolOptions options;
    options.executable = *self_exe;
    // Absolute, so the workers read the same files whatever their directory.
    options.version_dir = fs::absolute(*version_dir, ec).string();
    options.input = fs::absolute(input_path, ec).string();
    options.batch_size = batch_size;
    options.device = DeviceName(*device);
    options.threads = FLAGS_threads > 0 ? FLAGS_threads
                                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / used);
    options.temp_dir = (*temp)->path();
    options.on_progress = [&](int64_t done) { progress.Update(done); };
    options.stop = stop;
    options.test_worker_fault = FLAGS_test_worker_fault;
    auto parts = RunPredictWorkers(options, ranges);
    status = parts.status();
    for (int k = 0; status.ok() && k < used; ++k) {
      status = AppendPredictRows((*parts)[k], ranges[k].begin, ranges[k].end, file, &firsts);
    }
  }
  const Status closed = CloseDurably(file, joined);
  if (status.ok()) status = closed;
  if (status.ok() && std::rename(joined.c_str(), out.c_str()) != 0) {
    status = UnavailableError("cannot rename " + joined + " to " + out + ": " + std::strerror(errno));
  }
  progress.Finish(static_cast<int64_t>(firsts.size()));
  if (!status.ok()) {
    if (status.code() == StatusCode::kAborted && stop->load()) {
      std::cerr << "tessera predict: stopped by signal " << StopSignal() << "; " << out << " not written" << std::endl;
      return kExitInterrupted;
    }
    std::cerr << "tessera predict: " << status.message() << "; " << out << " not written" << std::endl;
    // An input that turns out bad while running (an image that does not decode) is the user's mistake.
    return status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  SyncDirectory(out_dir).IgnoreError();  // the rename is visible; only its durability is in doubt
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::string summary = "wrote " + out + ": " + std::to_string(count) + " predictions of " +
                        model->files.name + " version " + std::to_string(model->files.version) + " (" +
                        std::to_string(used) + (used == 1 ? " process" : " workers") + ", " +
                        DoubleText(std::round(seconds * 100) / 100) + " s)";
  if (!labels.empty()) summary += LabelSummary(task, firsts, labels);
  std::cout << summary << std::endl;
  return kExitOk;
}

int RunPredictWorker(const ParsedArgs& args) {
  const Command& self = FindCommand("predict-worker");
  if (args.positional.size() != 2) return UsageError(self, "expected VERSION_DIR INPUT");
  if (FLAGS_out.empty()) return UsageError(self, "--out PART is required");
  int64_t begin = -1, end = -1;
  if (std::sscanf(FLAGS_range.c_str(), "%" SCNd64 ":%" SCNd64, &begin, &end) != 2 || begin < 0 || end <= begin) {
    return UsageError(self, "--range must be BEGIN:END with 0 <= BEGIN < END, got '" + FLAGS_range + "'");
  }
  auto fail = [&self](const Status& s) {
    std::cerr << "tessera " << self.name << ": " << s.message() << std::endl;
    return kExitFailure;
  };
  auto device = ResolveDevice(FLAGS_device);
  if (!device.ok()) return fail(device.status());
  auto model = LoadPredictModel(args.positional[0], *device);
  if (!model.ok()) return fail(model.status());
  // The parent checked the whole input: a table is not checked again (its rows up to END are
  // taken as there); IDX values are, so a worker never runs values its model cannot take.
  auto input = OpenPredictSource(args.positional[1], *model, /*checked_rows=*/end);
  if (!input.ok()) return fail(input.status());
  if (end > (*input)->count()) {
    return fail(InvalidArgumentError("--range " + FLAGS_range + " is past the " + std::to_string((*input)->count()) +
                                     " examples of " + args.positional[1]));
  }
  MaybeInjectFault(FLAGS_test_worker_fault, begin, end);
  SetComputeThreads(FLAGS_threads);
  std::FILE* file = std::fopen(FLAGS_out.c_str(), "wb");
  if (file == nullptr) return fail(UnavailableError("cannot create " + FLAGS_out + ": " + std::strerror(errno)));
  PredictRangeOptions options;
  options.begin = begin;
  options.end = end;
  options.batch_size = FLAGS_batch_size > 0 ? FLAGS_batch_size : kDefaultBatchSize;
  // Each batch reaches the file at once, so the parent can count the rows.
  options.on_batch = [file](int64_t) { std::fflush(file); };
  Status status = PredictRange(&*model, input->get(), options, file, nullptr);
  // The parent reads the part after this process has exited: no fsync needed.
  const bool flushed = std::fflush(file) == 0 && std::ferror(file) == 0;
  const int flush_errno = errno;
  if (std::fclose(file) != 0 || !flushed) {
    if (status.ok()) status = UnavailableError("cannot write " + FLAGS_out + ": " + std::strerror(flushed ? errno : flush_errno));
  }
  if (!status.ok()) {
    fail(status);
    // The parent tells the user's mistake (an image that does not decode) by this code.
    return status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  return kExitOk;
}

}  // namespace tessera
