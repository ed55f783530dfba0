// Where a resumed job starts: read from a checkpoint's manifest and checked
// against the job that is to continue it.
#ifndef TESSERA_SCHEDULER_RESUME_POINT_H_
#define TESSERA_SCHEDULER_RESUME_POINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"
#include "scheduler/epoch_loss_ledger.h"
#include "scheduler/job_shape.h"

namespace tessera {

struct ResumePoint {
  int start_epoch = 0;         // the epoch to run next (0-based)...
  int64_t skip_steps = 0;      // ...and its steps the checkpoint already holds
  bool evaluate_only = false;  // training was complete: only the final evaluation is left
  int64_t step = 0;            // the checkpoint's global step
  proto::Restore restore;      // what the servers load; its dir is absolute
  // A cut inside an epoch: each worker rank's loss sums over that epoch's
  // steps before it (empty at an epoch's end, and for a manifest written
  // before they were kept).
  std::vector<LossSums> loss_before_cut;
};

// Reads and verifies the checkpoint directory `checkpoint` and checks that
// the job of `spec` (whose shape is `shape`) can continue it: the same
// model, seed and optimizer; a cut inside an epoch needs BSP with the
// workers and batch size it was cut with; epochs left to run (or the final
// evaluation). InvalidArgument naming what differs; the manifest reader's
// error (NotFound, DataLoss) for a missing or damaged checkpoint, and
// DataLoss for loss sums of another number of workers than it was cut with.
StatusOr<ResumePoint> LoadResumePoint(const std::string& checkpoint, const proto::JobSpec& spec,
                                      const JobShape& shape);

}  // namespace tessera

#endif  // TESSERA_SCHEDULER_RESUME_POINT_H_
