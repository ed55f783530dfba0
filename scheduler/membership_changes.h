// What the servers were last told about the workers: which ranks take part
// (a server waits for the pushes of those only) and the learning-rate
// schedule's step offset. Each change is numbered; it is settled once every
// server has acknowledged it. No sockets: the caller sends the messages.
//
// Not thread-safe.
#ifndef TESSERA_SCHEDULER_MEMBERSHIP_CHANGES_H_
#define TESSERA_SCHEDULER_MEMBERSHIP_CHANGES_H_

#include <cstdint>
#include <vector>

#include "proto/wire.pb.h"

namespace tessera {

class MembershipChanges {
 public:
  // The job started: the servers know every one of `workers` ranks takes
  // part, and use the schedule offset of their cluster map.
  void Start(int workers) { active_.assign(workers, true); }
  // The cluster map's schedule: steps per epoch and the step offset.
  void SetSchedule(int64_t steps_per_epoch, int64_t offset);
  // The offset the next training phase wants (BSP: epoch * steps_per_epoch -
  // the step the epoch begins at); it goes out with the next change.
  void WantOffset(int64_t offset) { wanted_offset_ = offset; }

  // Whether the servers must be told about `active` (or a new offset).
  bool Differs(const std::vector<bool>& active) const { return active != active_ || wanted_offset_ != offset_; }
  // The next change: `active`, with the wanted offset when the servers have another.
  proto::Membership Change(const std::vector<bool>& active);
  // Server acknowledged change `seq`: false for a change not pending. Sets
  // *settled when `servers` servers now have.
  bool Acknowledge(int64_t seq, int servers, bool* settled);

  // Every change is acknowledged by every server.
  bool settled() const { return pending_.empty(); }
  const std::vector<bool>& active() const { return active_; }
  int64_t seq() const { return seq_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }

 private:
  struct Pending {
    int64_t seq = 0;
    int acks = 0;
  };
  std::vector<bool> active_;  // by worker rank
  int64_t seq_ = 0;
  std::vector<Pending> pending_;
  int64_t steps_per_epoch_ = 0;
  int64_t offset_ = 0, wanted_offset_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_MEMBERSHIP_CHANGES_H_
