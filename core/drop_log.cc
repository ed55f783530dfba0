#include "core/drop_log.h"

#include <glog/logging.h>

#include <cstdio>

namespace tessera {
namespace {

std::string Seconds(Clock::Duration d) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", std::chrono::duration<double>(d).count());
  return text;
}

}  // namespace

DropLog::DropLog(const Clock* clock, DropLogOptions options, Sink sink)
    : clock_(clock), options_(options), sink_(std::move(sink)) {
  if (sink_ == nullptr) sink_ = [](const std::string& line) { LOG(WARNING) << line; };
}

void DropLog::Drop(const std::string& line) {
  const Clock::TimePoint now = clock_->Now();
  if (!started_ || now - interval_start_ >= options_.interval) {
    if (unreported_ > 0) sink_(CountLine(now));
    started_ = true;
    interval_start_ = now;
    logged_ = 0;
    unreported_ = 0;
  }
  if (logged_ < options_.burst) {
    ++logged_;
    last_logged_ = now;
    sink_(line);
    return;
  }
  ++unreported_;
}

std::string DropLog::CountLine(Clock::TimePoint now) const {
  return "dropped " + std::to_string(unreported_) + " more messages since the last one logged, " +
         Seconds(now - last_logged_) + " s ago (at most " + std::to_string(options_.burst) + " are logged per " +
         Seconds(options_.interval) + " s)";
}

}  // namespace tessera
