// Embedding models trained by a real cluster: a sparse push (only the rows a
// step touched) trains exactly what a dense push does, with fewer bytes; and
// data that are not ids are refused before anything starts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/file_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

constexpr int kFeatures = 8;

// A bag-of-ids task: each example holds 5 ids from its class's own 20 and 3
// from the 56 shared noise ids (200..255), in [count, 1, kFeatures] images.
void WriteIdsDataset(const std::string& dir, const std::string& prefix, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> ids, labels;
  for (int i = 0; i < count; ++i) {
    const int label = static_cast<int>(rng() % 10);
    labels.push_back(static_cast<uint8_t>(label));
    for (int f = 0; f < kFeatures; ++f) {
      ids.push_back(static_cast<uint8_t>(f < 5 ? label * 20 + rng() % 20 : 200 + rng() % 56));
    }
  }
  ASSERT_OK(WriteIdxFile(dir + "/" + prefix + "-images.gz", {static_cast<uint32_t>(count), 1, kFeatures}, ids));
  ASSERT_OK(WriteIdxFile(dir + "/" + prefix + "-labels.gz", {static_cast<uint32_t>(count)}, labels));
}

std::string Spec(const std::string& data_dir, int num_embeddings, bool sparse, int servers = 2) {
  return "name: \"ids\"\n"
         "model {\n"
         "  layer { embedding { num_embeddings: " + std::to_string(num_embeddings) +
         " embedding_dim: 16 sparse_gradients: " + (sparse ? "true" : "false") + " } }\n"
         "  layer { linear { out_features: 10 } }\n"
         "}\n"
         "data { dir: \"" + data_dir + "\" train_images: \"train-images.gz\" train_labels: \"train-labels.gz\"\n"
         "       test_images: \"test-images.gz\" test_labels: \"test-labels.gz\" mean: 0 std: 0.003921569 }\n"
         "cluster { servers: " + std::to_string(servers) + " workers: 2 }\n"
         // Momentum moves rows a step did not touch: the servers must still update them.
         "optimizer { learning_rate: 0.05 momentum: 0.9 weight_decay: 0.0001 }\n"
         "batch_size: 8\n"
         "epochs: 2\n";
}

class SparsePushTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("sparse_push");
    WriteIdsDataset(dir_, "train", 1200, 1);
    WriteIdsDataset(dir_, "test", 300, 2);
  }

  // Trains the spec; the summary.json text, or "" (and a failure).
  std::string Train(const std::string& name, const std::string& spec) {
    const std::string path = dir_ + "/" + name + ".pbtxt";
    std::ofstream(path) << spec;
    const std::string run = dir_ + "/" + name;
    CommandResult r = RunTessera({"train", path, "--run-dir", run, "--threads", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    auto summary = ReadFileToString(run + "/summary.json");
    return summary.ok() ? *summary : "";
  }

  std::string dir_;
};

TEST_F(SparsePushTest, SparsePushesTrainExactlyWhatDensePushesDoWithFewerBytes) {
  // 3 servers cut the 256 x 16 table at keys 1365 and 2730: inside rows,
  // so a touched row may be pushed in two pieces to two servers.
  const std::string sparse = Train("sparse", Spec(dir_, 256, true, 3));
  const std::string dense = Train("dense", Spec(dir_, 256, false, 3));
  ASSERT_FALSE(sparse.empty());
  ASSERT_FALSE(dense.empty());
  EXPECT_EQ(JsonString(sparse, "params_sha256"), JsonString(dense, "params_sha256"))
      << "servers treat untouched rows as zero gradients: bitwise the same training";
  EXPECT_EQ(JsonNumber(sparse, "test_accuracy"), JsonNumber(dense, "test_accuracy"));
  EXPECT_GT(JsonNumber(sparse, "test_accuracy"), 0.8) << "the task is easy: the ids name the class";
  // Per step a worker's 8 examples touch at most 64 of the 256 rows.
  const double sparse_bytes = JsonNumber(sparse, "push_bytes_per_step");
  const double dense_bytes = JsonNumber(dense, "push_bytes_per_step");
  const double table = 256 * 16 * 4, linear = (kFeatures * 16 * 10 + 10) * 4;
  EXPECT_EQ(dense_bytes, table + linear);
  EXPECT_GT(sparse_bytes, linear);
  EXPECT_LT(sparse_bytes, linear + 0.35 * table) << "sparse " << sparse_bytes << " dense " << dense_bytes;
  // Parameters come back as whole slices, except that a sparse pull asks for
  // only the rows the next batch reads (and for every row once at the end of
  // each of the 2 epochs of 75 steps).
  const double sparse_pulled = JsonNumber(sparse, "pull_bytes_per_step");
  EXPECT_EQ(JsonNumber(dense, "pull_bytes_per_step"), table + linear);
  EXPECT_GT(sparse_pulled, linear + table / 75);
  EXPECT_LT(sparse_pulled, linear + 0.4 * table) << "pulled per step: sparse " << sparse_pulled;
}

// Ids beyond a byte: int32 IDX images. 5 ids from the class's own 20, 3 from
// 4,800 shared noise ids (200..4999).
void WriteInt32IdsDataset(const std::string& dir, const std::string& prefix, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;
  for (int i = 0; i < count; ++i) {
    const int label = static_cast<int>(rng() % 10);
    labels.push_back(static_cast<uint8_t>(label));
    for (int f = 0; f < kFeatures; ++f) {
      ids.push_back(static_cast<int32_t>(f < 5 ? label * 20 + rng() % 20 : 200 + rng() % 4800));
    }
  }
  ASSERT_OK(WriteIdxInt32File(dir + "/" + prefix + "-images.gz", {static_cast<uint32_t>(count), 1, kFeatures}, ids));
  ASSERT_OK(WriteIdxFile(dir + "/" + prefix + "-labels.gz", {static_cast<uint32_t>(count)}, labels));
}

TEST_F(SparsePushTest, VocabulariesBeyondAByteComeAsInt32Ids) {
  const std::string dir = dir_ + "/int32";
  ASSERT_OK(MakeDirs(dir));
  WriteInt32IdsDataset(dir, "train", 1200, 3);
  WriteInt32IdsDataset(dir, "test", 300, 4);
  // int32 values become (v - mean) / std: mean 0 and std 1 keep the ids.
  std::string spec = Spec(dir, 5000, true);
  spec.replace(spec.find("std: 0.003921569"), std::string("std: 0.003921569").size(), "std: 1");
  const std::string summary = Train("int32", spec);
  ASSERT_FALSE(summary.empty());
  EXPECT_GT(JsonNumber(summary, "test_accuracy"), 0.7);  // 0.81 today; chance is 0.1
  // The table is 5000 x 16 floats; a step of 8 examples touches at most 64 rows.
  const double table = 5000 * 16 * 4, linear = (kFeatures * 16 * 10 + 10) * 4;
  EXPECT_EQ(JsonNumber(summary, "num_parameters") * 4, table + linear);
  EXPECT_LT(JsonNumber(summary, "push_bytes_per_step"), linear + 0.03 * table);
  // Pulls: the next batch's rows, and every row at each epoch's end (1/75 of the table per step).
  EXPECT_LT(JsonNumber(summary, "pull_bytes_per_step"), linear + 0.05 * table)
      << "pulled per step: " << JsonNumber(summary, "pull_bytes_per_step");

  // Exported, the model predicts int32 images as training evaluated them.
  const std::string repo = dir_ + "/repo";
  CommandResult exported = RunTessera({"export", dir_ + "/int32", "--out", repo + "/ids"});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  CommandResult predicted = RunTessera({"predict", repo + "/ids", dir + "/test-images.gz", "--labels",
                                        dir + "/test-labels.gz", "--out", dir_ + "/predictions.csv", "--workers", "2"});
  ASSERT_EQ(predicted.exit_code, 0) << predicted.output;
  const std::string expected =
      "(" + std::to_string(std::lround(JsonNumber(summary, "test_accuracy") * 300)) + " of 300)";
  EXPECT_THAT(predicted.output, HasSubstr(expected));

  // The same data with the byte scaling: 1/255 makes the ids fractions, refused.
  const std::string path = dir_ + "/int32-scaled.pbtxt";
  std::ofstream(path) << Spec(dir, 5000, true);
  CommandResult r = RunTessera({"train", path, "--run-dir", dir_ + "/int32-scaled"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("data.mean 0 and data.std 1 keep ids as they are"));
}

TEST_F(SparsePushTest, DataThatAreNotIdsAreRefusedBeforeAnythingStarts) {
  // Ids up to 255, a table of 100 rows.
  const std::string path = dir_ + "/small.pbtxt";
  std::ofstream(path) << Spec(dir_, 100, true);
  const std::string run = dir_ + "/small";
  CommandResult r = RunTessera({"train", path, "--run-dir", run});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("training set: pixel byte 100: input value 100"));
  EXPECT_THAT(r.output, HasSubstr("not an id in [0, 100)"));
  EXPECT_FALSE(FileExists(run + "/summary.json"));
}

TEST_F(SparsePushTest, AnEmbeddingAfterAnotherLayerIsRefused) {
  const std::string path = dir_ + "/second.pbtxt";
  std::ofstream(path) << "model { layer { relu {} } layer { embedding { num_embeddings: 4 embedding_dim: 2 } } "
                         "layer { linear { out_features: 10 } } }\n";
  CommandResult r = RunTessera({"train", path, "--run-dir", dir_ + "/second"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("model.layer[1] is an embedding: it must be the first layer"));
}

}  // namespace
}  // namespace tessera
