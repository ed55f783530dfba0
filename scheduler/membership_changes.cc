#include "scheduler/membership_changes.h"

#include <algorithm>

namespace tessera {

void MembershipChanges::SetSchedule(int64_t steps_per_epoch, int64_t offset) {
  steps_per_epoch_ = steps_per_epoch;
  offset_ = wanted_offset_ = offset;
}

proto::Membership MembershipChanges::Change(const std::vector<bool>& active) {
  active_ = active;
  proto::Membership m;
  m.set_seq(++seq_);
  if (wanted_offset_ != offset_) {
    m.set_schedule_step_offset(wanted_offset_);
    offset_ = wanted_offset_;
  }
  for (size_t r = 0; r < active.size(); ++r) {
    if (active[r]) m.add_active(static_cast<int>(r));
  }
  pending_.push_back(Pending{seq_, 0});
  return m;
}

bool MembershipChanges::Acknowledge(int64_t seq, int servers, bool* settled) {
  auto change = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& c) { return c.seq == seq; });
  if (change == pending_.end()) return false;
  *settled = ++change->acks >= servers;
  if (*settled) pending_.erase(change);
  return true;
}

}  // namespace tessera
