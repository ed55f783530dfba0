// What `tessera train` shows of a binary or regression job: the table at the
// end (tools/task_table.h), the summary line's figures, and the progress
// lines of its evaluations (tools/progress_view.h), from the JSON the
// scheduler writes.
#include "tools/task_table.h"

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

constexpr char kBinarySummary[] =
    R"({"test_accuracy": 0.91, "binary": {"examples": 1000, "positives": 300, "negatives": 700, "auc": 0.97125,)"
    R"( "log_loss": 0.2, "accuracy": 0.91}})";
constexpr char kRegressionSummary[] =
    R"({"test_accuracy": 0, "regression": {"examples": 50, "rmse": 0.5, "mae": 0.25, "r2": null}})";

TEST(TaskTableTest, BinaryFigures) {
  EXPECT_EQ(TaskTable(kBinarySummary),
            "test examples  1000 (300 positive, 700 negative)\n"
            "AUC            0.9712\n"
            "log loss       0.2000\n"
            "accuracy       0.9100 (p > 0.5)\n");
  EXPECT_EQ(TestFiguresText(kBinarySummary), "test AUC 0.9712, accuracy 0.9100");
}

TEST(TaskTableTest, RegressionFiguresWithAnUndefinedR2) {
  EXPECT_EQ(TaskTable(kRegressionSummary),
            "test examples  50\n"
            "RMSE           0.5000\n"
            "MAE            0.2500\n"
            "R²             undefined\n");
  EXPECT_EQ(TestFiguresText(kRegressionSummary), "test RMSE 0.5000, R² undefined");
}

TEST(TaskTableTest, MultiClassAndBrokenSummaries) {
  EXPECT_EQ(TaskTable(R"({"test_accuracy": 0.8812, "classification": {}})"), "");
  EXPECT_EQ(TestFiguresText(R"({"test_accuracy": 0.8812})"), "test accuracy 0.8812");
  EXPECT_EQ(TaskTable("{not json"), "");
  EXPECT_EQ(TaskTable(R"({"binary": 3})"), "");
}

// The progress lines of evaluations show the task's figures.
TEST(TaskTableTest, ProgressLinesShowTheTasksFigures) {
  const std::string dir = MakeTempDir("task-progress");
  WriteText(dir + "/metrics.jsonl",
            R"({"event": "eval", "set": "test", "epoch": 1, "epochs": 2, "test_accuracy": 0.9, "test_loss": 0.25, )"
            R"("binary": {"examples": 10, "positives": 5, "negatives": 5, "auc": 0.96, "log_loss": 0.25, "accuracy": 0.9}})"
            "\n"
            R"({"event": "eval", "set": "validation", "epoch": 2, "epochs": 2, "validation_accuracy": 0, )"
            R"("validation_loss": 0.5, "regression": {"examples": 10, "rmse": 0.7071, "mae": 0.5, "r2": null}, )"
            R"("metric": "validation_rmse", "improved": true, "stop": false})"
            "\n"
            R"({"event": "eval", "set": "test", "epoch": 2, "epochs": 2, "test_accuracy": 0.875, "test_loss": 0.4})"
            "\n");
  char* text = nullptr;
  size_t size = 0;
  FILE* out = open_memstream(&text, &size);
  ASSERT_NE(out, nullptr);
  {
    ProgressView view(dir + "/metrics.jsonl", ProgressMode::kPlain, out);
    view.Update();
  }
  std::fclose(out);
  const std::string shown(text, size);
  std::free(text);
  EXPECT_EQ(shown,
            "epoch 1/2 test AUC 0.9600, accuracy 0.9000, test loss 0.2500\n"
            "epoch 2/2 validation RMSE 0.7071, R² -, validation loss 0.5000 (best so far)\n"
            "epoch 2/2 test accuracy 0.8750, test loss 0.4000\n");
}

}  // namespace
}  // namespace tessera
