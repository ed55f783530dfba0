#include "scheduler/epoch_loss_ledger.h"

#include <glog/logging.h>

namespace tessera {

void EpochLossLedger::Begin(int epoch, int64_t from_step, std::vector<LossSums> start) {
  tracking_ = true;
  epoch_ = epoch;
  from_step_ = from_step;
  ranks_.assign(start.size(), Rank{});
  for (size_t r = 0; r < start.size(); ++r) ranks_[r].after.push_back(start[r]);
}

void EpochLossLedger::Stop() {
  tracking_ = false;
  ranks_.clear();
}

void EpochLossLedger::Report(int rank, const proto::Progress& progress) {
  if (!tracking_ || progress.epoch() != epoch_ || rank < 0 || rank >= static_cast<int>(ranks_.size())) return;
  Rank& r = ranks_[rank];
  if (r.broken) return;
  const int n = progress.step_loss_sums_size();
  const int64_t reached = from_step_ + static_cast<int64_t>(r.after.size()) - 1;
  if (progress.step_examples_size() != n || progress.step() - n != reached) {
    LOG(WARNING) << "worker " << rank << "'s PROGRESS reports steps [" << progress.step() - n << ", " << progress.step()
                 << ") with " << n << " loss sums and " << progress.step_examples_size()
                 << " example counts; its reports so far reach step " << reached
                 << ": its loss sums in this epoch are unknown from here on, a cut inside it keeps none";
    r.broken = true;
    return;
  }
  for (int i = 0; i < n; ++i) {
    LossSums next = r.after.back();
    // The worker's own additions, in its order (its PHASE_DONE loss_sum is the last of them).
    next.loss_sum += progress.step_loss_sums(i);
    next.examples += progress.step_examples(i);
    r.after.push_back(next);
  }
}

EpochLossLedger::SumsAt EpochLossLedger::At(int epoch, int64_t step) const {
  SumsAt out;
  if (!tracking_ || epoch != epoch_ || step < from_step_) return out;
  const size_t index = static_cast<size_t>(step - from_step_);
  for (const Rank& r : ranks_) {
    if (r.broken) return out;
  }
  for (const Rank& r : ranks_) {
    if (index >= r.after.size()) {
      out.state = State::kPending;
      return out;
    }
  }
  out.state = State::kKnown;
  for (const Rank& r : ranks_) out.ranks.push_back(r.after[index]);
  return out;
}

}  // namespace tessera
