#include "server/sparse_optimizer.h"

#include <cmath>
#include <string>

namespace tessera {
namespace {

class SparseSgd : public SparseOptimizer {
 public:
  int state_per_value() const override { return 0; }
  void ApplyRow(int64_t, float lr, float* w, const float* g, float*, int dim) const override {
    for (int i = 0; i < dim; ++i) w[i] -= lr * g[i];
  }
};

class SparseAdagrad : public SparseOptimizer {
 public:
  explicit SparseAdagrad(const SparseOptimizerOptions& o) : epsilon_(o.adagrad_epsilon), initial_(o.initial_accumulator) {}
  int state_per_value() const override { return 1; }
  void InitState(float* state, int dim) const override {
    for (int i = 0; i < dim; ++i) state[i] = initial_;
  }
  void ApplyRow(int64_t, float lr, float* w, const float* g, float* state, int dim) const override {
    float* sum = state;
    for (int i = 0; i < dim; ++i) {
      sum[i] += g[i] * g[i];
      w[i] -= lr * (g[i] / (std::sqrt(sum[i]) + epsilon_));
    }
  }

 private:
  float epsilon_, initial_;
};

class SparseFtrl : public SparseOptimizer {
 public:
  explicit SparseFtrl(const SparseOptimizerOptions& o) : beta_(o.ftrl_beta), l1_(o.ftrl_l1), l2_(o.ftrl_l2) {}
  int state_per_value() const override { return 2; }
  void ApplyRow(int64_t, float alpha, float* w, const float* g, float* state, int dim) const override {
    float* z = state;
    float* n = state + dim;
    for (int i = 0; i < dim; ++i) {
      const float n_new = n[i] + g[i] * g[i];
      const float sigma = (std::sqrt(n_new) - std::sqrt(n[i])) / alpha;
      z[i] += g[i] - sigma * w[i];
      n[i] = n_new;
      if (std::fabs(z[i]) <= l1_) {
        w[i] = 0;
      } else {
        const float shrunk = z[i] - std::copysign(l1_, z[i]);
        w[i] = -shrunk / ((beta_ + std::sqrt(n_new)) / alpha + l2_);
      }
    }
  }

 private:
  float beta_, l1_, l2_;
};

class SparseAdam : public SparseOptimizer {
 public:
  explicit SparseAdam(const SparseOptimizerOptions& o) : beta1_(o.beta1), beta2_(o.beta2), epsilon_(o.adam_epsilon) {}
  int state_per_value() const override { return 2; }
  void ApplyRow(int64_t step, float lr, float* w, const float* g, float* state, int dim) const override {
    float* m = state;
    float* v = state + dim;
    // As PyTorch's SparseAdam: the bias corrections of the job's step t, in double.
    const double t = static_cast<double>(step);
    const double correction1 = 1.0 - std::pow(static_cast<double>(beta1_), t);
    const double correction2 = 1.0 - std::pow(static_cast<double>(beta2_), t);
    const float step_size = static_cast<float>(static_cast<double>(lr) * std::sqrt(correction2) / correction1);
    const float keep1 = 1.0f - beta1_, keep2 = 1.0f - beta2_;
    for (int i = 0; i < dim; ++i) {
      m[i] += (g[i] - m[i]) * keep1;
      v[i] += (g[i] * g[i] - v[i]) * keep2;
      w[i] -= step_size * (m[i] / (std::sqrt(v[i]) + epsilon_));
    }
  }

 private:
  float beta1_, beta2_, epsilon_;
};

Status OutOfRange(const std::string& name, const std::string& expected, float got) {
  return InvalidArgumentError("sparse optimizer: " + name + " must be " + expected + ", got " + std::to_string(got));
}

Status Validate(const SparseOptimizerOptions& o) {
  if (!(o.adagrad_epsilon >= 0)) return OutOfRange("adagrad epsilon", ">= 0", o.adagrad_epsilon);
  if (!(o.initial_accumulator >= 0)) return OutOfRange("initial_accumulator", ">= 0", o.initial_accumulator);
  if (!(o.ftrl_beta >= 0)) return OutOfRange("ftrl beta", ">= 0", o.ftrl_beta);
  if (!(o.ftrl_l1 >= 0)) return OutOfRange("ftrl l1", ">= 0", o.ftrl_l1);
  if (!(o.ftrl_l2 >= 0)) return OutOfRange("ftrl l2", ">= 0", o.ftrl_l2);
  if (!(o.beta1 >= 0 && o.beta1 < 1)) return OutOfRange("beta1", "in [0, 1)", o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) return OutOfRange("beta2", "in [0, 1)", o.beta2);
  if (!(o.adam_epsilon > 0)) return OutOfRange("adam epsilon", "> 0", o.adam_epsilon);
  if (!std::isfinite(o.adagrad_epsilon) || !std::isfinite(o.initial_accumulator) || !std::isfinite(o.ftrl_beta) ||
      !std::isfinite(o.ftrl_l1) || !std::isfinite(o.ftrl_l2) || !std::isfinite(o.adam_epsilon)) {
    return InvalidArgumentError("sparse optimizer: every hyperparameter must be finite");
  }
  return OkStatus();
}

}  // namespace

void SparseOptimizer::InitState(float* state, int dim) const {
  for (int i = 0; i < state_per_value() * dim; ++i) state[i] = 0;
}

StatusOr<std::unique_ptr<SparseOptimizer>> SparseOptimizer::Create(const SparseOptimizerOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  switch (options.type) {
    case SparseOptimizerType::kSgd:
      return std::unique_ptr<SparseOptimizer>(new SparseSgd());
    case SparseOptimizerType::kAdagrad:
      return std::unique_ptr<SparseOptimizer>(new SparseAdagrad(options));
    case SparseOptimizerType::kFtrl:
      return std::unique_ptr<SparseOptimizer>(new SparseFtrl(options));
    case SparseOptimizerType::kAdam:
      return std::unique_ptr<SparseOptimizer>(new SparseAdam(options));
  }
  return InvalidArgumentError("sparse optimizer: unknown type " + std::to_string(static_cast<int>(options.type)));
}

}  // namespace tessera
