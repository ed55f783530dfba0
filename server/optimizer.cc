#include "server/optimizer.h"

#include <cmath>
#include <utility>

#include "core/spec.h"

namespace tessera {
namespace {

// PyTorch's SGD: v = momentum * v + (g + wd * w); w -= lr * v.
class Sgd : public Optimizer {
 public:
  Sgd(const proto::OptimizerSpec& s, LrSchedule schedule)
      : Optimizer(std::move(schedule)), momentum_(s.momentum()), wd_(s.weight_decay()) {}
  int state_per_param() const override { return momentum_ > 0 ? 1 : 0; }
  void Apply(int64_t step, float* w, const float* g, float* state, size_t n, size_t /*stride*/) const override {
    const float lr = schedule_.At(step);
    if (momentum_ > 0) {
      for (size_t i = 0; i < n; ++i) {
        const float d = g[i] + wd_ * w[i];
        state[i] = momentum_ * state[i] + d;
        w[i] -= lr * state[i];
      }
    } else {
      for (size_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd_ * w[i]);
    }
  }

 private:
  float momentum_, wd_;
};

// PyTorch's Adam (L2 weight decay, bias-corrected moments).
class Adam : public Optimizer {
 public:
  Adam(const proto::OptimizerSpec& s, LrSchedule schedule)
      : Optimizer(std::move(schedule)), b1_(s.beta1()), b2_(s.beta2()), eps_(s.epsilon()), wd_(s.weight_decay()) {}
  int state_per_param() const override { return 2; }
  void Apply(int64_t step, float* w, const float* g, float* state, size_t n, size_t stride) const override {
    float* m = state;
    float* v = state + stride;
    const double c1 = 1.0 - std::pow(static_cast<double>(b1_), static_cast<double>(step));
    const double c2 = 1.0 - std::pow(static_cast<double>(b2_), static_cast<double>(step));
    const float lr = schedule_.At(step);
    const float step_size = static_cast<float>(lr / c1);
    const float c2_sqrt = static_cast<float>(std::sqrt(c2));
    for (size_t i = 0; i < n; ++i) {
      const float d = g[i] + wd_ * w[i];
      m[i] = b1_ * m[i] + (1.0f - b1_) * d;
      v[i] = b2_ * v[i] + (1.0f - b2_) * d * d;
      const float denom = std::sqrt(v[i]) / c2_sqrt + eps_;
      w[i] -= step_size * m[i] / denom;
    }
  }

 private:
  float b1_, b2_, eps_, wd_;
};

}  // namespace

StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const proto::OptimizerSpec& spec, const ScheduleClock& clock) {
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(spec, clock));  // validates the spec
  switch (spec.type()) {
    case proto::OptimizerSpec::SGD:
      return std::unique_ptr<Optimizer>(new Sgd(spec, std::move(schedule)));
    case proto::OptimizerSpec::ADAM:
      return std::unique_ptr<Optimizer>(new Adam(spec, std::move(schedule)));
  }
  return InvalidArgumentError("unknown optimizer type " + std::to_string(spec.type()));
}

}  // namespace tessera
