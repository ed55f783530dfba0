// The table of figures per class `tessera train` prints at the end.
#include "tools/class_table.h"

#include <gtest/gtest.h>

#include "core/json.h"
#include "core/task_metrics.h"

namespace tessera {
namespace {

std::string SummaryWith(const ClassificationResult& result, const std::vector<std::string>& names) {
  JsonObject classes;
  EXPECT_TRUE(AddJsonFields(result, names, &classes).ok());
  JsonObject summary;
  summary.Add("test_accuracy", result.accuracy).Add("classification", classes);
  return summary.ToPrettyString();
}

TEST(ClassTableTest, OneLinePerClassInClassOrderThenTheMacroF1) {
  ClassificationMetrics m(3);
  // zebra: 2 right; ant: 1 right, 1 called zebra; moth: 1 called ant.
  for (auto [t, p] : {std::pair{0, 0}, {0, 0}, {1, 1}, {1, 0}, {2, 1}}) ASSERT_TRUE(m.Add(t, p).ok());
  const std::string table = ClassTable(SummaryWith(m.Result(), {"zebra", "ant", "moth"}));
  // zebra: precision 2/3, recall 1, F1 0.8; ant: 1/2, 1/2, 0.5; moth: 0, 0, 0.
  // Macro F1 over the classes that occur: (0.8 + 0.5 + 0) / 3.
  EXPECT_EQ(table,
            "class  precision  recall  f1      support\n"
            "zebra  0.6667     1.0000  0.8000  2\n"
            "ant    0.5000     0.5000  0.5000  2\n"
            "moth   0.0000     0.0000  0.0000  1\n"
            "macro F1 0.4333\n");
}

TEST(ClassTableTest, NothingWithoutUsableFiguresPerClass) {
  EXPECT_EQ(ClassTable("{\"test_accuracy\": 0.5}"), "");
  EXPECT_EQ(ClassTable("not json"), "");
  EXPECT_EQ(ClassTable("{\"classification\": {\"per_class\": 3, \"macro_f1\": 0.5}}"), "");
  EXPECT_EQ(ClassTable("{\"classification\": {\"per_class\": {\"a\": 1}, \"macro_f1\": 0.5}}"), "");
  EXPECT_EQ(ClassTable(""), "");
}

}  // namespace
}  // namespace tessera
