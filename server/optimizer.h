// Optimizers, applied by the servers to their slices of the parameters.
// Each keeps its state (momentum, moments) in a buffer the caller owns, laid
// out beside the parameters, so it can be checkpointed with them.
// Elementwise only: splitting the keys differently gives bitwise-equal results.
#ifndef TESSERA_SERVER_OPTIMIZER_H_
#define TESSERA_SERVER_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // Floats of state per parameter.
  virtual int state_per_param() const = 0;

  // One step on n parameters w with gradient g (already averaged over the
  // step's examples). `state` holds n * state_per_param() floats, zero at the
  // start, laid out as state_per_param() blocks of n. `step` counts from 1.
  virtual void Apply(int64_t step, float* w, const float* g, float* state, size_t n) const = 0;
};

// InvalidArgument for an unknown type or a bad hyperparameter.
StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const proto::OptimizerSpec& spec);

}  // namespace tessera

#endif  // TESSERA_SERVER_OPTIMIZER_H_
