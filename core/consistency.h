// What a job's consistency (JobSpec.consistency, .staleness) means for the
// code that differs by it. BSP and SSP are both synchronous: every step sums
// all taking-part workers' pushes in rank order and is applied once, steps in
// order, so the data plan, the step counts, the checkpoint cuts inside an
// epoch and the bitwise reproducibility are BSP's for both. They differ only
// in how old the parameters a worker trains on may be: under BSP exactly
// its step's, under SSP up to `staleness` steps older.
#ifndef TESSERA_CORE_CONSISTENCY_H_
#define TESSERA_CORE_CONSISTENCY_H_

#include <cstdint>

#include "proto/job.pb.h"

namespace tessera {

// The largest JobSpec.staleness: the servers hold up to staleness + 1 steps
// of pushes per slice, so it bounds their memory.
inline constexpr int kMaxStaleness = 1000;

// True for BSP and SSP: pushes are summed per global step.
inline bool IsSynchronous(proto::Consistency consistency) { return consistency != proto::ASP; }
inline bool IsSynchronous(const proto::JobSpec& spec) { return IsSynchronous(spec.consistency()); }

// How many steps older than its step the parameters a worker trains on may
// be: SSP's staleness bound; 0 under BSP (and ASP, where no step waits).
inline int64_t StalenessBound(const proto::JobSpec& spec) {
  return spec.consistency() == proto::SSP ? spec.staleness() : 0;
}

}  // namespace tessera

#endif  // TESSERA_CORE_CONSISTENCY_H_
