#include "server/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

#include "core/spec.h"

namespace tessera {

StatusOr<LrSchedule> LrSchedule::Create(const proto::OptimizerSpec& spec, const ScheduleClock& clock) {
  RETURN_IF_ERROR(ValidateOptimizerSpec(spec));
  LrSchedule s;
  s.schedule_ = spec.schedule();
  s.lr_ = static_cast<double>(spec.learning_rate());
  s.min_lr_ = static_cast<double>(spec.min_learning_rate());
  s.gamma_ = static_cast<double>(spec.gamma());
  s.offset_ = clock.step_offset;
  const bool warmup = spec.warmup_epochs() > 0;
  s.constant_ = spec.schedule() == proto::OptimizerSpec::CONSTANT && !warmup;
  if (s.constant_) return s;

  const std::string what = warmup && spec.schedule() == proto::OptimizerSpec::CONSTANT
                               ? "optimizer.warmup_epochs"
                               : "optimizer.schedule " + proto::OptimizerSpec::Schedule_Name(spec.schedule());
  if (clock.steps_per_epoch < 1) {
    return InvalidArgumentError(what + " needs the job's steps per epoch, got " +
                                std::to_string(clock.steps_per_epoch));
  }
  if (clock.epochs < 1)
    return InvalidArgumentError(what + " needs the job's epochs, got " + std::to_string(clock.epochs));
  s.per_epoch_ = clock.steps_per_epoch;
  s.total_ = clock.steps_per_epoch * clock.epochs;
  s.decay_every_ = clock.steps_per_epoch * spec.step_epochs();
  // Capped so that a huge warmup_epochs cannot overflow the conversion; a warm-up longer than the job is allowed.
  const double w =
      std::min(static_cast<double>(spec.warmup_epochs()) * static_cast<double>(clock.steps_per_epoch), 1e18);
  s.warmup_ = std::llround(w);
  return s;
}

double LrSchedule::AtDouble(int64_t step) const {
  if (constant_) return lr_;
  const int64_t t = std::clamp<int64_t>(step - 1 + offset_, 0, total_ - 1);
  double rate = lr_;
  switch (schedule_) {
    case proto::OptimizerSpec::CONSTANT:
      break;
    case proto::OptimizerSpec::STEP:
      rate = lr_ * std::pow(gamma_, static_cast<double>(t / decay_every_));
      break;
    case proto::OptimizerSpec::COSINE:
      rate = min_lr_ + (lr_ - min_lr_) *
                           (1.0 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(total_))) /
                           2.0;
      break;
  }
  if (t < warmup_) rate = rate * static_cast<double>(t + 1) / static_cast<double>(warmup_);
  return rate;
}

float LrSchedule::At(int64_t step) const { return static_cast<float>(AtDouble(step)); }

std::string LrSchedule::ToString() const {
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.7g", v);
    return std::string(buf);
  };
  std::string s;
  switch (schedule_) {
    case proto::OptimizerSpec::CONSTANT:
      s = "constant " + num(lr_);
      break;
    case proto::OptimizerSpec::STEP:
      s = "STEP from " + num(lr_) + ", times " + num(gamma_) + " every " + std::to_string(decay_every_) + " steps";
      break;
    case proto::OptimizerSpec::COSINE:
      s = "COSINE from " + num(lr_) + " to " + num(min_lr_);
      break;
  }
  if (constant_) return s;
  s += " over " + std::to_string(total_) + " steps (" + std::to_string(per_epoch_) + " per epoch)";
  if (warmup_ > 0) s += ", warm-up " + std::to_string(warmup_) + " steps";
  if (offset_ != 0) s += ", step offset " + std::to_string(offset_);
  return s;
}

}  // namespace tessera
