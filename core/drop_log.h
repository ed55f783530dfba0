// DropLog: the log lines of the messages a role drops (malformed, from a
// stranger, for another job), rate-limited. Each dropped message is worth a
// line to whoever debugs a cluster, but a peer sending junk as fast as it can
// must not fill the disk: 40,000 junk messages once wrote 5 MB of log.
//
// In each interval (it starts at the first drop after the previous one
// ended) the first `burst` drops are logged in full. The rest are only
// counted, and the first drop of the next interval reports that count in
// one line, "dropped K more messages since the last one logged, S s ago",
// before it is logged itself. So an interval writes at most burst + 1
// lines, whatever the rate. A count is reported only when a later drop
// comes: the loops that own a DropLog have no timer of their own.
//
// Not thread-safe: one role's event loop owns it. *clock must outlive it.
#ifndef TESSERA_CORE_DROP_LOG_H_
#define TESSERA_CORE_DROP_LOG_H_

#include <cstdint>
#include <functional>
#include <string>

#include "core/clock.h"

namespace tessera {

struct DropLogOptions {
  // Drops logged in full per interval. Default 10.
  int burst = 10;
  // Default 60 s.
  Clock::Duration interval = std::chrono::seconds(60);
};

class DropLog {
 public:
  // Where the lines go; the default writes them with LOG(WARNING).
  using Sink = std::function<void(const std::string& line)>;

  explicit DropLog(const Clock* clock, DropLogOptions options = DropLogOptions(), Sink sink = nullptr);

  // One more dropped message, described by `line` (logged or counted).
  void Drop(const std::string& line);

  // Drops counted in this interval and not logged (yet to be reported).
  int64_t unreported() const { return unreported_; }

 private:
  std::string CountLine(Clock::TimePoint now) const;

  const Clock* clock_;
  DropLogOptions options_;
  Sink sink_;
  bool started_ = false;  // an interval has begun
  Clock::TimePoint interval_start_;
  Clock::TimePoint last_logged_;
  int logged_ = 0;  // in this interval
  int64_t unreported_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_CORE_DROP_LOG_H_
