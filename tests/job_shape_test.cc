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
#include "core/image_folder_data.h"
#include "core/sha256.h"
#include "core/spec.h"
#include "scheduler/job_shape.h"
#include "scheduler/resume_point.h"
#include "tests/checkpoint_fixture.h"
#include "tests/image_files.h"
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

TEST_F(JobShapeTest, AValidationFractionHoldsOutItsShareOfTheTrainingExamples) {
  proto::JobSpec spec = Spec(dir_);
  spec.mutable_data()->set_validation_fraction(0.1f);
  auto shape = PlanJob(spec);
  ASSERT_OK(shape.status());
  EXPECT_EQ(shape->train_examples, 90);
  EXPECT_EQ(shape->validation_examples, 10);
  EXPECT_EQ(shape->test_examples, 30);
  const proto::ClusterMap map = MakeClusterMap(spec, *shape, {"a", "b"}, JobStart());
  EXPECT_EQ(map.train_examples(), 90);
  EXPECT_EQ(map.validation_examples(), 10);
  // Of what max_train_examples leaves.
  spec.mutable_data()->set_max_train_examples(40);
  shape = PlanJob(spec);
  ASSERT_OK(shape.status());
  EXPECT_EQ(shape->train_examples, 36);
  EXPECT_EQ(shape->validation_examples, 4);
  // A fraction that holds out no example is a mistake, said in one line.
  spec.mutable_data()->set_validation_fraction(0.01f);
  const Status none = PlanJob(spec).status();
  EXPECT_EQ(none.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(none.message(), "data.validation_fraction 0.01 of 40 training examples holds out none: raise it");
  EXPECT_EQ(PlanJob(Spec(dir_))->validation_examples, 0) << "no split asked for";
}

// An image folder job: the classes are the training folder's class folders,
// named so in the metrics, and the cluster map carries the listings' digests
// (not the listings) for the workers to compare theirs with.
TEST(ImageFolderJobShapeTest, TheClassesAreTheFoldersAndTheMapCarriesTheDigests) {
  const std::string dir = MakeTempDir("shape-images");
  const Image gray = testing_images::MakeImage(5, 7, 1, [](int y, int x, int) { return y * 30 + x; });
  for (const std::string name : {"train/shirt/1.png", "train/bag/1.png", "train/bag/2.png", "test/bag/3.png"}) {
    std::filesystem::create_directories(std::filesystem::path(dir + "/" + name).parent_path());
    testing_images::WriteBytes(dir + "/" + name, testing_images::EncodePng(gray));
  }
  proto::JobSpec spec = Spec(dir);
  spec.mutable_data()->set_format(proto::DataSpec::IMAGE_FOLDER);
  spec.mutable_data()->set_train_dir("train");
  spec.mutable_data()->set_test_dir(dir + "/test");  // absolute works too
  spec.mutable_data()->mutable_image()->set_width(4);
  spec.mutable_data()->mutable_image()->set_height(3);
  spec.mutable_data()->mutable_image()->set_channels(3);
  spec.mutable_model()->mutable_layer(2)->mutable_linear()->set_out_features(2);
  auto shape = PlanJob(spec);
  ASSERT_OK(shape.status());
  EXPECT_EQ(shape->train_examples, 3);
  EXPECT_EQ(shape->test_examples, 1);
  EXPECT_EQ(shape->num_classes, 2);
  EXPECT_EQ(shape->class_names, (std::vector<std::string>{"bag", "shirt"}));
  EXPECT_EQ(shape->tensors[0].shape(1), 3 * 3 * 4) << "examples of [channels, height, width]";
  const proto::ClusterMap map = MakeClusterMap(spec, *shape, {"tcp://a:1", "tcp://b:2"}, {});
  ASSERT_TRUE(map.has_image_folder());
  EXPECT_FALSE(map.has_table_data());
  EXPECT_EQ(map.image_folder().class_names_size(), 2);
  auto splits = ListImageFolders(spec.data());
  ASSERT_OK(splits.status());
  EXPECT_EQ(map.image_folder().train_digest(), ImageFolderDigest(splits->train));
  EXPECT_EQ(map.image_folder().test_digest(), ImageFolderDigest(splits->test));
  // A validation fraction holds out its share of the training folder's images.
  spec.mutable_data()->set_validation_fraction(0.4f);
  auto held_out = PlanJob(spec);
  ASSERT_OK(held_out.status());
  EXPECT_EQ(held_out->train_examples, 2);
  EXPECT_EQ(held_out->validation_examples, 1);
  spec.mutable_data()->set_validation_fraction(0);

  spec.mutable_data()->add_class_names("bag");
  spec.mutable_data()->add_class_names("shirt");
  ASSERT_OK(PlanJob(spec).status());
  spec.mutable_data()->set_class_names(1, "top");
  const Status other = PlanJob(spec).status();
  EXPECT_EQ(other.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(other.message(), "data.class_names (bag, top) must be the class folders of")) << other.ToString();
  spec.mutable_data()->clear_class_names();
  spec.mutable_model()->mutable_layer(2)->mutable_linear()->set_out_features(10);
  EXPECT_EQ(PlanJob(spec).status().code(), StatusCode::kInvalidArgument) << "10 outputs for 2 classes";
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

TEST_F(ResumePointTest, AnotherValidationSplitIsRefused) {
  const std::string checkpoint = WriteCheckpoint(dir_ + "/run", spec_, shape_, 50, 2, 0);
  proto::JobSpec split = spec_;
  split.mutable_data()->set_validation_fraction(0.2f);
  auto point = LoadResumePoint(checkpoint, split, shape_);
  EXPECT_EQ(point.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(point.status().message(), "another validation split")) << point.status().ToString();
}

// A resumed job with a validation split begins with what an uninterrupted
// one would have done next: the validation of the epoch the checkpoint ended
// when the run's history lacks it, the test set when early stopping had
// ended training, else training from the cursor.
TEST(FirstPhaseOfResumeTest, ValidationsMissingFromTheHistoryComeFirst) {
  proto::JobSpec spec;
  spec.set_epochs(5);
  spec.mutable_data()->set_validation_fraction(0.1f);
  ResumePoint point;
  point.start_epoch = 2;  // epochs 1 and 2 trained
  const auto first = [&](std::optional<int> validated, bool stop) {
    return FirstPhaseOfResume(point, spec, validated, stop);
  };
  NextPhase next = first(1, false);  // lost during epoch 2's validation
  EXPECT_EQ(next.kind, NextPhase::Kind::kEvaluation);
  EXPECT_TRUE(next.validation);
  EXPECT_EQ(next.epoch, 1);
  next = first(2, false);
  EXPECT_EQ(next.kind, NextPhase::Kind::kTraining);
  EXPECT_EQ(next.epoch, 2);
  next = first(2, true);  // early stopping had ended training: the test set
  EXPECT_EQ(next.kind, NextPhase::Kind::kEvaluation);
  EXPECT_FALSE(next.validation);
  EXPECT_EQ(next.epoch, 1);
  EXPECT_EQ(first(std::nullopt, false).kind, NextPhase::Kind::kTraining) << "no history: nothing to catch up";

  // Inside an epoch: its validation came before it.
  point.skip_steps = 7;
  next = first(1, false);
  EXPECT_EQ(next.kind, NextPhase::Kind::kTraining);
  EXPECT_EQ(next.skip_steps, 7);
  point.skip_steps = 0;

  // Training complete: the last epoch's validation if missing, then the test set.
  point.start_epoch = 5;
  point.evaluate_only = true;
  next = first(4, false);
  EXPECT_TRUE(next.validation);
  EXPECT_EQ(next.epoch, 4);
  next = first(5, false);
  EXPECT_EQ(next.kind, NextPhase::Kind::kEvaluation);
  EXPECT_FALSE(next.validation);
  EXPECT_EQ(next.epoch, 4);

  // Validations only after the last epoch: none is missing before it.
  spec.set_eval_every_epoch(false);
  point.start_epoch = 2;
  point.evaluate_only = false;
  EXPECT_EQ(first(0, false).kind, NextPhase::Kind::kTraining);
  // Without a split, as before.
  spec.set_eval_every_epoch(true);
  spec.mutable_data()->set_validation_fraction(0);
  EXPECT_EQ(first(0, false).kind, NextPhase::Kind::kTraining);
}

}  // namespace
}  // namespace tessera
