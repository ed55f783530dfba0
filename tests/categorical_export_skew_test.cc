// A table model with categorical columns (data.table.categorical_columns:
// one with a vocabulary, one hashed) exported, predicted and served with
// real processes: trained on a CSV written here, exported (the manifest
// records the column's hashing and the run's stored vocabulary), and the
// same rows, with values out of the vocabulary and missing fields, go
// through `tessera predict` (the columns in another order) and a real
// `tessera serve` (the categorical columns as BYTES strings and INT64
// integers): the probabilities are the same floats, bit for bit. Predict
// over the test file counts as many right as training's final evaluation.
// An int8 export (the Linear layers after the float embedding) loads and
// predicts too; pruning, and a manifest whose vocabulary is not the model's,
// are refused in one line. With onnxruntime at hand
// (NODE_PATH), the graph it runs gives predict's probabilities.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "proto/checkpoint.pb.h"
#include "tests/skew_test_util.h"
#include "tests/test_util.h"
#include "tools/progress_view.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr int kClasses = 3;
const std::vector<std::string> kColors = {"red", "green", "blue", "cyan", "plum", "teal", "gold"};

// One record: a numeric x, the color (vocabulary), the code (hashed; an
// integer), a numeric y and the label, as the CSV's text. The label is
// (color + code) mod 3, both categorical columns needed, but one in five is
// drawn at random: the test accuracy is below 1, so matching counts say
// something.
struct Row {
  std::string x, color, code, y, label;
};

std::vector<Row> PlantedRows(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Row> rows(count);
  for (Row& r : rows) {
    const int color = static_cast<int>(rng() % kColors.size());
    const int code = static_cast<int>(rng() % 12);
    r.x = std::to_string(static_cast<int>(rng() % 200) - 100);
    r.color = kColors[color];
    r.code = std::to_string(code);
    r.y = std::to_string(static_cast<int>(rng() % 9));
    const bool noise = rng() % 5 == 0;
    r.label = std::to_string(noise ? static_cast<int>(rng() % kClasses) : (color + code) % kClasses);
  }
  return rows;
}

std::string TrainingCsv(const std::vector<Row>& rows) {
  std::string text = "x,color,code,y,label\n";
  for (const Row& r : rows) text += r.x + "," + r.color + "," + r.code + "," + r.y + "," + r.label + "\n";
  return text;
}

// The rows sent through predict and serve: the training rows' kind, then a
// color out of the vocabulary, a code never trained on, and missing fields.
std::vector<Row> ServedRows() {
  std::vector<Row> rows = PlantedRows(12, 3);
  rows.push_back({"5", "mauve", "7", "2", "0"});
  rows.push_back({"-40", "red", "9999", "1", "0"});
  rows.push_back({"", "", "", "", "0"});
  rows.push_back({"17", "blue", "", "4", "0"});
  return rows;
}

// The predict input: the columns in another order, no label.
std::string PredictCsv(const std::vector<Row>& rows) {
  std::string text = "code,y,color,x\n";
  for (const Row& r : rows) text += r.code + "," + r.y + "," + r.color + "," + r.x + "\n";
  return text;
}

std::string Spec(const std::string& dir) {
  return R"pb(
    name: "colors"
    model {
      layer { column_embedding { embedding_dim: 4 } }
      layer { linear { out_features: 24 } }
      layer { relu {} }
      layer { linear { out_features: 3 } }
    }
    data {
      format: CSV
      dir: ")pb" + dir + R"pb("
      train_files: "train.csv"
      test_files: "test.csv"
      table {
        label_column: "label"
        categorical_columns { name: "color" vocabulary { min_count: 1 } }
        categorical_columns { name: "code" hash_buckets: 32 }
      }
    }
    cluster { servers: 1 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.02 }
    batch_size: 32
    epochs: 4
  )pb";
}

class CategoricalExportSkewTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setenv("OMP_NUM_THREADS", "1", 1);  // predict and serve sum on one thread each
    dir_ = new std::string(MakeTempDir("categorical-export-skew"));
    WriteText(*dir_ + "/train.csv", TrainingCsv(PlantedRows(1500, 1)));
    WriteText(*dir_ + "/test.csv", TrainingCsv(PlantedRows(300, 2)));
    WriteText(*dir_ + "/rows.csv", PredictCsv(ServedRows()));
    error_ = new std::string(TrainAndExport(*dir_, Spec(*dir_), "colors"));
  }
  void SetUp() override { ASSERT_EQ(*error_, ""); }

  static std::string Run() { return *dir_ + "/run-colors"; }

  // Predict over `input` with model `model` (in `workers` processes, in
  // batches of `batch`); its rows (header first), and its summary line in *output.
  static std::vector<std::vector<std::string>> Predict(const std::string& model, const std::string& input,
                                                       const std::string& name, std::string* output,
                                                       int workers = 1, int batch = 64) {
    const std::string out = *dir_ + "/" + name + ".csv";
    CommandResult r = RunTessera({"predict", *dir_ + "/repo/" + model, input, "--out", out, "--batch-size",
                                  std::to_string(batch), "--workers", std::to_string(workers), "--threads", "1",
                                  "--progress", "none", "--device", "cpu"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    *output = r.output;
    return ReadCsv(out);
  }

  // The served rows, one KServe input per column: the numbers FP32 (null
  // when missing), the color BYTES, the code INT64 (null when missing).
  static json Inputs() {
    const std::vector<Row> rows = ServedRows();
    json x = json::array(), y = json::array(), color = json::array(), code = json::array();
    for (const Row& r : rows) {
      x.push_back(r.x.empty() ? json() : json(std::stod(r.x)));
      y.push_back(r.y.empty() ? json() : json(std::stod(r.y)));
      color.push_back(r.color.empty() ? json() : json(r.color));
      code.push_back(r.code.empty() ? json() : json(std::stoll(r.code)));
    }
    const int n = static_cast<int>(rows.size());
    return json::array({{{"name", "color"}, {"datatype", "BYTES"}, {"shape", {n}}, {"data", color}},
                        {{"name", "x"}, {"datatype", "FP32"}, {"shape", {n}}, {"data", x}},
                        {{"name", "code"}, {"datatype", "INT64"}, {"shape", {n, 1}}, {"data", code}},
                        {{"name", "y"}, {"datatype", "FP32"}, {"shape", {n}}, {"data", y}}});
  }

  static std::string* dir_;
  static std::string* error_;
};
std::string* CategoricalExportSkewTest::dir_ = nullptr;
std::string* CategoricalExportSkewTest::error_ = nullptr;

TEST_F(CategoricalExportSkewTest, TheManifestRecordsTheHashingAndTheStoredVocabulary) {
  const json manifest = json::parse(FileText(*dir_ + "/repo/colors/1/manifest.json"));
  const json& columns = manifest["preprocessing"]["columns"];
  ASSERT_EQ(columns.size(), 4u) << manifest.dump();
  EXPECT_EQ(columns[0]["name"], "x");
  EXPECT_EQ(columns[1]["name"], "y");
  EXPECT_EQ(columns[1]["kind"], "numeric");
  EXPECT_EQ(columns[2]["name"], "color");
  EXPECT_EQ(columns[2]["kind"], "categorical");
  EXPECT_EQ(columns[3], json::parse(R"({"name": "code", "kind": "categorical", "hash_buckets": 32})"));
  proto::TableVocabularies stored;
  ASSERT_TRUE(stored.ParseFromString(FileText(Run() + "/table_vocabulary.pb")));
  ASSERT_EQ(stored.columns_size(), 2);
  const std::vector<std::string> vocabulary(stored.columns(0).vocabulary().begin(),
                                            stored.columns(0).vocabulary().end());
  EXPECT_EQ(columns[2]["vocabulary"], json(vocabulary));
  EXPECT_EQ(vocabulary.size(), kColors.size());
}

TEST_F(CategoricalExportSkewTest, PredictOverTheTestFileCountsWhatTrainingsEvaluationCounted) {
  std::string output;
  const auto rows = Predict("colors", *dir_ + "/test.csv", "test-predictions", &output);
  ASSERT_EQ(rows.size(), 301u);
  const size_t at = output.find(", accuracy ");
  ASSERT_NE(at, std::string::npos) << output;
  const size_t open = output.find('(', at);
  const int correct = std::atoi(output.c_str() + open + 1);
  const double trained = JsonNumber(FileText(Run() + "/summary.json"), "test_accuracy");
  EXPECT_EQ(correct, static_cast<int>(std::lround(trained * 300))) << output;
  EXPECT_GT(trained, 0.75);  // the columns were learned, so the ids matter
  EXPECT_LT(trained, 0.95);  // and some rows are not predicted right
  const json manifest = json::parse(FileText(*dir_ + "/repo/colors/1/manifest.json"));
  EXPECT_EQ(static_cast<int>(std::lround(manifest["test_accuracy"].get<double>() * 300)), correct);
}

TEST_F(CategoricalExportSkewTest, TheSameRowsGiveTheSameProbabilitiesThroughPredictAndServe) {
  std::string output;
  const auto rows = Predict("colors", *dir_ + "/rows.csv", "rows-predictions", &output);
  const int n = static_cast<int>(ServedRows().size());
  ASSERT_EQ(rows.size(), static_cast<size_t>(n + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "class", "prob_0", "prob_1", "prob_2", "class_name"}));

  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json response = Infer(serve, "colors", {{"inputs", Inputs()}});
  json probabilities;
  for (const json& o : response["outputs"]) {
    if (o["name"] == "probabilities") probabilities = o["data"];
  }
  ASSERT_EQ(probabilities.size(), static_cast<size_t>(n * kClasses)) << response.dump();
  for (int r = 0; r < n; ++r) {
    for (int k = 0; k < kClasses; ++k) {
      const float served = static_cast<float>(probabilities[r * kClasses + k].get<double>());
      EXPECT_EQ(served, ParseFloat(rows[r + 1][2 + k])) << "row " << r << " class " << k;
    }
  }
  // Worker processes, each reading its part of the file, give the rows one process gives at the same batch size.
  std::string workers_output;
  EXPECT_EQ(Predict("colors", *dir_ + "/rows.csv", "rows-predictions-3", &workers_output, /*workers=*/3, /*batch=*/4),
            Predict("colors", *dir_ + "/rows.csv", "rows-predictions-1", &workers_output, /*workers=*/1, /*batch=*/4));

  // The metadata lists the categorical columns as BYTES inputs.
  httplib::Client client("127.0.0.1", serve.port);
  auto meta = client.Get("/v2/models/colors");
  ASSERT_TRUE(meta);
  const json metadata = json::parse(meta->body, nullptr, false);
  std::vector<std::string> bytes_inputs;
  for (const json& in : metadata["inputs"]) {
    if (in["datatype"] == "BYTES") bytes_inputs.push_back(in["name"]);
  }
  EXPECT_EQ(bytes_inputs, (std::vector<std::string>{"color", "code"})) << metadata.dump();
}

// The Linear layers after the embedding quantize to int8 (the embedding stays
// float); the version loads and predicts the rows, most classes as fp32 does.
TEST_F(CategoricalExportSkewTest, AnInt8ExportLoadsAndPredicts) {
  CommandResult r = RunTessera({"export", Run(), "--out", *dir_ + "/repo/colors-int8", "--quantize", "int8"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json manifest = json::parse(FileText(*dir_ + "/repo/colors-int8/1/manifest.json"));
  EXPECT_EQ(manifest["precision"], "int8");
  EXPECT_EQ(manifest["quantization"]["layers"].size(), 2u) << manifest.dump();
  std::string output, fp32_output;
  const auto int8_rows = Predict("colors-int8", *dir_ + "/rows.csv", "int8-predictions", &output);
  const auto fp32_rows = Predict("colors", *dir_ + "/rows.csv", "fp32-predictions", &fp32_output);
  ASSERT_EQ(int8_rows.size(), fp32_rows.size());
  int same = 0;
  for (size_t i = 1; i < int8_rows.size(); ++i) same += int8_rows[i][1] == fp32_rows[i][1];
  EXPECT_GE(same, static_cast<int>(int8_rows.size() - 1) - 2);
}

// onnxruntime (Node's onnxruntime-node, found through NODE_PATH) runs the
// exported graph on inputs made from manifest.json alone and gives predict's
// probabilities (scripts/onnxruntime_table_check.js). Skipped without it.
TEST_F(CategoricalExportSkewTest, OnnxruntimeComputesPredictsProbabilities) {
  const char* node_path = std::getenv("NODE_PATH");
  const std::string probe = "node -e \"require('onnxruntime-node')\" > /dev/null 2>&1";
  if (node_path == nullptr || std::system(probe.c_str()) != 0) {
    GTEST_SKIP() << "node with onnxruntime-node on NODE_PATH is not available";
  }
  std::string output;
  Predict("colors", *dir_ + "/test.csv", "ort-predictions", &output);
  const std::string check = "node " + std::string(TESSERA_SOURCE_DIR) + "/scripts/onnxruntime_table_check.js " +
                            *dir_ + "/repo/colors/1 " + *dir_ + "/test.csv " + *dir_ + "/ort-predictions.csv > " +
                            *dir_ + "/ort.txt 2>&1";
  EXPECT_EQ(std::system(check.c_str()), 0) << FileText(*dir_ + "/ort.txt");
  EXPECT_NE(FileText(*dir_ + "/ort.txt").find("300 rows: "), std::string::npos) << FileText(*dir_ + "/ort.txt");
}

// A manifest whose vocabulary is not the model's tables (edited, or copied
// from another version) is refused in one line: its ids would read other rows.
TEST_F(CategoricalExportSkewTest, AManifestWhoseVocabularyIsNotTheModelsIsRefused) {
  const std::string version = *dir_ + "/wrong-vocabulary/colors/1";
  std::filesystem::create_directories(version);
  std::filesystem::copy_file(*dir_ + "/repo/colors/1/model.onnx", version + "/model.onnx");
  json manifest = json::parse(FileText(*dir_ + "/repo/colors/1/manifest.json"));
  manifest["preprocessing"]["columns"][2]["vocabulary"].erase(0);
  WriteText(version + "/manifest.json", manifest.dump(2));
  CommandResult r = RunTessera({"predict", version, *dir_ + "/rows.csv", "--out", *dir_ + "/wrong.csv", "--progress",
                                "none", "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("categorical column 'color' makes 7 ids, the model's table for it has 8 rows"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/wrong.csv"));
}

// Pruning walks the layers without the table's columns: refused in one line,
// nothing written.
TEST_F(CategoricalExportSkewTest, PruningIsRefusedInOneLine) {
  CommandResult r =
      RunTessera({"export", Run(), "--out", *dir_ + "/repo/colors-pruned", "--prune-sparsity", "0.5", "--noevaluate"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--prune-sparsity: pruning a model with categorical columns (a column_embedding first "
                          "layer) is not supported yet"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/repo/colors-pruned/1"));
}

}  // namespace
}  // namespace tessera
