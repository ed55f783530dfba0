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
    case Metric::VALIDATION_AUC: return "validation_auc";
    case Metric::VALIDATION_LOG_LOSS: return "validation_log_loss";
    case Metric::VALIDATION_RMSE: return "validation_rmse";
    case Metric::VALIDATION_MAE: return "validation_mae";
    default: return "validation_loss";
  }
}

bool EarlyStopping::lower_is_better() const {
  switch (spec_.metric()) {
    case Metric::VALIDATION_LOSS:
    case Metric::VALIDATION_LOG_LOSS:
    case Metric::VALIDATION_RMSE:
    case Metric::VALIDATION_MAE: return true;
    default: return false;
  }
}

double EarlyStopping::MetricOf(const EvalFigures& f) const {
  constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  switch (spec_.metric()) {
    case Metric::VALIDATION_AUC: return f.binary.has_value() && f.binary->auc_defined ? f.binary->auc : kUnknown;
    case Metric::VALIDATION_LOG_LOSS: return f.binary.has_value() ? f.binary->log_loss : kUnknown;
    case Metric::VALIDATION_RMSE: return f.regression.has_value() ? f.regression->rmse : kUnknown;
    case Metric::VALIDATION_MAE: return f.regression.has_value() ? f.regression->mae : kUnknown;
    default:
      return MetricOf(f.loss, f.accuracy,
                      f.classification.has_value() ? std::optional<double>(f.classification->macro_f1) : std::nullopt);
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
  return lower_is_better() ? value < best_.value - delta : value > best_.value + delta;
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
