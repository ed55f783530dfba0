// Optimizers of sparse tables' rows (issue 16: embedding tables keyed by
// 64-bit ids): a step updates only the rows its pushes touched, each from
// its own gradient, and a row no push touched keeps its values and its state
// exactly (no decay of either), as PyTorch's SparseAdam and the sparse paths
// of its SGD and Adagrad do. One row of `dim` values at a time, its state
// beside it; elementwise, so rows may be stepped in any order, on any
// thread, with the same bits.
//
//   SGD       w -= lr * g
//   AdaGrad   a += g^2;  w -= lr * (g / (sqrt(a) + epsilon))      (PyTorch's Adagrad, no lr decay)
//   FTRL      FTRL-Proximal (McMahan et al., "Ad Click Prediction: a View
//             from the Trenches", KDD 2013, algorithm 1), per coordinate,
//             alpha = lr:
//               sigma = (sqrt(n + g^2) - sqrt(n)) / alpha
//               z += g - sigma * w;  n += g^2
//               w = 0                                             if |z| <= l1
//               w = -(z - sign(z) * l1) / ((beta + sqrt(n)) / alpha + l2)   otherwise
//   Adam      PyTorch's SparseAdam: m += (g - m) * (1 - beta1);
//             v += (g^2 - v) * (1 - beta2);
//             w -= (lr * sqrt(1 - beta2^t) / (1 - beta1^t)) * (m / (sqrt(v) + epsilon)),
//             t the job's step (SparseAdam counts optimizer.step() calls,
//             not a row's own updates)
//
// Float arithmetic as written, left to right, without fused multiply-adds
// (the build's -ffp-contract=off); Adam's step size in double, rounded to
// float.
#ifndef TESSERA_SERVER_SPARSE_OPTIMIZER_H_
#define TESSERA_SERVER_SPARSE_OPTIMIZER_H_

#include <cstdint>
#include <memory>

#include "core/status.h"

namespace tessera {

enum class SparseOptimizerType { kSgd, kAdagrad, kFtrl, kAdam };

// Hyperparameters; the learning rate comes with each step (an LrSchedule's).
struct SparseOptimizerOptions {
  SparseOptimizerType type = SparseOptimizerType::kSgd;
  // AdaGrad: added to the root of the accumulated squares. Default 1e-10
  // (PyTorch's). Must be >= 0.
  float adagrad_epsilon = 1e-10f;
  // AdaGrad: each accumulator's start. Default 0 (PyTorch's; TensorFlow's
  // is 0.1). Must be >= 0.
  float initial_accumulator = 0;
  // FTRL: beta (default 1, must be >= 0), the L1 and L2 strengths (default
  // 0, must be >= 0). Its alpha is the learning rate.
  float ftrl_beta = 1;
  float ftrl_l1 = 0;
  float ftrl_l2 = 0;
  // Adam: defaults 0.9, 0.999 and 1e-8 (PyTorch's SparseAdam); beta1 and
  // beta2 in [0, 1), epsilon > 0.
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float adam_epsilon = 1e-8f;
};

// Immutable after Create; thread-safe (ApplyRow on disjoint rows at once).
class SparseOptimizer {
 public:
  // InvalidArgument naming the hyperparameter out of its range.
  static StatusOr<std::unique_ptr<SparseOptimizer>> Create(const SparseOptimizerOptions& options);
  virtual ~SparseOptimizer() = default;

  // Floats of state per value of a row: SGD 0, AdaGrad 1 (the accumulator),
  // FTRL 2 (z, n), Adam 2 (m, v).
  virtual int state_per_value() const = 0;

  // The state of a row first touched: state_per_value() blocks of dim
  // floats, back to back. AdaGrad's accumulator starts at
  // initial_accumulator, everything else at 0.
  virtual void InitState(float* state, int dim) const;

  // One step of one row: its values w[dim] and their gradient g[dim] (the
  // step's mean over its examples), its state as InitState lays it out.
  // `step` is the job's step counting from 1, `lr` that step's rate (> 0).
  virtual void ApplyRow(int64_t step, float lr, float* w, const float* g, float* state, int dim) const = 0;

 protected:
  SparseOptimizer() = default;
};

}  // namespace tessera

#endif  // TESSERA_SERVER_SPARSE_OPTIMIZER_H_
