#include "scheduler/eval_figures.h"

namespace tessera {

void AddTaskMetricsJson(const EvalFigures& figures, const std::vector<std::string>& class_names, JsonObject* out) {
  if (figures.classification.has_value()) {
    JsonObject classes;
    AddJsonFields(*figures.classification, class_names, &classes).IgnoreError();  // names checked in PlanJob
    out->Add("classification", classes);
  }
  if (figures.binary.has_value()) {
    JsonObject binary;
    AddJsonFields(*figures.binary, &binary);
    out->Add("binary", binary);
  }
  if (figures.regression.has_value()) {
    JsonObject regression;
    AddJsonFields(*figures.regression, &regression);
    out->Add("regression", regression);
  }
}

}  // namespace tessera
