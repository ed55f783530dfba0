// The job's task (scheduler/job_task.h): model.loss AUTO inferred from a
// table's label column and the last layer's outputs, said in one line; a
// table read by the rule the task needs (bad labels counted by
// skip_bad_records); and the mistakes that are one clear error.
#include "scheduler/job_task.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/table_data.h"
#include "scheduler/job_shape.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

class JobTaskTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("job-task"); }

  // A job on train.csv and test.csv (columns y, a, b) with a last layer of `outputs`.
  proto::JobSpec Spec(const std::string& train, const std::string& test, int outputs) {
    WriteText(dir_ + "/train.csv", "y,a,b\n" + train);
    WriteText(dir_ + "/test.csv", "y,a,b\n" + test);
    proto::JobSpec spec;
    spec.mutable_model()->add_layer()->mutable_linear()->set_out_features(outputs);
    proto::DataSpec* d = spec.mutable_data();
    d->set_format(proto::DataSpec::CSV);
    d->set_dir(dir_);
    d->add_train_files("train.csv");
    d->add_test_files("test.csv");
    d->mutable_table()->set_label_column("y");
    return spec;
  }

  StatusOr<DataAndTask> Resolve(const proto::JobSpec& spec) {
    layout_ = DataLayout();
    return ShapeOfJobData(spec, &layout_);
  }

  std::string dir_;
  DataLayout layout_;
};

TEST_F(JobTaskTest, LabelsZeroAndOneWithOneOutputAreBinary) {
  auto r = Resolve(Spec("0,1,2\n1,3,4\n1,5,6\n", "0,1,1\n", 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->task.loss, proto::SIGMOID_BINARY_CROSS_ENTROPY);
  EXPECT_EQ(r->task.description,
            "task: binary classification (inferred from the label column 'y': values 0 and 1, and one output)");
  EXPECT_EQ(layout_.table->labels().kind(), proto::TableLabels::NUMBER);
}

TEST_F(JobTaskTest, ANonIntegerLabelWithOneOutputIsARegression) {
  auto r = Resolve(Spec("0.5,1,2\n-3,3,4\n12,5,6\n", "7.25,1,1\n", 1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->task.loss, proto::MEAN_SQUARED_ERROR);
  EXPECT_EQ(r->task.description,
            "task: regression (inferred from the label column 'y': numbers in [-3, 12], not all integers, and one "
            "output)");
}

TEST_F(JobTaskTest, ClassIdsWithOneOutputPerClassAreMultiClass) {
  auto r = Resolve(Spec("0,1,2\n2,3,4\n1,5,6\n", "2,1,1\n", 3));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->task.loss, proto::SOFTMAX_CROSS_ENTROPY);
  EXPECT_THAT(r->task.description, HasSubstr("task: multi-class classification (inferred from the label column 'y'"));
  EXPECT_EQ(layout_.table->labels().kind(), proto::TableLabels::CLASS_ID);
  EXPECT_EQ(layout_.table->num_classes(), 3);
}

TEST_F(JobTaskTest, IntegersBeyondOneWithOneOutputAskForModelLoss) {
  auto r = Resolve(Spec("0,1,2\n2,3,4\n5,5,6\n", "1,1,1\n", 1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "cannot infer the task from the label column 'y' (integers in [0, 5]) and a last layer of one output: set "
            "model.loss (SOFTMAX_CROSS_ENTROPY with one output per class, SIGMOID_BINARY_CROSS_ENTROPY for labels 0 "
            "and 1, or MEAN_SQUARED_ERROR)");
}

TEST_F(JobTaskTest, AnExplicitLossIsTakenAndSaidSo) {
  proto::JobSpec spec = Spec("0,1,2\n2,3,4\n5,5,6\n", "1,1,1\n", 1);
  spec.mutable_model()->set_loss(proto::MEAN_SQUARED_ERROR);
  auto r = Resolve(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->task.loss, proto::MEAN_SQUARED_ERROR);
  EXPECT_EQ(r->task.description, "task: regression (model.loss MEAN_SQUARED_ERROR)");
}

TEST_F(JobTaskTest, ABinaryLabelOtherThanZeroOrOneIsABadRecord) {
  proto::JobSpec spec = Spec("0,1,2\n2,3,4\n1,5,6\n", "1,1,1\n", 1);
  spec.mutable_model()->set_loss(proto::SIGMOID_BINARY_CROSS_ENTROPY);
  auto r = Resolve(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), dir_ + "/train.csv:3: column 'y': expected a label 0 or 1, got \"2\"");
  spec.mutable_data()->mutable_table()->set_skip_bad_records(true);
  r = Resolve(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data.bad_records.count, 1);
  EXPECT_EQ(r->data.train_examples, 2);
}

TEST_F(JobTaskTest, ARegressionLabelMustBeAFiniteNumber) {
  proto::JobSpec spec = Spec("0.5,1,2\nnan,3,4\n1e39,5,6\n,1,1\nabc,2,2\n2.5,1,1\n", "1,1,1\n", 1);
  spec.mutable_model()->set_loss(proto::MEAN_SQUARED_ERROR);
  auto r = Resolve(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), dir_ + "/train.csv:3: column 'y': expected a finite number, got \"nan\"");
  spec.mutable_data()->mutable_table()->set_skip_bad_records(true);
  r = Resolve(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->data.bad_records.count, 4) << "nan, 1e39 (beyond float), an empty label and abc";
  EXPECT_EQ(r->data.train_examples, 2);
}

TEST_F(JobTaskTest, WorkersReadRegressionLabelsAsTheSchedulerDid) {
  proto::JobSpec spec = Spec("0.5,1,2\nbad,3,4\n-7.25,5,6\n", "1,1,1\n", 1);
  spec.mutable_data()->mutable_table()->set_skip_bad_records(true);
  auto r = Resolve(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<float> x, labels;
  ASSERT_OK(ReadTableBlock(spec.data(), Split::kTraining, *layout_.table, layout_.table->train_blocks(0), &x, &labels));
  EXPECT_EQ(labels, (std::vector<float>{0.5f, -7.25f}));
}

TEST_F(JobTaskTest, TableDataRecordsWhatTheTrainingLabelsWere) {
  proto::JobSpec spec = Spec("1,1,2\n-2.5,3,4\n4,5,6\n", "100.5,1,1\n", 1);
  auto r = Resolve(spec);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const proto::TableLabels& labels = layout_.table->labels();
  EXPECT_EQ(labels.kind(), proto::TableLabels::NUMBER);
  EXPECT_FALSE(labels.all_integers());
  EXPECT_FALSE(labels.all_binary());
  EXPECT_EQ(labels.min(), -2.5);
  EXPECT_EQ(labels.max(), 4) << "the training files' only: the test label 100.5 is not counted";
  // Class ids stay exact through the float labels.
  spec = Spec("0,1,2\n255,3,4\n", "7,1,1\n", 256);
  ASSERT_TRUE(Resolve(spec).ok());
  std::vector<float> x, read;
  ASSERT_OK(ReadTableBlock(spec.data(), Split::kTraining, *layout_.table, layout_.table->train_blocks(0), &x, &read));
  EXPECT_EQ(read, (std::vector<float>{0, 255}));
  EXPECT_TRUE(layout_.table->labels().all_integers());
}

TEST_F(JobTaskTest, IdxDataIsMultiClassAndRefusesTheOthers) {
  proto::JobSpec spec;
  auto task = ChooseTask(spec, nullptr, 10);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->loss, proto::SOFTMAX_CROSS_ENTROPY);
  spec.mutable_model()->set_loss(proto::SIGMOID_BINARY_CROSS_ENTROPY);
  task = ChooseTask(spec, nullptr, 10);
  ASSERT_FALSE(task.ok());
  EXPECT_THAT(task.status().message(), HasSubstr("model.loss SIGMOID_BINARY_CROSS_ENTROPY needs a CSV or TSV table"));
}

TEST_F(JobTaskTest, EarlyStoppingMetricMustFitTheTask) {
  proto::JobSpec spec = Spec("0.5,1,2\n-3,3,4\n", "7.25,1,1\n", 1);
  spec.mutable_early_stopping()->set_metric(proto::EarlyStoppingSpec::VALIDATION_AUC);
  auto r = Resolve(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "early_stopping.metric VALIDATION_AUC does not fit the job's task, regression");
  spec.mutable_early_stopping()->set_metric(proto::EarlyStoppingSpec::VALIDATION_RMSE);
  EXPECT_TRUE(Resolve(spec).ok());
}

TEST_F(JobTaskTest, NumClassesIsForMultiClassTasks) {
  proto::JobSpec spec = Spec("0.5,1,2\n-3,3,4\n", "7.25,1,1\n", 1);
  spec.mutable_data()->mutable_table()->set_num_classes(3);
  auto r = Resolve(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "data.table.num_classes 3 is for multi-class tasks; this job's task is regression: leave it unset");
  spec = Spec("0,1,2\n1,3,4\n", "1,1,1\n", 1);
  spec.mutable_data()->mutable_table()->set_num_classes(2);
  EXPECT_TRUE(Resolve(spec).ok()) << "2 classes for a binary task is true, if needless";
}

TEST_F(JobTaskTest, TheClusterMapCarriesTheResolvedLoss) {
  proto::JobSpec spec = Spec("0,1,2\n1,3,4\n", "0,1,1\n", 1);
  auto shape = PlanJob(spec);
  ASSERT_TRUE(shape.ok()) << shape.status().ToString();
  const proto::ClusterMap map = MakeClusterMap(spec, *shape, {"tcp://127.0.0.1:1"}, JobStart{});
  EXPECT_EQ(map.spec().model().loss(), proto::SIGMOID_BINARY_CROSS_ENTROPY);
  EXPECT_EQ(spec.model().loss(), proto::AUTO);
}

}  // namespace
}  // namespace tessera
