// The README's demo: examples/fmnist-mlp.pbtxt as shipped (2 servers,
// 2 workers, 10 epochs over all of Fashion-MNIST) reaches test accuracy 0.88.
#include <gtest/gtest.h>

#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

TEST(DemoTest, FashionMnistMlpReachesTheTargetAccuracy) {
  if (!FileExists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed";
  }
  const std::string run = MakeTempDir("demo") + "/run";
  CommandResult r = RunTessera({"train", SourceDir() + "/examples/fmnist-mlp.pbtxt", "--run-dir", run}, 900);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto summary = ReadFileToString(run + "/summary.json");
  ASSERT_TRUE(summary.ok());
  const double accuracy = JsonNumber(*summary, "test_accuracy");
  EXPECT_GE(accuracy, 0.88) << *summary;
  EXPECT_EQ(JsonNumber(*summary, "epochs"), 10);
  EXPECT_EQ(JsonNumber(*summary, "examples_per_epoch"), 60000);
  // The launcher prints the same figure.
  char printed[64];
  std::snprintf(printed, sizeof(printed), "done: test accuracy %.4f", accuracy);
  EXPECT_NE(r.output.find(printed), std::string::npos) << r.output;
  std::cout << "demo: test accuracy " << accuracy << ", " << JsonNumber(*summary, "samples_per_sec")
            << " samples/s" << std::endl;
}

}  // namespace
}  // namespace tessera
