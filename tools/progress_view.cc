#include "tools/progress_view.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

namespace tessera {
namespace {

constexpr auto kPlainInterval = std::chrono::seconds(5);

}  // namespace

double JsonNumber(const std::string& line, const std::string& key, double fallback) {
  const std::string needle = "\"" + key + "\": ";
  const size_t at = line.find(needle);
  if (at == std::string::npos) return fallback;
  const char* start = line.c_str() + at + needle.size();
  char* end = nullptr;
  const double v = std::strtod(start, &end);
  return end == start ? fallback : v;
}

namespace {

// An eval line's figures of its task: "accuracy 0.8812" (multi-class, from
// `accuracy_key`), "AUC 0.9712, accuracy 0.9134" (binary), "RMSE 0.5123,
// R² 0.9321" (regression); an undefined AUC or R² (null) shows as "-".
std::string TaskFigures(const std::string& line, const std::string& accuracy_key) {
  const auto figure = [&](const char* key) {
    const double v = JsonNumber(line, key, std::nan(""));
    if (std::isnan(v)) return std::string("-");
    char text[32];
    std::snprintf(text, sizeof(text), "%.4f", v);
    return std::string(text);
  };
  if (line.find("\"binary\": {") != std::string::npos) {
    return "AUC " + figure("auc") + ", accuracy " + figure("accuracy");
  }
  if (line.find("\"regression\": {") != std::string::npos) return "RMSE " + figure("rmse") + ", R² " + figure("r2");
  return "accuracy " + figure(accuracy_key.c_str());
}

}  // namespace

std::string JsonString(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\": \"";
  const size_t at = line.find(needle);
  if (at == std::string::npos) return "";
  const size_t begin = at + needle.size();
  const size_t end = line.find('"', begin);
  return end == std::string::npos ? "" : line.substr(begin, end - begin);
}

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

void ProgressView::SkipExistingLines() {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path_, ec);
  offset_ = ec ? 0 : static_cast<long>(size);
  partial_.clear();
}

void ProgressView::Update() {
  if (mode_ == ProgressMode::kNone && !on_line_) return;
  FILE* f = std::fopen(path_.c_str(), "r");
  if (f == nullptr) return;  // the scheduler has not created it yet
  std::fseek(f, offset_, SEEK_SET);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    offset_ += static_cast<long>(n);
    partial_.append(buf, n);
  }
  std::fclose(f);
  size_t newline;
  while ((newline = partial_.find('\n')) != std::string::npos) {
    const std::string line = partial_.substr(0, newline);
    partial_.erase(0, newline + 1);
    if (mode_ != ProgressMode::kNone) Show(line);
    if (on_line_) on_line_(line);
  }
}

void ProgressView::Show(const std::string& line) {
  const std::string event = JsonString(line, "event");
  const int epoch = static_cast<int>(JsonNumber(line, "epoch"));
  const int epochs = static_cast<int>(JsonNumber(line, "epochs"));
  char text[256];
  if (event == "progress") {
    const double fraction = JsonNumber(line, "fraction");
    std::snprintf(text, sizeof(text), "epoch %d/%d  %5.1f%%  step %lld  loss %.4f  %.0f samples/s  ETA %s", epoch,
                  epochs, 100 * fraction, static_cast<long long>(JsonNumber(line, "step")), JsonNumber(line, "loss"),
                  JsonNumber(line, "samples_per_sec"), FormatDuration(JsonNumber(line, "eta_seconds")).c_str());
    if (mode_ == ProgressMode::kLive) {
      std::fprintf(out_, "\r\033[K%s", text);
      live_line_open_ = true;
    } else if (std::chrono::steady_clock::now() - last_plain_ >= kPlainInterval) {
      last_plain_ = std::chrono::steady_clock::now();
      std::fprintf(out_, "%s\n", text);
    }
  } else if (event == "epoch") {
    std::snprintf(text, sizeof(text), "epoch %d/%d done: train loss %.4f, %.0f samples/s, %.1f s", epoch, epochs,
                  JsonNumber(line, "train_loss"), JsonNumber(line, "samples_per_sec"),
                  JsonNumber(line, "epoch_seconds"));
    Finish();
    std::fprintf(out_, "%s\n", text);
  } else if (event == "checkpoint_skipped") {
    std::snprintf(text, sizeof(text), "checkpoint due at step %lld skipped: %s",
                  static_cast<long long>(JsonNumber(line, "step")), JsonString(line, "reason").c_str());
    Finish();
    std::fprintf(out_, "%s\n", text);
  } else if (event == "checkpoint_failed") {
    std::snprintf(text, sizeof(text), "checkpoint at step %lld failed: %s",
                  static_cast<long long>(JsonNumber(line, "step")), JsonString(line, "reason").c_str());
    Finish();
    std::fprintf(out_, "%s\n", text);
  } else if (event == "eval" && JsonString(line, "set") == "validation") {
    const bool improved = line.find("\"improved\": true") != std::string::npos;
    const bool stop = line.find("\"stop\": true") != std::string::npos;
    std::snprintf(text, sizeof(text), "epoch %d/%d validation %s, validation loss %.4f%s%s", epoch, epochs,
                  TaskFigures(line, "validation_accuracy").c_str(), JsonNumber(line, "validation_loss"),
                  improved ? " (best so far)" : "",
                  stop ? ("; stopping early: the best " + JsonString(line, "metric") + " was epoch " +
                          std::to_string(static_cast<int>(JsonNumber(line, "best_epoch"))) + "'s")
                             .c_str()
                       : "");
    Finish();
    std::fprintf(out_, "%s\n", text);
  } else if (event == "eval") {
    std::snprintf(text, sizeof(text), "epoch %d/%d test %s, test loss %.4f", epoch, epochs,
                  TaskFigures(line, "test_accuracy").c_str(), JsonNumber(line, "test_loss"));
    Finish();
    std::fprintf(out_, "%s\n", text);
  }
  std::fflush(out_);
}

void ProgressView::Finish() {
  if (live_line_open_) {
    std::fprintf(out_, "\r\033[K");
    live_line_open_ = false;
  }
  std::fflush(out_);
}

}  // namespace tessera
