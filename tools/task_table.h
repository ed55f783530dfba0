// The test set's metrics of a binary or regression job, as `tessera train`
// prints them when the job ends, from summary.json's "binary" or
// "regression" object (the multi-class table is tools/class_table.h).
#ifndef TESSERA_TOOLS_TASK_TABLE_H_
#define TESSERA_TOOLS_TASK_TABLE_H_

#include <string>

namespace tessera {

// Binary: examples (positives, negatives), AUC ("undefined" with one class
// only), log loss, accuracy at 0.5, a line each. Regression: examples, RMSE,
// MAE, R² ("undefined" for constant targets). "" when `summary_json` has
// neither object, or one that is not usable.
std::string TaskTable(const std::string& summary_json);

// The summary line's figures of the test set: "test accuracy 0.8812" for a
// multi-class job, "test AUC 0.9712, accuracy 0.9134" for a binary one,
// "test RMSE 0.5123, R² 0.9321" for a regression.
std::string TestFiguresText(const std::string& summary_json);

}  // namespace tessera

#endif  // TESSERA_TOOLS_TASK_TABLE_H_
