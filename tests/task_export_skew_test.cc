// Binary and regression table models exported, predicted and served (issue
// 15) with real processes: each is trained on data written here and
// exported (the manifest names its task and its task's test figures, the
// ONNX model gives "logits" and "probability", or "value"), and the same
// rows go through `tessera predict` (the columns in another order, the
// label included) and a real `tessera serve` (one KServe v2 input per
// column): the probabilities or values are the same floats, bit for bit,
// and so are the classes and their names; predict --workers gives the same
// summary. A manifest whose task is not its model's is refused in one line.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "tests/skew_test_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using nlohmann::json;

constexpr int kFeatures = 3;
constexpr int kRows = 24;  // the rows sent through both, one batch in each

// Features x0..x2 as text with 3 decimals (so that the CSV and the JSON
// carry the same decimal), and the label: 1 where 2 x0 - x1 + noise > 0
// (binary), else 2 x0 - x1 + 0.5 x2 + 0.3 + noise with 3 decimals.
struct Row {
  std::string x[kFeatures];
  std::string label;
};

std::vector<Row> PlantedRows(int count, uint32_t seed, bool binary) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::vector<Row> rows(count);
  char buf[32];
  for (Row& row : rows) {
    double x[kFeatures];
    for (int f = 0; f < kFeatures; ++f) {
      std::snprintf(buf, sizeof(buf), "%.3f", normal(rng));
      row.x[f] = buf;
      x[f] = std::strtod(buf, nullptr);
    }
    const double z = 2 * x[0] - x[1] + 0.3 * normal(rng);
    if (binary) {
      row.label = z > 0 ? "1" : "0";
    } else {
      std::snprintf(buf, sizeof(buf), "%.3f", z + 0.5 * x[2] + 0.3);
      row.label = buf;
    }
  }
  return rows;
}

std::string TrainingCsv(const std::vector<Row>& rows) {
  std::string text = "x0,x1,x2,y\n";
  for (const Row& r : rows) text += r.x[0] + "," + r.x[1] + "," + r.x[2] + "," + r.label + "\n";
  return text;
}

// The rows for predict: the columns in another order, the label included.
std::string PredictCsv(const std::vector<Row>& rows) {
  std::string text = "y,x2,x0,x1\n";
  for (const Row& r : rows) text += r.label + "," + r.x[2] + "," + r.x[0] + "," + r.x[1] + "\n";
  return text;
}

std::string Spec(const std::string& dir, const std::string& name, const std::string& loss,
                 const std::string& data_extra) {
  return R"pb(
    name: ")pb" + name + R"pb("
    model { layer { linear { out_features: 8 } } layer { relu {} } layer { linear { out_features: 1 } } )pb" +
         loss + R"pb( }
    data {
      format: CSV
      dir: ")pb" + dir + R"pb("
      train_files: ")pb" + name + R"pb(-train.csv"
      test_files: ")pb" + name + R"pb(-test.csv"
      table { label_column: "y" feature_columns: "x0" feature_columns: "x1" feature_columns: "x2" }
      )pb" + data_extra + R"pb(
    }
    optimizer { type: ADAM learning_rate: 0.01 }
    batch_size: 16
    epochs: 4
  )pb";
}

class TaskExportSkewTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Both the predict and the serve process compute on one thread of the
    // CPU, so the sums go the same way.
    setenv("OMP_NUM_THREADS", "1", 1);
    dir_ = new std::string(MakeTempDir("task-export-skew"));
    for (const bool binary : {true, false}) {
      const std::string name = binary ? "binary" : "regression";
      WriteText(*dir_ + "/" + name + "-train.csv", TrainingCsv(PlantedRows(600, 1, binary)));
      WriteText(*dir_ + "/" + name + "-test.csv", TrainingCsv(PlantedRows(200, 2, binary)));
      WriteText(*dir_ + "/" + name + "-rows.csv", PredictCsv(PlantedRows(kRows, 3, binary)));
    }
    binary_error_ = new std::string(TrainAndExport(
        *dir_, Spec(*dir_, "binary", "", R"pb(class_names: "no" class_names: "yes")pb"), "binary"));
    regression_error_ =
        new std::string(TrainAndExport(*dir_, Spec(*dir_, "regression", "loss: MEAN_SQUARED_ERROR", ""), "regression"));
  }
  void SetUp() override {
    ASSERT_EQ(*binary_error_, "");
    ASSERT_EQ(*regression_error_, "");
  }

  // Runs predict over NAME-rows.csv in one batch (or, with workers > 1,
  // in batches of 4 over the workers); its rows (header first) and its output.
  static std::vector<std::vector<std::string>> Predict(const std::string& name, std::string* output, int workers = 1) {
    const std::string out = *dir_ + "/" + name + "-predictions-" + std::to_string(workers) + ".csv";
    CommandResult r = RunTessera({"predict", *dir_ + "/repo/" + name, *dir_ + "/" + name + "-rows.csv", "--out", out,
                                  "--batch-size", std::to_string(workers > 1 ? 4 : kRows), "--workers",
                                  std::to_string(workers), "--threads", "1", "--progress", "none", "--device", "cpu"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    *output = r.output;
    return ReadCsv(out);
  }

  // One KServe input per column, FP32, the rows' decimals.
  static json Inputs(bool binary) {
    const std::vector<Row> rows = PlantedRows(kRows, 3, binary);
    json inputs = json::array();
    for (int f = 0; f < kFeatures; ++f) {
      json data = json::array();
      for (const Row& r : rows) data.push_back(json::parse(r.x[f]));
      inputs.push_back({{"name", "x" + std::to_string(f)}, {"datatype", "FP32"}, {"shape", {kRows}}, {"data", data}});
    }
    return inputs;
  }

  // The served output `name` of `response` (null when it has none).
  static json Output(const json& response, const std::string& name) {
    for (const json& o : response["outputs"]) {
      if (o["name"] == name) return o;
    }
    return json();
  }

  static json Metadata(const ServeProcess& serve, const std::string& model) {
    httplib::Client client("127.0.0.1", serve.port);
    auto res = client.Get("/v2/models/" + model);
    EXPECT_TRUE(res);
    return res ? json::parse(res->body, nullptr, false) : json();
  }

  static std::string* dir_;
  static std::string* binary_error_;
  static std::string* regression_error_;
};
std::string* TaskExportSkewTest::dir_ = nullptr;
std::string* TaskExportSkewTest::binary_error_ = nullptr;
std::string* TaskExportSkewTest::regression_error_ = nullptr;

TEST_F(TaskExportSkewTest, TheManifestsNameTheTaskAndItsMetrics) {
  const json binary = json::parse(FileText(*dir_ + "/repo/binary/1/manifest.json"));
  EXPECT_EQ(binary["task"], "binary");
  EXPECT_EQ(binary["class_names"], json({"no", "yes"}));
  ASSERT_EQ(binary["outputs"].size(), 2u) << binary.dump();
  EXPECT_EQ(binary["outputs"][0]["name"], "logits");
  EXPECT_EQ(binary["outputs"][0]["shape"], json({"N", 1}));
  EXPECT_EQ(binary["outputs"][1]["name"], "probability");
  EXPECT_GT(binary["test_auc"].get<double>(), 0.9) << binary.dump();
  EXPECT_LT(binary["test_log_loss"].get<double>(), 0.5) << binary.dump();
  EXPECT_EQ(binary["steps"][0]["test_auc"], binary["test_auc"]);

  const json regression = json::parse(FileText(*dir_ + "/repo/regression/1/manifest.json"));
  EXPECT_EQ(regression["task"], "regression");
  EXPECT_FALSE(regression.contains("class_names")) << regression.dump();
  ASSERT_EQ(regression["outputs"].size(), 1u) << regression.dump();
  EXPECT_EQ(regression["outputs"][0]["name"], "value");
  EXPECT_LT(regression["test_rmse"].get<double>(), 1.0) << regression.dump();
  EXPECT_GT(regression["test_r2"].get<double>(), 0.7) << regression.dump();
  EXPECT_FALSE(regression.contains("test_accuracy")) << regression.dump();
}

TEST_F(TaskExportSkewTest, BinaryRowsGiveTheSameOutputsThroughPredictAndServe) {
  std::string output;
  const auto rows = Predict("binary", &output);
  EXPECT_NE(output.find(", AUC "), std::string::npos) << output;  // the label column was there
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "probability", "class", "class_name"}));

  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json response = Infer(serve, "binary", {{"inputs", Inputs(/*binary=*/true)}});
  const json probability = Output(response, "probability"), classes = Output(response, "class"),
             names = Output(response, "class_name");
  ASSERT_EQ(probability["data"].size(), static_cast<size_t>(kRows)) << response.dump();
  EXPECT_EQ(probability["shape"], json({kRows, 1}));
  ASSERT_EQ(classes["data"].size(), static_cast<size_t>(kRows)) << response.dump();
  EXPECT_EQ(classes["datatype"], "INT64");
  ASSERT_EQ(names["data"].size(), static_cast<size_t>(kRows)) << response.dump();
  int positives = 0;
  for (int r = 0; r < kRows; ++r) {
    const float served = static_cast<float>(probability["data"][r].get<double>());
    EXPECT_EQ(served, ParseFloat(rows[r + 1][1])) << "row " << r;
    EXPECT_EQ(std::to_string(classes["data"][r].get<int64_t>()), rows[r + 1][2]) << "row " << r;
    EXPECT_EQ(names["data"][r].get<std::string>(), rows[r + 1][3]) << "row " << r;
    EXPECT_EQ(rows[r + 1][3], served > 0.5f ? "yes" : "no") << "row " << r;
    positives += rows[r + 1][2] == "1";
  }
  EXPECT_GT(positives, 0);  // both classes are predicted
  EXPECT_LT(positives, kRows);

  const json metadata = Metadata(serve, "binary");
  std::vector<std::string> outputs;
  for (const json& o : metadata["outputs"]) outputs.push_back(o["name"]);
  EXPECT_EQ(outputs, (std::vector<std::string>{"logits", "probability", "class", "class_name"})) << metadata.dump();

  // Worker processes give the same AUC and log loss, read back from their rows.
  std::string workers_output;
  Predict("binary", &workers_output, /*workers=*/3);
  ASSERT_NE(workers_output.find(", AUC "), std::string::npos) << workers_output;
  EXPECT_EQ(workers_output.substr(workers_output.find(", AUC ")), output.substr(output.find(", AUC ")));
}

TEST_F(TaskExportSkewTest, RegressionRowsGiveTheSameValuesThroughPredictAndServe) {
  std::string output;
  const auto rows = Predict("regression", &output);
  EXPECT_NE(output.find(", RMSE "), std::string::npos) << output;
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows + 1));
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "value"}));

  ServeProcess serve = StartServe({"--model-repo", *dir_ + "/repo", "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const json response = Infer(serve, "regression", {{"inputs", Inputs(/*binary=*/false)}});
  ASSERT_EQ(response["outputs"].size(), 1u) << response.dump();
  const json value = Output(response, "value");
  ASSERT_EQ(value["data"].size(), static_cast<size_t>(kRows)) << response.dump();
  const std::vector<Row> truth = PlantedRows(kRows, 3, /*binary=*/false);
  for (int r = 0; r < kRows; ++r) {
    const float served = static_cast<float>(value["data"][r].get<double>());
    EXPECT_EQ(served, ParseFloat(rows[r + 1][1])) << "row " << r;
    EXPECT_NEAR(served, std::strtod(truth[r].label.c_str(), nullptr), 1.5) << "row " << r;
  }
  // Asking for an output a regression does not have is the client's mistake.
  json body = {{"inputs", Inputs(/*binary=*/false)}, {"outputs", {{{"name", "probabilities"}}}}};
  httplib::Client client("127.0.0.1", serve.port);
  auto refused = client.Post("/v2/models/regression/infer", body.dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400) << refused->body;

  const json metadata = Metadata(serve, "regression");
  ASSERT_EQ(metadata["outputs"].size(), 1u) << metadata.dump();
  EXPECT_EQ(metadata["outputs"][0]["name"], "value");

  std::string workers_output;
  Predict("regression", &workers_output, /*workers=*/3);
  ASSERT_NE(workers_output.find(", RMSE "), std::string::npos) << workers_output;
  EXPECT_EQ(workers_output.substr(workers_output.find(", RMSE ")), output.substr(output.find(", RMSE ")));
}

// A manifest whose task is not its model.onnx's (edited by hand, or copied
// from another version) is refused in one line: its outputs would be read
// by the wrong rule.
TEST_F(TaskExportSkewTest, AManifestWhoseTaskIsNotTheModelsIsRefused) {
  const std::string version = *dir_ + "/wrong-task/binary/1";
  std::filesystem::create_directories(version);
  std::filesystem::copy_file(*dir_ + "/repo/binary/1/model.onnx", version + "/model.onnx");
  json manifest = json::parse(FileText(*dir_ + "/repo/binary/1/manifest.json"));
  manifest["task"] = "regression";
  manifest.erase("class_names");
  WriteText(version + "/manifest.json", manifest.dump(2));
  CommandResult r = RunTessera({"predict", version, *dir_ + "/binary-rows.csv", "--out", *dir_ + "/wrong.csv",
                                "--progress", "none", "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("task \"regression\", and model.onnx's outputs are a binary model's"), std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(*dir_ + "/wrong.csv"));
}

}  // namespace
}  // namespace tessera
