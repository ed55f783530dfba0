#include "scheduler/early_stopping.h"

#include <cmath>
#include <limits>

namespace tessera {

using Metric = proto::EarlyStoppingSpec;

EarlyStopping::EarlyStopping(const proto::EarlyStoppingSpec& spec) : spec_(spec) {}

std::string EarlyStopping::metric_name() const {
  switch (spec_.metric()) {
    case Metric::VALIDATION_ACCURACY: return "validation_accuracy";
    case Metric::VALIDATION_MACRO_F1: return "validation_macro_f1";
    default: return "validation_loss";
  }
}

double EarlyStopping::MetricOf(double loss, double accuracy, std::optional<double> macro_f1) const {
  switch (spec_.metric()) {
    case Metric::VALIDATION_ACCURACY: return accuracy;
    case Metric::VALIDATION_MACRO_F1: return macro_f1.value_or(std::numeric_limits<double>::quiet_NaN());
    default: return loss;
  }
}

bool EarlyStopping::Beats(double value) const {
  if (std::isnan(value)) return false;
  if (!has_best()) return true;
  const double delta = spec_.min_delta();
  return spec_.metric() == Metric::VALIDATION_LOSS ? value < best_.value - delta : value > best_.value + delta;
}

bool EarlyStopping::Observe(int epoch, int64_t step, double value) {
  if (!Beats(value)) {
    ++best_.evaluations_without_improvement;
    return false;
  }
  best_.epoch = epoch;
  best_.step = step;
  best_.value = value;
  best_.evaluations_without_improvement = 0;
  return true;
}

bool EarlyStopping::ShouldStop() const {
  return spec_.patience() > 0 && best_.evaluations_without_improvement >= spec_.patience();
}

}  // namespace tessera
