#include "server/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/spec.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// 10 steps an epoch, 3 epochs: T = 30 updates, steps 1..30.
constexpr ScheduleClock kClock{/*steps_per_epoch=*/10, /*epochs=*/3, /*step_offset=*/0};

// learning_rate 0.5, exact in binary, so the hand values below are exact too.
proto::OptimizerSpec Spec(proto::OptimizerSpec::Schedule schedule) {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.5f);
  spec.set_schedule(schedule);
  return spec;
}

LrSchedule Make(const proto::OptimizerSpec& spec, const ScheduleClock& clock = kClock) {
  auto s = LrSchedule::Create(spec, clock);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

// The rate of `step` in double, and rounded to float as the optimizers use it.
void ExpectRate(const LrSchedule& s, int64_t step, double want) {
  EXPECT_NEAR(s.AtDouble(step), want, 1e-15) << "step " << step;
  EXPECT_EQ(s.At(step), static_cast<float>(s.AtDouble(step))) << "step " << step;
}

TEST(LrScheduleTest, ConstantIsTheLearningRateBitwise) {
  proto::OptimizerSpec spec;
  spec.set_learning_rate(0.01f);  // not exact in binary: the float must come back unchanged
  for (const ScheduleClock& clock : {ScheduleClock{}, kClock}) {
    LrSchedule s = Make(spec, clock);
    EXPECT_TRUE(s.constant());
    for (int64_t step : {1, 2, 10, 30, 31, 1000000}) EXPECT_EQ(s.At(step), 0.01f) << "step " << step;
  }
}

TEST(LrScheduleTest, StepDecaysAtEpochBoundaries) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(1);
  spec.set_gamma(0.5f);
  LrSchedule s = Make(spec);
  EXPECT_FALSE(s.constant());
  ExpectRate(s, 1, 0.5);
  ExpectRate(s, 10, 0.5);   // the last update of epoch 1
  ExpectRate(s, 11, 0.25);  // the first of epoch 2
  ExpectRate(s, 20, 0.25);
  ExpectRate(s, 21, 0.125);
  ExpectRate(s, 30, 0.125);
}

// Re-anchored after a longer epoch (a lost worker's continuation: epoch 1
// took 13 steps), the decay comes at epoch 2's first step, 14, not at 11.
TEST(LrScheduleTest, WithStepOffsetReanchorsTheEpochs) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(1);
  spec.set_gamma(0.5f);
  const LrSchedule s = Make(spec);
  const LrSchedule shifted = s.WithStepOffset(10 - 13);
  EXPECT_EQ(shifted.step_offset(), -3);
  ExpectRate(shifted, 13, 0.5);
  ExpectRate(shifted, 14, 0.25);
  ExpectRate(shifted, 23, 0.25);
  ExpectRate(shifted, 24, 0.125);
  ExpectRate(s, 11, 0.25);  // the original is unchanged
}

TEST(LrScheduleTest, StepEveryTwoEpochs) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(2);  // gamma 0.1 by default
  LrSchedule s = Make(spec);
  ExpectRate(s, 11, 0.5);
  ExpectRate(s, 20, 0.5);
  ExpectRate(s, 21, 0.5 * static_cast<double>(0.1f));
  ExpectRate(s, 30, 0.5 * static_cast<double>(0.1f));
}

TEST(LrScheduleTest, CosineOverTheWholeJob) {
  LrSchedule s = Make(Spec(proto::OptimizerSpec::COSINE));
  // 0.5 * (1 + cos(pi * t / 30)) / 2 at t = step - 1.
  ExpectRate(s, 1, 0.5);
  ExpectRate(s, 11, 0.375);                             // cos(pi/3) = 1/2
  ExpectRate(s, 16, 0.25);                              // cos(pi/2) = 0
  ExpectRate(s, 21, 0.125);                             // cos(2pi/3) = -1/2
  ExpectRate(s, 30, 0.25 * (1 - 0.99452189536827329));  // cos(29pi/30) = -cos(pi/30): just above 0
  // Past the end (not reached in a job) the last rate holds; before the start, the first.
  ExpectRate(s, 31, s.AtDouble(30));
  ExpectRate(s, 0, 0.5);
}

TEST(LrScheduleTest, CosineToAMinimum) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::COSINE);
  spec.set_min_learning_rate(0.125f);
  LrSchedule s = Make(spec);
  ExpectRate(s, 1, 0.5);
  ExpectRate(s, 11, 0.125 + 0.375 * 0.75);
  ExpectRate(s, 16, 0.3125);
  ExpectRate(s, 21, 0.125 + 0.375 * 0.25);
}

TEST(LrScheduleTest, WarmupThenCosine) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::COSINE);
  spec.set_warmup_epochs(1);  // W = 10 updates
  LrSchedule s = Make(spec);
  ExpectRate(s, 1, 0.5 * 1 / 10);                            // cos(0) = 1, warm-up 1/10
  ExpectRate(s, 5, 0.25 * (1 + 0.91354545764260087) * 0.5);  // cos(24 deg), warm-up 5/10
  ExpectRate(s, 10, 0.25 * (1 + 0.58778525229247314));       // cos(54 deg), warm-up 10/10
  ExpectRate(s, 11, 0.375);                                  // warm-up over: the cosine alone
  ExpectRate(s, 16, 0.25);
}

TEST(LrScheduleTest, WarmupRoundsToWholeSteps) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::CONSTANT);
  spec.set_warmup_epochs(0.25f);  // 2.5 steps, rounded to 3
  LrSchedule s = Make(spec);
  EXPECT_FALSE(s.constant());
  ExpectRate(s, 1, 0.5 / 3);
  ExpectRate(s, 2, 0.5 * 2 / 3);
  ExpectRate(s, 3, 0.5);
  ExpectRate(s, 4, 0.5);
  ExpectRate(s, 30, 0.5);
}

TEST(LrScheduleTest, WarmupScalesTheStepSchedule) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(1);
  spec.set_gamma(0.5f);
  spec.set_warmup_epochs(1.5f);  // W = 15: reaches into epoch 2, whose rate it ramps toward
  LrSchedule s = Make(spec);
  ExpectRate(s, 10, 0.5 * 10 / 15);
  ExpectRate(s, 12, 0.25 * 12 / 15);
  ExpectRate(s, 15, 0.25);
  ExpectRate(s, 16, 0.25);
  ExpectRate(s, 21, 0.125);
}

TEST(LrScheduleTest, OffsetMovesTheSteps) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);
  spec.set_step_epochs(1);
  spec.set_gamma(0.5f);
  // Resumed after one epoch of 5 steps, now 10 an epoch: step 6 is update 10 (epoch 2's first).
  LrSchedule s = Make(spec, {/*steps_per_epoch=*/10, /*epochs=*/3, /*step_offset=*/10 - 5});
  ExpectRate(s, 6, 0.25);
  ExpectRate(s, 5, 0.5);
  ExpectRate(s, 16, 0.125);
}

TEST(LrScheduleTest, SchedulesNeedTheClock) {
  struct Case {
    proto::OptimizerSpec spec;
    ScheduleClock clock;
    std::string field;
  };
  proto::OptimizerSpec warm = Spec(proto::OptimizerSpec::CONSTANT);
  warm.set_warmup_epochs(1);
  proto::OptimizerSpec step = Spec(proto::OptimizerSpec::STEP);
  step.set_step_epochs(1);
  const Case cases[] = {
      {Spec(proto::OptimizerSpec::COSINE), {}, "optimizer.schedule COSINE needs the job's steps per epoch, got 0"},
      {Spec(proto::OptimizerSpec::COSINE), {10, 0, 0}, "optimizer.schedule COSINE needs the job's epochs, got 0"},
      {step, {0, 3, 0}, "optimizer.schedule STEP needs the job's steps per epoch"},
      {warm, {}, "optimizer.warmup_epochs needs the job's steps per epoch"},
  };
  for (const Case& c : cases) {
    auto s = LrSchedule::Create(c.spec, c.clock);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.status().message(), HasSubstr(c.field));
  }
}

TEST(LrScheduleTest, CreateValidatesTheSpec) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::STEP);  // step_epochs missing
  auto s = LrSchedule::Create(spec, kClock);
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("optimizer.step_epochs"));
}

TEST(LrScheduleTest, ToStringForTheLog) {
  proto::OptimizerSpec spec = Spec(proto::OptimizerSpec::COSINE);
  spec.set_warmup_epochs(0.5f);
  EXPECT_EQ(Make(spec).ToString(), "COSINE from 0.5 to 0 over 30 steps (10 per epoch), warm-up 5 steps");
  EXPECT_EQ(Make(Spec(proto::OptimizerSpec::CONSTANT), {}).ToString(), "constant 0.5");
}

// Whole jobs: the scheduler's steps per epoch reach the servers, and the
// schedule counts them exactly. A STEP decay by gamma = 1e-30 stops training
// dead (the updates fall below half an ulp of every weight), so a 2-epoch job
// must end with the bits a 1-epoch job ends with, if and only if the decay
// lands exactly on the epoch boundary.
class LrScheduleJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FileExists(kFashionMnist))
      GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
    dir_ = MakeTempDir("lr-schedule");
  }

  static constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

  // The example MLP with `optimizer` merged into its optimizer, written to DIR/NAME.pbtxt.
  std::string WriteSpec(const std::string& name, const std::string& optimizer) {
    auto spec = LoadJobSpec(SourceDir() + "/examples/fmnist-mlp.pbtxt");
    EXPECT_TRUE(spec.ok()) << spec.status().ToString();
    auto extra = ParseJobSpec("optimizer { " + optimizer + " }", name);
    EXPECT_TRUE(extra.ok()) << extra.status().ToString();
    spec->MergeFrom(*extra);
    const std::string path = dir_ + "/" + name + ".pbtxt";
    std::ofstream(path) << JobSpecToText(*spec);
    return path;
  }

  // Trains SPEC on 3000 examples (3000 / 8 shards of 375: 6 steps a shard, 24 an epoch with 2 workers);
  // returns the summary on one line.
  std::string Train(const std::string& spec, const std::string& run, const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"train", spec, "--run-dir", dir_ + "/" + run, "--servers", "2", "--workers", "2"};
    args.insert(args.end(), {"--max-train-examples", "3000", "--max-test-examples", "500", "--threads", "1"});
    args.insert(args.end(), flags.begin(), flags.end());
    return Run(args, run);
  }

  std::string Run(const std::vector<std::string>& args, const std::string& run) {
    CommandResult r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    auto text = ReadFileToString(dir_ + "/" + run + "/summary.json");
    EXPECT_TRUE(text.ok()) << text.status().ToString();
    std::string summary = text.ok() ? *text : "";
    std::replace(summary.begin(), summary.end(), '\n', ' ');
    return summary;
  }

  std::string ServerLog(const std::string& run) {
    auto text = ReadFileToString(dir_ + "/" + run + "/logs/server-0.log");
    return text.ok() ? *text : "";
  }

  std::string dir_;
};

TEST_F(LrScheduleJobTest, StepDecayLandsOnTheEpochBoundary) {
  const std::string one = Train(WriteSpec("one", "warmup_epochs: 0.5"), "one", {"--epochs", "1"});
  const std::string two = Train(WriteSpec("two", "warmup_epochs: 0.5 schedule: STEP step_epochs: 1 gamma: 1e-30"),
                                "two", {"--epochs", "2"});
  EXPECT_EQ(JsonNumber(two, "steps"), 48) << two;
  EXPECT_FALSE(JsonString(one, "params_sha256").empty()) << one;
  EXPECT_EQ(JsonString(one, "params_sha256"), JsonString(two, "params_sha256"));
  EXPECT_GT(JsonNumber(two, "test_accuracy"), 0.6) << two;
  EXPECT_THAT(ServerLog("two"), HasSubstr("learning rate: STEP from 0.02, times 1e-30 every 24 steps over 48 steps "
                                          "(24 per epoch), warm-up 12 steps"));
}

TEST_F(LrScheduleJobTest, ResumeWithOtherWorkersGoesOnFromTheEpoch) {
  // 1 epoch on 2 workers (24 steps), then epoch 2 on 1 worker (48 steps an epoch): its rate is the decayed one
  // only if the schedule counts the resumed steps from the epoch, not from step 24.
  const std::string first =
      Train(WriteSpec("first", "schedule: STEP step_epochs: 1 gamma: 1e-30"), "run", {"--epochs", "1"});
  const std::string resumed =
      Run({"resume", dir_ + "/run", "--epochs", "2", "--workers", "1", "--threads", "1"}, "run");
  EXPECT_EQ(JsonNumber(resumed, "steps"), 24 + 48) << resumed;
  EXPECT_EQ(JsonNumber(resumed, "resumed_from_step"), 24) << resumed;
  EXPECT_FALSE(JsonString(first, "params_sha256").empty()) << first;
  EXPECT_EQ(JsonString(first, "params_sha256"), JsonString(resumed, "params_sha256"));
  EXPECT_THAT(ServerLog("run"), HasSubstr("(48 per epoch), step offset 24"));
}

TEST_F(LrScheduleJobTest, AspCountsPushesAndCosineTrains) {
  const std::string s =
      Train(WriteSpec("asp", "schedule: COSINE warmup_epochs: 0.25"), "asp", {"--epochs", "2", "--consistency", "asp"});
  EXPECT_GT(JsonNumber(s, "test_accuracy"), 0.6) << s;
  // Under ASP every push is an update: 8 shards of 6 batches an epoch, whichever worker takes them.
  EXPECT_THAT(ServerLog("asp"),
              HasSubstr("learning rate: COSINE from 0.02 to 0 over 96 steps (48 per epoch), warm-up 12 steps"));
}

}  // namespace
}  // namespace tessera
