// ProgressView: follows a run's metrics.jsonl and shows progress. On a
// terminal one live line is redrawn in place; otherwise plain lines are
// printed (each epoch's result, and training progress every few seconds).
// Not thread-safe.
#ifndef TESSERA_TOOLS_PROGRESS_VIEW_H_
#define TESSERA_TOOLS_PROGRESS_VIEW_H_

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace tessera {

enum class ProgressMode { kLive, kPlain, kNone };

class ProgressView {
 public:
  ProgressView(std::string metrics_path, ProgressMode mode, FILE* out)
      : path_(std::move(metrics_path)), mode_(mode), out_(out) {}

  // Reads new complete lines of the metrics file and shows them (none in
  // ProgressMode::kNone), handing each to the callback, if any.
  void Update();
  void set_on_line(std::function<void(const std::string& line)> on_line) { on_line_ = std::move(on_line); }
  // From now on only lines written after this call: the lines an earlier
  // run of the job left (a restart's, a resume's) are neither shown again
  // nor handed to the callback.
  void SkipExistingLines();
  // Ends a live line so that what follows starts on a fresh one.
  void Finish();

 private:
  void Show(const std::string& line);

  std::string path_;
  ProgressMode mode_;
  FILE* out_;
  long offset_ = 0;
  std::string partial_;
  bool live_line_open_ = false;
  std::function<void(const std::string& line)> on_line_;
  std::chrono::steady_clock::time_point last_plain_{};
};

// A number field of a one-line JSON object, or `fallback` when absent.
double JsonNumber(const std::string& line, const std::string& key, double fallback = 0);
// A string field of a one-line JSON object, or "" when absent.
std::string JsonString(const std::string& line, const std::string& key);

// "1:02:03" or "2:03".
std::string FormatDuration(double seconds);

}  // namespace tessera

#endif  // TESSERA_TOOLS_PROGRESS_VIEW_H_
