#include "tools/predict_pool.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "core/file_util.h"
#include "tools/child_process.h"

namespace tessera {
namespace {

// A worker's exit code for an input it cannot take (kExitUsage).
constexpr int kWorkerInputError = 2;

// The last non-empty line of a worker's log (its error), or "".
std::string LastLine(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return "";
  std::string s = *text;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  const size_t newline = s.rfind('\n');
  return newline == std::string::npos ? s : s.substr(newline + 1);
}

// Counts the rows a worker has written so far, reading only what is new.
class RowCounter {
 public:
  explicit RowCounter(std::string path) : path_(std::move(path)) {}
  int64_t Update() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return rows_;
    in.seekg(offset_);
    char buf[1 << 16];
    while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
      rows_ += std::count(buf, buf + in.gcount(), '\n');
      offset_ += in.gcount();
    }
    return rows_;
  }

 private:
  std::string path_;
  std::streamoff offset_ = 0;
  int64_t rows_ = 0;
};

}  // namespace

std::vector<PredictWorkerRange> SplitPredictRanges(int64_t count, int64_t batch_size, int workers) {
  std::vector<PredictWorkerRange> ranges;
  if (count <= 0 || batch_size <= 0 || workers <= 0) return ranges;
  const int64_t batches = (count + batch_size - 1) / batch_size;
  const int64_t w = std::min<int64_t>(workers, batches);
  for (int64_t k = 0; k < w; ++k) {
    const int64_t first = batches * k / w, last = batches * (k + 1) / w;
    ranges.push_back({first * batch_size, std::min(count, last * batch_size)});
  }
  return ranges;
}

StatusOr<std::vector<std::string>> RunPredictWorkers(const PredictPoolOptions& options,
                                                     const std::vector<PredictWorkerRange>& ranges) {
  const int n = static_cast<int>(ranges.size());
  std::vector<std::unique_ptr<ChildProcess>> children;
  std::vector<std::string> parts;
  std::vector<RowCounter> counters;
  // Stops every worker still running (the destructors would too, one at a
  // time; this signals all of them first).
  auto stop_all = [&children] {
    for (auto& child : children) {
      if (!child->Poll().has_value()) kill(child->pid(), SIGTERM);
    }
    for (auto& child : children) child->Stop(/*grace_ms=*/1000);
  };
  for (int k = 0; k < n; ++k) {
    const std::string label = "worker-" + std::to_string(k);
    parts.push_back(options.temp_dir + "/part-" + std::to_string(k) + ".csv");
    counters.emplace_back(parts.back());
    std::vector<std::string> argv = {options.executable,
                                     "predict-worker",
                                     options.version_dir,
                                     options.input,
                                     "--out",
                                     parts.back(),
                                     "--range",
                                     std::to_string(ranges[k].begin) + ":" + std::to_string(ranges[k].end),
                                     "--batch-size",
                                     std::to_string(options.batch_size),
                                     "--threads",
                                     std::to_string(options.threads),
                                     "--device",
                                     options.device};
    if (!options.test_worker_fault.empty()) {
      argv.insert(argv.end(), {"--test-worker-fault", options.test_worker_fault});
    }
    auto child = ChildProcess::Start(label, argv, options.temp_dir + "/" + label + ".log");
    if (!child.ok()) {
      stop_all();
      return child.status();
    }
    children.push_back(std::move(child).value());
  }
  auto last_progress = std::chrono::steady_clock::now();
  while (true) {
    int done = 0;
    for (int k = 0; k < n; ++k) {
      const std::optional<int> code = children[k]->Poll();
      if (!code.has_value()) continue;
      if (*code != 0) {
        stop_all();
        const std::string last = LastLine(children[k]->log_path());
        if (*code == kWorkerInputError) {
          // The worker's one line names the bad input (an image that does not decode).
          const std::string prefix = "tessera predict-worker: ";
          return InvalidArgumentError(last.compare(0, prefix.size(), prefix) == 0 ? last.substr(prefix.size()) : last);
        }
        return InternalError("worker " + std::to_string(k + 1) + " of " + std::to_string(n) + " (images " +
                             std::to_string(ranges[k].begin) + ".." + std::to_string(ranges[k].end - 1) + ") " +
                             (*code > 128 ? "was killed by signal " + std::to_string(*code - 128)
                                          : "exited with code " + std::to_string(*code)) +
                             (last.empty() ? "" : ": " + last));
      }
      ++done;
    }
    if (done == n) break;
    if (options.stop != nullptr && options.stop->load()) {
      stop_all();
      return AbortedError("stopped");
    }
    if (options.on_progress && std::chrono::steady_clock::now() - last_progress >= std::chrono::milliseconds(100)) {
      int64_t rows = 0;
      for (RowCounter& counter : counters) rows += counter.Update();
      options.on_progress(rows);
      last_progress = std::chrono::steady_clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return parts;
}

}  // namespace tessera
