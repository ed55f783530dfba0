// The scheduler's pure parts, in one process: the job's shape from its spec
// and data files (PlanJob), and where a resumed job starts (LoadResumePoint).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/dataset.h"
#include "core/file_util.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "scheduler/job_shape.h"
#include "scheduler/resume_point.h"
#include "tests/checkpoint_fixture.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A spec of a 2-layer MLP over the data in `dir`.
proto::JobSpec Spec(const std::string& dir) {
  auto spec = ParseJobSpec(R"pb(
    model {
      layer { linear { out_features: 8 } }
      layer { relu {} }
      layer { linear { out_features: 10 } }
    }
    data { dir: ")pb" + dir + R"pb(" }
    cluster { servers: 2 workers: 2 }
    epochs: 3
  )pb",
                           "test spec");
  EXPECT_OK(spec.status());
  return spec.ok() ? *spec : proto::JobSpec();
}

class JobShapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("shape");
    WriteTinyImageData(dir_, 100, 30);
  }
  std::string dir_;
};

TEST_F(JobShapeTest, CountsTheExamplesAndLaysTheModelOverTheServers) {
  for (int servers : {1, 2, 3}) {
    proto::JobSpec spec = Spec(dir_);
    spec.mutable_cluster()->set_servers(servers);
    auto shape = PlanJob(spec);
    ASSERT_OK(shape.status());
    EXPECT_EQ(shape->train_examples, 100);
    EXPECT_EQ(shape->test_examples, 30);
    // 16 -> 8 -> 10: two weights and two biases, back to back in key order.
    ASSERT_EQ(shape->tensors.size(), 4u);
    EXPECT_EQ(shape->num_keys, 16u * 8 + 8 + 8 * 10 + 10);
    uint64_t offset = 0;
    for (const proto::TensorMeta& t : shape->tensors) {
      EXPECT_EQ(t.offset(), offset) << t.name();
      offset += t.size();
    }
    EXPECT_EQ(offset, shape->num_keys);
    // Every key on exactly one server.
    ASSERT_EQ(shape->server_ranges.size(), static_cast<size_t>(servers));
    uint64_t keys = 0;
    for (const auto& ranges : shape->server_ranges) {
      for (const KeyRange& r : ranges) keys += r.end - r.begin;
    }
    EXPECT_EQ(keys, shape->num_keys) << servers << " servers";
  }
}

TEST_F(JobShapeTest, MaxExamplesCutTheCounts) {
  proto::JobSpec spec = Spec(dir_);
  spec.mutable_data()->set_max_train_examples(40);
  spec.mutable_data()->set_max_test_examples(1000);
  auto shape = PlanJob(spec);
  ASSERT_OK(shape.status());
  EXPECT_EQ(shape->train_examples, 40);
  EXPECT_EQ(shape->test_examples, 30);  // more than there are: all of them
}

TEST_F(JobShapeTest, ABadSpecOrMissingDataIsRefused) {
  proto::JobSpec spec = Spec(dir_);
  spec.set_batch_size(0);
  EXPECT_EQ(PlanJob(spec).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove(dir_ + "/t10k-labels-idx1-ubyte.gz");
  const Status missing = PlanJob(Spec(dir_)).status();
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.message(), "t10k-labels-idx1-ubyte.gz")) << missing.ToString();
}

// ------------------------------------------------------------ resume point

class ResumePointTest : public JobShapeTest {
 protected:
  void SetUp() override {
    JobShapeTest::SetUp();
    spec_ = Spec(dir_);
    auto shape = PlanJob(spec_);
    ASSERT_OK(shape.status());
    shape_ = *shape;
  }
  proto::JobSpec spec_;
  JobShape shape_;
};

TEST_F(ResumePointTest, AnEpochEndResumesAtTheNextEpochWithWhatTheServersLoad) {
  const std::string checkpoint = WriteCheckpoint(dir_ + "/run", spec_, shape_, 50, 2, 0);
  auto point = LoadResumePoint(checkpoint, spec_, shape_);
  ASSERT_OK(point.status());
  EXPECT_EQ(point->start_epoch, 2);
  EXPECT_EQ(point->skip_steps, 0);
  EXPECT_FALSE(point->evaluate_only);
  EXPECT_EQ(point->step, 50);
  EXPECT_EQ(point->restore.dir(), std::filesystem::path(checkpoint).lexically_normal().string());
  EXPECT_EQ(point->restore.step(), 50);
  ASSERT_EQ(point->restore.parts_size(), 1);
  EXPECT_EQ(point->restore.parts(0).dir(), "server-0");
}

TEST_F(ResumePointTest, TheServersGetAnAbsolutePath) {
  WriteCheckpoint(dir_ + "/run", spec_, shape_, 50, 2, 0);
  const std::filesystem::path before = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  auto point = LoadResumePoint("run/checkpoints/" + CheckpointName(50), spec_, shape_);
  std::filesystem::current_path(before);
  ASSERT_OK(point.status());
  EXPECT_EQ(point->restore.dir(),
            std::filesystem::path(dir_ + "/run/checkpoints/" + CheckpointName(50)).lexically_normal().string());
}

TEST_F(ResumePointTest, AfterTheLastEpochOnlyTheEvaluationIsLeft) {
  auto point = LoadResumePoint(WriteCheckpoint(dir_ + "/run", spec_, shape_, 75, 3, 0), spec_, shape_);
  ASSERT_OK(point.status());
  EXPECT_TRUE(point->evaluate_only);
  auto beyond = LoadResumePoint(WriteCheckpoint(dir_ + "/late", spec_, shape_, 80, 3, 5), spec_, shape_);
  EXPECT_EQ(beyond.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(beyond.status().message(), "resume with --epochs > 3")) << beyond.status().ToString();
}

TEST_F(ResumePointTest, AnotherModelSeedOrOptimizerIsRefusedByName) {
  const std::string checkpoint = WriteCheckpoint(dir_ + "/run", spec_, shape_, 50, 2, 0);
  proto::JobSpec wider = spec_;
  wider.mutable_model()->mutable_layer(0)->mutable_linear()->set_out_features(9);
  auto wider_shape = PlanJob(wider);
  ASSERT_OK(wider_shape.status());
  auto model = LoadResumePoint(checkpoint, wider, *wider_shape);
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(model.status().message(), "parameters; the spec's has")) << model.status().ToString();

  proto::JobSpec seed = spec_;
  seed.set_seed(7);
  auto seeded = LoadResumePoint(checkpoint, seed, shape_);
  EXPECT_EQ(seeded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(seeded.status().message(), "trained with seed 1; the spec says 7")) << seeded.status().ToString();

  proto::JobSpec adam = spec_;
  adam.mutable_optimizer()->set_type(proto::OptimizerSpec::ADAM);
  auto optimizer = LoadResumePoint(checkpoint, adam, shape_);
  EXPECT_EQ(optimizer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(optimizer.status().message(), "the spec asks for ADAM")) << optimizer.status().ToString();
}

TEST_F(ResumePointTest, ACutInsideAnEpochNeedsItsWorkersAndBatchUnderBsp) {
  const std::string checkpoint = WriteCheckpoint(dir_ + "/run", spec_, shape_, 30, 1, 5);
  auto same = LoadResumePoint(checkpoint, spec_, shape_);
  ASSERT_OK(same.status());
  EXPECT_EQ(same->start_epoch, 1);
  EXPECT_EQ(same->skip_steps, 5);
  proto::JobSpec more_workers = spec_, other_batch = spec_, asp = spec_;
  more_workers.mutable_cluster()->set_workers(3);
  other_batch.set_batch_size(32);
  asp.set_consistency(proto::ASP);
  for (const proto::JobSpec& other : {more_workers, other_batch, asp}) {
    auto refused = LoadResumePoint(checkpoint, other, shape_);
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << other.ShortDebugString();
    EXPECT_TRUE(Contains(refused.status().message(), "was cut inside epoch 2")) << refused.status().ToString();
  }
}

// A cut inside an epoch keeps each worker's loss sums before it; a manifest
// written before they were kept still resumes, without them.
TEST_F(ResumePointTest, ACutInsideAnEpochGivesTheWorkersLossSumsBeforeItWhenItKeptThem) {
  const std::vector<LossSums> kept = {{12.5, 40}, {0.1 + 0.2, 40}};
  auto point = LoadResumePoint(WriteCheckpoint(dir_ + "/run", spec_, shape_, 30, 1, 5, kept), spec_, shape_);
  ASSERT_OK(point.status());
  EXPECT_EQ(point->skip_steps, 5);
  EXPECT_EQ(point->loss_before_cut, kept);

  auto old = LoadResumePoint(WriteCheckpoint(dir_ + "/old", spec_, shape_, 30, 1, 5), spec_, shape_);
  ASSERT_OK(old.status());
  EXPECT_EQ(old->skip_steps, 5);
  EXPECT_TRUE(old->loss_before_cut.empty());

  auto wrong = LoadResumePoint(WriteCheckpoint(dir_ + "/wrong", spec_, shape_, 30, 1, 5, {{1, 8}}), spec_, shape_);
  EXPECT_EQ(wrong.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(wrong.status().message(), "holds the loss sums of 1 workers; it was cut with 2"))
      << wrong.status().ToString();
}

TEST_F(ResumePointTest, AMissingOrDamagedCheckpointIsNotResumed) {
  EXPECT_FALSE(LoadResumePoint(dir_ + "/nowhere", spec_, shape_).ok());
  const std::string checkpoint = WriteCheckpoint(dir_ + "/run", spec_, shape_, 50, 2, 0);
  ASSERT_OK(WriteFileAtomic(checkpoint + "/server-0/000001.sst", "the part's bytez"));
  auto damaged = LoadResumePoint(checkpoint, spec_, shape_);
  EXPECT_EQ(damaged.status().code(), StatusCode::kDataLoss) << damaged.status().ToString();
}

}  // namespace
}  // namespace tessera
