#include "core/spec.h"

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <filesystem>

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace tessera {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ExamplePath() { return SourceDir() + "/examples/fmnist-mlp.pbtxt"; }

proto::JobSpec ValidSpec() {
  auto spec = LoadJobSpec(ExamplePath());
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : proto::JobSpec();
}

TEST(SpecTest, ExampleParsesAndValidates) {
  auto spec = LoadJobSpec(ExamplePath());
  ASSERT_OK(spec.status());
  EXPECT_OK(ValidateJobSpec(*spec));
  EXPECT_EQ(spec->name(), "fmnist-mlp");
  ASSERT_EQ(spec->model().layer_size(), 5);
  EXPECT_EQ(spec->model().layer(0).linear().out_features(), 256);
  EXPECT_TRUE(spec->model().layer(1).has_relu());
  EXPECT_EQ(spec->model().layer(4).linear().out_features(), 10);
  EXPECT_EQ(spec->cluster().servers(), 2);
  EXPECT_EQ(spec->cluster().workers(), 2);
  EXPECT_EQ(spec->optimizer().type(), proto::OptimizerSpec::SGD);
  EXPECT_FLOAT_EQ(spec->optimizer().learning_rate(), 0.02f);
  EXPECT_FLOAT_EQ(spec->optimizer().momentum(), 0.9f);
  EXPECT_EQ(spec->batch_size(), 64);
  EXPECT_EQ(spec->epochs(), 10);
  EXPECT_EQ(spec->consistency(), proto::BSP);
}

TEST(SpecTest, LoadReportsMissingFile) {
  auto spec = LoadJobSpec(SourceDir() + "/examples/no-such-spec.pbtxt");
  EXPECT_EQ(spec.status().code(), StatusCode::kNotFound) << spec.status().ToString();
}

TEST(SpecTest, UnknownFieldNamesFileLineColumnAndField) {
  const std::string text = "name: \"x\"\nepochs: 2\n  bogus_field: 3\n";
  auto spec = ParseJobSpec(text, "job.pbtxt");
  ASSERT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << spec.status().ToString();
  EXPECT_THAT(spec.status().message(), ContainsRegex("^job\\.pbtxt:3:[0-9]+: "));
  EXPECT_THAT(spec.status().message(), HasSubstr("bogus_field"));
}

TEST(SpecTest, UnknownNestedFieldPointsAtItsLine) {
  const std::string text = "model {\n  layer { linear { out_feature: 3 } }\n}\n";
  auto spec = ParseJobSpec(text, "nested.pbtxt");
  ASSERT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << spec.status().ToString();
  EXPECT_THAT(spec.status().message(), ContainsRegex("^nested\\.pbtxt:2:[0-9]+: "));
  EXPECT_THAT(spec.status().message(), HasSubstr("out_feature"));
}

TEST(SpecTest, SyntaxErrorNamesFileAndLine) {
  auto spec = ParseJobSpec("cluster {\n  workers: 2\n", "broken.pbtxt");
  ASSERT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << spec.status().ToString();
  EXPECT_THAT(spec.status().message(), ContainsRegex("^broken\\.pbtxt:[0-9]+:[0-9]+: "));
  auto bad_value = ParseJobSpec("epochs: many\n", "value.pbtxt");
  ASSERT_EQ(bad_value.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_value.status().message(), ContainsRegex("^value\\.pbtxt:1:[0-9]+: "));
}

TEST(SpecTest, DefaultsAreValidGivenAModel) {
  auto spec = ParseJobSpec("model { layer { linear { out_features: 10 } } }", "min.pbtxt");
  ASSERT_OK(spec.status());
  EXPECT_OK(ValidateJobSpec(*spec));
  EXPECT_EQ(spec->name(), "job");
  EXPECT_EQ(spec->batch_size(), 64);
  EXPECT_EQ(spec->cluster().workers(), 1);
}

struct Rule {
  std::string field;  // must appear in the message
  std::function<void(proto::JobSpec*)> breaks;
};

TEST(SpecTest, EveryRuleNamesItsField) {
  const std::vector<Rule> rules = {
      {"cluster.workers", [](proto::JobSpec* s) { s->mutable_cluster()->set_workers(0); }},
      {"cluster.workers", [](proto::JobSpec* s) { s->mutable_cluster()->set_workers(-3); }},
      {"cluster.servers", [](proto::JobSpec* s) { s->mutable_cluster()->set_servers(0); }},
      {"batch_size", [](proto::JobSpec* s) { s->set_batch_size(0); }},
      {"epochs", [](proto::JobSpec* s) { s->set_epochs(0); }},
      {"optimizer.learning_rate", [](proto::JobSpec* s) { s->mutable_optimizer()->set_learning_rate(0); }},
      {"optimizer.learning_rate", [](proto::JobSpec* s) { s->mutable_optimizer()->set_learning_rate(-0.5f); }},
      {"optimizer.momentum", [](proto::JobSpec* s) { s->mutable_optimizer()->set_momentum(1.0f); }},
      {"optimizer.momentum", [](proto::JobSpec* s) { s->mutable_optimizer()->set_momentum(-0.1f); }},
      {"optimizer.weight_decay", [](proto::JobSpec* s) { s->mutable_optimizer()->set_weight_decay(-1.0f); }},
      {"optimizer.beta1", [](proto::JobSpec* s) { s->mutable_optimizer()->set_beta1(1.0f); }},
      {"optimizer.beta2", [](proto::JobSpec* s) { s->mutable_optimizer()->set_beta2(1.5f); }},
      {"optimizer.epsilon", [](proto::JobSpec* s) { s->mutable_optimizer()->set_epsilon(0.0f); }},
      {"optimizer.step_epochs",
       [](proto::JobSpec* s) { s->mutable_optimizer()->set_schedule(proto::OptimizerSpec::STEP); }},
      {"optimizer.step_epochs", [](proto::JobSpec* s) { s->mutable_optimizer()->set_step_epochs(-1); }},
      {"optimizer.gamma", [](proto::JobSpec* s) { s->mutable_optimizer()->set_gamma(0.0f); }},
      {"optimizer.gamma", [](proto::JobSpec* s) { s->mutable_optimizer()->set_gamma(1.5f); }},
      {"optimizer.warmup_epochs", [](proto::JobSpec* s) { s->mutable_optimizer()->set_warmup_epochs(-0.5f); }},
      {"optimizer.warmup_epochs",
       [](proto::JobSpec* s) { s->mutable_optimizer()->set_warmup_epochs(std::numeric_limits<float>::infinity()); }},
      {"optimizer.min_learning_rate", [](proto::JobSpec* s) { s->mutable_optimizer()->set_min_learning_rate(-1); }},
      {"optimizer.min_learning_rate", [](proto::JobSpec* s) { s->mutable_optimizer()->set_min_learning_rate(1); }},
      {"model.layer[2]", [](proto::JobSpec* s) { s->mutable_model()->mutable_layer(2)->clear_kind(); }},
      {"model.layer[0].linear.out_features",
       [](proto::JobSpec* s) { s->mutable_model()->mutable_layer(0)->mutable_linear()->set_out_features(0); }},
      {"model", [](proto::JobSpec* s) { s->mutable_model()->clear_layer(); }},
      {"data.std", [](proto::JobSpec* s) { s->mutable_data()->set_std(0.0f); }},
      {"data.std", [](proto::JobSpec* s) { s->mutable_data()->set_std(-1.0f); }},
      {"data.shards_per_worker", [](proto::JobSpec* s) { s->mutable_data()->set_shards_per_worker(0); }},
      {"data.dir", [](proto::JobSpec* s) { s->mutable_data()->set_dir(""); }},
      {"name", [](proto::JobSpec* s) { s->set_name("my job"); }},
      {"name", [](proto::JobSpec* s) { s->set_name("../escape"); }},
      {"name", [](proto::JobSpec* s) { s->set_name(""); }},
  };
  for (size_t i = 0; i < rules.size(); ++i) {
    proto::JobSpec spec = ValidSpec();
    rules[i].breaks(&spec);
    const Status s = ValidateJobSpec(spec);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "rule " << i << " (" << rules[i].field << ")";
    EXPECT_THAT(s.message(), HasSubstr(rules[i].field)) << "rule " << i;
  }
}

// The validation split and early stopping: each mistake is one line saying what to do.
TEST(SpecTest, ValidationSplitAndEarlyStoppingMistakes) {
  const auto message = [](const std::function<void(proto::JobSpec*)>& change) {
    proto::JobSpec spec = ValidSpec();  // IDX data
    change(&spec);
    const Status s = ValidateJobSpec(spec);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    return s.message();
  };
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_data()->set_validation_fraction(0.5f); }),
            "data.validation_fraction must be in [0, 0.5), got 0.5");
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_data()->set_validation_fraction(-0.1f); }),
            "data.validation_fraction must be in [0, 0.5), got -0.1");
  EXPECT_THAT(message([](proto::JobSpec* s) {
                s->mutable_data()->set_validation_fraction(std::numeric_limits<float>::quiet_NaN());
              }),
              HasSubstr("data.validation_fraction must be in [0, 0.5)"));
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_data()->add_validation_files("valid.csv"); }),
            "data.validation_files are for data.format CSV, TSV, LIBSVM or CRITEO; IDX and IMAGE_FOLDER data hold "
            "out data.validation_fraction of its training examples");
  const auto table = [](proto::JobSpec* s) {
    proto::DataSpec* d = s->mutable_data();
    d->set_format(proto::DataSpec::CSV);
    d->add_train_files("train.csv");
    d->add_test_files("test.csv");
    d->mutable_table()->set_label_column("label");
  };
  EXPECT_EQ(message([&](proto::JobSpec* s) {
              table(s);
              s->mutable_data()->add_validation_files("valid.csv");
              s->mutable_data()->set_validation_fraction(0.1f);
            }),
            "data.validation_fraction and data.validation_files both give a validation set: set one");
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_data()->set_max_validation_examples(-1); }),
            "data.max_validation_examples must be >= 0, got -1");
  EXPECT_THAT(message([](proto::JobSpec* s) {
                s->mutable_data()->set_validation_fraction(0.1f);
                s->mutable_data()->set_max_validation_examples(100);
              }),
              HasSubstr("data.max_validation_examples limits data.validation_files"));
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_early_stopping()->set_patience(2); }),
            "early_stopping.patience needs a validation split: set data.validation_fraction (or "
            "data.validation_files for CSV/TSV)");
  EXPECT_EQ(message([](proto::JobSpec* s) {
              s->mutable_data()->set_validation_fraction(0.1f);
              s->mutable_early_stopping()->set_patience(2);
              s->set_eval_every_epoch(false);
            }),
            "early_stopping.patience needs eval_every_epoch: true (it reads the validation metric after every "
            "epoch)");
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_early_stopping()->set_patience(-1); }),
            "early_stopping.patience must be >= 0, got -1");
  EXPECT_EQ(message([](proto::JobSpec* s) { s->mutable_early_stopping()->set_min_delta(-0.5f); }),
            "early_stopping.min_delta must be a finite number >= 0, got -0.5");
  EXPECT_EQ(message([](proto::JobSpec* s) {
              s->mutable_early_stopping()->set_metric(static_cast<proto::EarlyStoppingSpec::Metric>(7));
            }),
            "early_stopping.metric 7 is unknown");

  // What is right passes: a fraction of IDX data with early stopping; table files; the spec written back.
  proto::JobSpec spec = ValidSpec();
  spec.mutable_data()->set_validation_fraction(0.1f);
  spec.mutable_early_stopping()->set_metric(proto::EarlyStoppingSpec::VALIDATION_ACCURACY);
  spec.mutable_early_stopping()->set_patience(3);
  spec.mutable_early_stopping()->set_min_delta(0.001f);
  EXPECT_OK(ValidateJobSpec(spec));
  EXPECT_TRUE(HasValidationSplit(spec.data()));
  auto written = ParseJobSpec(JobSpecToText(spec), "written");
  ASSERT_OK(written.status());
  EXPECT_OK(ValidateJobSpec(*written));
  EXPECT_EQ(written->early_stopping().patience(), 3);
  proto::JobSpec files = ValidSpec();
  table(&files);
  files.mutable_data()->add_validation_files("valid.csv");
  files.mutable_data()->set_max_validation_examples(500);
  EXPECT_OK(ValidateJobSpec(files));
  EXPECT_TRUE(HasValidationSplit(files.data()));
  EXPECT_FALSE(HasValidationSplit(ValidSpec().data()));
  // A spec written back holds an early_stopping block with patience 0: no early stopping, no split needed.
  auto plain = ParseJobSpec(JobSpecToText(ValidSpec()), "plain");
  ASSERT_OK(plain.status());
  EXPECT_TRUE(plain->has_early_stopping());
  EXPECT_OK(ValidateJobSpec(*plain));
}

TEST(SpecTest, MessagesSayWhatCame) {
  proto::JobSpec spec = ValidSpec();
  spec.mutable_cluster()->set_workers(0);
  EXPECT_EQ(ValidateJobSpec(spec).message(), "cluster.workers must be >= 1, got 0");
  spec = ValidSpec();
  spec.mutable_optimizer()->set_momentum(1.0f);
  EXPECT_THAT(ValidateJobSpec(spec).message(), HasSubstr("got 1"));
  spec = ValidSpec();
  spec.set_name("bad name");
  EXPECT_THAT(ValidateJobSpec(spec).message(), HasSubstr("'bad name'"));
}

TEST(SpecTest, ScheduleMessages) {
  proto::JobSpec spec = ValidSpec();  // learning_rate 0.02
  spec.mutable_optimizer()->set_schedule(proto::OptimizerSpec::COSINE);
  spec.mutable_optimizer()->set_min_learning_rate(0.5f);
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "optimizer.min_learning_rate must be in [0, learning_rate = 0.02], got 0.5");
  spec = ValidSpec();
  spec.mutable_optimizer()->set_schedule(proto::OptimizerSpec::STEP);
  EXPECT_EQ(ValidateJobSpec(spec).message(), "optimizer.step_epochs must be >= 1 with schedule STEP, got 0");
}

TEST(SpecTest, ParsesSchedules) {
  auto spec = ParseJobSpec(
      "model { layer { linear { out_features: 10 } } }\n"
      "optimizer { learning_rate: 0.1 schedule: COSINE warmup_epochs: 0.5 min_learning_rate: 0.001 }\n",
      "cosine.pbtxt");
  ASSERT_OK(spec.status());
  EXPECT_OK(ValidateJobSpec(*spec));
  EXPECT_EQ(spec->optimizer().schedule(), proto::OptimizerSpec::COSINE);
  EXPECT_FLOAT_EQ(spec->optimizer().warmup_epochs(), 0.5f);
  EXPECT_FLOAT_EQ(spec->optimizer().min_learning_rate(), 0.001f);
  spec = ParseJobSpec("optimizer { schedule: STEP step_epochs: 3 gamma: 0.5 }", "step.pbtxt");
  ASSERT_OK(spec.status());
  EXPECT_EQ(spec->optimizer().schedule(), proto::OptimizerSpec::STEP);
  EXPECT_EQ(spec->optimizer().step_epochs(), 3);
  // Defaults: no schedule, no warm-up.
  proto::OptimizerSpec defaults;
  EXPECT_EQ(defaults.schedule(), proto::OptimizerSpec::CONSTANT);
  EXPECT_EQ(defaults.warmup_epochs(), 0);
  EXPECT_EQ(defaults.step_epochs(), 0);
  EXPECT_FLOAT_EQ(defaults.gamma(), 0.1f);
  EXPECT_EQ(defaults.min_learning_rate(), 0);
  auto bad = ParseJobSpec("optimizer { schedule: LINEAR }", "bad.pbtxt");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(SpecTest, MessagesShowSmallValuesAsTheyCame) {
  proto::JobSpec spec = ValidSpec();
  spec.mutable_optimizer()->set_learning_rate(-1e-9f);
  const Status s = ValidateJobSpec(spec);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::Not(::testing::EndsWith("got -0")));
  EXPECT_THAT(s.message(), ::testing::Not(::testing::EndsWith("got 0")));
}

TEST(SpecTest, AcceptsNameCharacters) {
  proto::JobSpec spec = ValidSpec();
  spec.set_name("Run_2.v-3");
  EXPECT_OK(ValidateJobSpec(spec));
}

TEST(SpecTest, TextRoundTrips) {
  const proto::JobSpec spec = ValidSpec();
  const std::string text = JobSpecToText(spec);
  auto again = ParseJobSpec(text, "roundtrip.pbtxt");
  ASSERT_OK(again.status());
  EXPECT_TRUE(MessageDifferencer::Equivalent(spec, *again)) << text;
  EXPECT_OK(ValidateJobSpec(*again));

  // A spec with every kind of field set survives too.
  proto::JobSpec full = spec;
  full.set_consistency(proto::ASP);
  full.mutable_optimizer()->set_type(proto::OptimizerSpec::ADAM);
  full.mutable_optimizer()->set_epsilon(1e-7f);
  full.mutable_optimizer()->set_schedule(proto::OptimizerSpec::STEP);
  full.mutable_optimizer()->set_step_epochs(2);
  full.mutable_optimizer()->set_gamma(0.5f);
  full.mutable_optimizer()->set_warmup_epochs(0.25f);
  full.mutable_model()->mutable_layer(0)->mutable_linear()->set_bias(false);
  full.mutable_data()->set_max_train_examples(1000);
  full.set_eval_every_epoch(false);
  auto full_again = ParseJobSpec(JobSpecToText(full), "full.pbtxt");
  ASSERT_OK(full_again.status());
  EXPECT_TRUE(MessageDifferencer::Equivalent(full, *full_again)) << JobSpecToText(full);
}

TEST(SpecTest, TextMakesDefaultsExplicit) {
  auto spec = ParseJobSpec("model { layer { linear { out_features: 10 } } }", "min.pbtxt");
  ASSERT_OK(spec.status());
  const std::string text = JobSpecToText(*spec);
  EXPECT_THAT(text, HasSubstr("batch_size: 64"));
  EXPECT_THAT(text, HasSubstr("epochs: 1"));
  EXPECT_THAT(text, HasSubstr("workers: 1"));
  EXPECT_THAT(text, HasSubstr("learning_rate: 0.01"));
}

// An int8 block makes a layer inference-only, so making defaults explicit
// must never add one: the written spec.pbtxt of every job would be refused.
TEST(SpecTest, TextNeverAddsAnInt8Block) {
  auto spec = ParseJobSpec("model { layer { conv2d { out_channels: 2 kernel_size: 3 } } layer { flatten {} } "
                           "layer { linear { out_features: 10 } } }",
                           "layers.pbtxt");
  ASSERT_OK(spec.status());
  const std::string text = JobSpecToText(*spec);
  EXPECT_THAT(text, Not(HasSubstr("int8")));
  auto again = ParseJobSpec(text, "again.pbtxt");
  ASSERT_OK(again.status());
  EXPECT_OK(ValidateJobSpec(*again));
  // One that has it keeps it (and is refused for training).
  spec->mutable_model()->mutable_layer(2)->mutable_linear()->mutable_int8()->set_input_scale(0.5f);
  EXPECT_THAT(JobSpecToText(*spec), HasSubstr("input_scale: 0.5"));
  EXPECT_THAT(ValidateJobSpec(*spec).message(), HasSubstr("int8 layer"));
}

TEST(SpecTest, DataPathJoinsRelativeNames) {
  proto::DataSpec data;
  data.set_dir("/data/fm");
  EXPECT_EQ(DataPath(data, "train.gz"), "/data/fm/train.gz");
  EXPECT_EQ(DataPath(data, "/abs/test.gz"), "/abs/test.gz");
}

// ------------------------------------------------------------------ image folders

proto::JobSpec ImageFolderSpec() {
  auto spec = ParseJobSpec(R"pb(
    model { layer { linear { out_features: 3 } } }
    data {
      format: IMAGE_FOLDER
      dir: "/data/pets"
      train_dir: "train"
      test_dir: "test"
      image { width: 32 height: 24 channels: 3 }
    }
  )pb", "images.pbtxt");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : proto::JobSpec();
}

void ExpectRefused(const proto::JobSpec& spec, const std::string& message) {
  const Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << message;
  EXPECT_EQ(status.message(), message);
}

TEST(ImageFolderSpecTest, AValidSpecAndItsDefaults) {
  const proto::JobSpec spec = ImageFolderSpec();
  EXPECT_OK(ValidateJobSpec(spec));
  const proto::ImageSpec& image = spec.data().image();
  EXPECT_FALSE(image.random_crop());
  EXPECT_FALSE(image.horizontal_flip());
  EXPECT_FLOAT_EQ(image.min_crop_scale(), 0.8f);
  EXPECT_EQ(ParseJobSpec("data { image {} }", "x").value().data().image().channels(), 1);
  // Written back with every default explicit, it is still valid, and so is
  // an IDX spec, whose written-back image block holds only defaults.
  for (const proto::JobSpec& written : {spec, ValidSpec()}) {
    auto again = ParseJobSpec(JobSpecToText(written), "spec.pbtxt");
    ASSERT_OK(again.status());
    EXPECT_TRUE(MessageDifferencer::Equivalent(written, *again)) << JobSpecToText(written);
    EXPECT_OK(ValidateJobSpec(*again));
  }
  proto::JobSpec augmented = spec;
  augmented.mutable_data()->mutable_image()->set_random_crop(true);
  augmented.mutable_data()->mutable_image()->set_min_crop_scale(1.0f);
  augmented.mutable_data()->mutable_image()->set_horizontal_flip(true);
  augmented.mutable_data()->mutable_image()->add_mean(0.485f);
  augmented.mutable_data()->mutable_image()->add_mean(0.456f);
  augmented.mutable_data()->mutable_image()->add_mean(0.406f);
  augmented.mutable_data()->mutable_image()->add_std(0.25f);
  EXPECT_OK(ValidateJobSpec(augmented));
}

TEST(ImageFolderSpecTest, EachImageRuleIsOneLineNamingItsField) {
  using Break = std::function<void(proto::DataSpec*)>;
  const std::vector<std::pair<Break, std::string>> cases = {
      {[](proto::DataSpec* d) { d->clear_train_dir(); },
       "data.format IMAGE_FOLDER needs data.train_dir and data.test_dir: folders of class folders of .png, .jpg or "
       ".jpeg files"},
      {[](proto::DataSpec* d) { d->clear_test_dir(); },
       "data.format IMAGE_FOLDER needs data.train_dir and data.test_dir: folders of class folders of .png, .jpg or "
       ".jpeg files"},
      {[](proto::DataSpec* d) { d->mutable_image()->clear_width(); },
       "data.format IMAGE_FOLDER needs data.image.width in [1, 4096]: the size every image is resized to, got 0"},
      {[](proto::DataSpec* d) { d->clear_image(); },
       "data.format IMAGE_FOLDER needs data.image.width in [1, 4096]: the size every image is resized to, got 0"},
      {[](proto::DataSpec* d) { d->mutable_image()->set_height(4097); },
       "data.format IMAGE_FOLDER needs data.image.height in [1, 4096]: the size every image is resized to, got 4097"},
      {[](proto::DataSpec* d) { d->mutable_image()->set_channels(2); },
       "data.image.channels must be 1 (gray) or 3 (RGB), got 2"},
      {[](proto::DataSpec* d) {
         d->mutable_image()->add_mean(0.5f);
         d->mutable_image()->add_mean(0.5f);
       },
       "data.image.mean must hold one value or one per channel (3), got 2"},
      {[](proto::DataSpec* d) { d->mutable_image()->add_mean(std::numeric_limits<float>::infinity()); },
       "data.image.mean must be a finite number, got inf"},
      {[](proto::DataSpec* d) { d->mutable_image()->add_std(0.0f); }, "data.image.std must be > 0, got 0"},
      {[](proto::DataSpec* d) {
         for (float v : {0.5f, -0.5f, 0.5f}) d->mutable_image()->add_std(v);
       },
       "data.image.std must be > 0, got -0.5"},
      {[](proto::DataSpec* d) { d->mutable_image()->set_min_crop_scale(0.0f); },
       "data.image.min_crop_scale must be in (0, 1], got 0"},
      {[](proto::DataSpec* d) { d->mutable_image()->set_min_crop_scale(1.5f); },
       "data.image.min_crop_scale must be in (0, 1], got 1.5"},
      {[](proto::DataSpec* d) { d->set_max_train_examples(100); },
       "data.max_train_examples and data.max_test_examples are not for data.format IMAGE_FOLDER (its images are "
       "listed class by class, so the first N would be the first classes): use smaller folders"},
      {[](proto::DataSpec* d) { d->add_train_files("train.csv"); },
       "data.train_files, data.test_files and data.table's columns are for data.format CSV or TSV; this spec's "
       "format is IMAGE_FOLDER"},
      {[](proto::DataSpec* d) { d->mutable_table()->set_label_column("label"); },
       "data.train_files, data.test_files and data.table's columns are for data.format CSV or TSV; this spec's "
       "format is IMAGE_FOLDER"},
  };
  for (const auto& [breaks, message] : cases) {
    proto::JobSpec spec = ImageFolderSpec();
    breaks(spec.mutable_data());
    ExpectRefused(spec, message);
  }
  proto::JobSpec embedding = ImageFolderSpec();
  embedding.mutable_model()->mutable_layer(0)->mutable_embedding()->set_num_embeddings(256);
  embedding.mutable_model()->mutable_layer(0)->mutable_embedding()->set_embedding_dim(4);
  ExpectRefused(embedding, "an Embedding first layer takes ids, and data.format IMAGE_FOLDER gives scaled numbers: "
                           "use IDX data for ids, or a table's data.table.categorical_columns with a "
                           "column_embedding first layer");
}

TEST(ImageFolderSpecTest, OtherFormatsRefuseTheImageFields) {
  const std::vector<std::function<void(proto::DataSpec*)>> image_fields = {
      [](proto::DataSpec* d) { d->set_train_dir("train"); },
      [](proto::DataSpec* d) { d->set_test_dir("test"); },
      [](proto::DataSpec* d) { d->mutable_image()->set_width(28); },
      [](proto::DataSpec* d) { d->mutable_image()->add_std(0.5f); },
      [](proto::DataSpec* d) { d->mutable_image()->set_horizontal_flip(true); },
  };
  for (const auto& set : image_fields) {
    proto::JobSpec idx = ValidSpec();
    set(idx.mutable_data());
    ExpectRefused(idx, "data.train_dir, data.test_dir and data.image are for data.format IMAGE_FOLDER; this spec's "
                       "format is IDX (set data.format)");
    proto::JobSpec csv = ValidSpec();
    csv.mutable_data()->set_format(proto::DataSpec::TSV);
    csv.mutable_data()->add_train_files("train.tsv");
    csv.mutable_data()->add_test_files("test.tsv");
    csv.mutable_data()->mutable_table()->set_label_column("y");
    ASSERT_OK(ValidateJobSpec(csv));
    set(csv.mutable_data());
    ExpectRefused(csv, "data.train_dir, data.test_dir and data.image are for data.format IMAGE_FOLDER; this spec's "
                       "format is TSV");
  }
}

// Every example a README or a comment points users to parses and passes validation.
TEST(SpecTest, EveryExampleSpecIsValid) {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SourceDir() + "/examples")) {
    if (entry.path().extension() != ".pbtxt") continue;
    auto spec = LoadJobSpec(entry.path().string());
    ASSERT_TRUE(spec.ok()) << entry.path() << ": " << spec.status().ToString();
    EXPECT_OK(ValidateJobSpec(*spec));
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace tessera
