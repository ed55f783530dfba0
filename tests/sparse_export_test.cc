// Export and serving of models over sparse tables (issue 16): a checkpoint's
// table gathered from every server part, the ONNX model that carries it
// (and keeps it as external data past a threshold), the importer that reads
// it back and refuses bad external data in one line, and, with real
// processes, a trained CTR model exported and predicted with exactly
// training's test AUC and log loss.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/criteo_format.h"
#include "core/csv_reader.h"
#include "core/file_util.h"
#include "core/sparse_id.h"
#include "core/task_metrics.h"
#include "export/onnx_export.h"
#include "export/onnx_external_data.h"
#include "export/onnx_import.h"
#include "export/runtime_model.h"
#include "export/sparse_table_rows.h"
#include "server/sparse_table_file.h"
#include "tests/skew_test_util.h"
#include "tests/test_util.h"
#include "tools/child_process.h"
#include "tools/progress_view.h"
#include "worker/sparse_batch.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr int kDim = 4;
constexpr int64_t kNumeric = 2, kFields = 3;

proto::ModelSpec SparseModelSpec() {
  proto::ModelSpec spec = ParseModel(R"pb(
    layer { sparse_embedding { table: "ids" fields: 3 } }
    layer { linear { out_features: 5 } }
    layer { relu {} }
    layer { linear { out_features: 1 } }
  )pb");
  proto::SparseTableSpec* table = spec.add_sparse_table();
  table->set_name("ids");
  table->set_dim(kDim);
  spec.set_loss(proto::SIGMOID_BINARY_CROSS_ENTROPY);
  return spec;
}

SparseTableRows SmallTable(int64_t count) {
  SparseTableRows t;
  t.name = "ids";
  t.dim = kDim;
  for (int64_t k = 0; k < count; ++k) {
    t.ids.push_back(uint64_t{0x9e3779b97f4a7c15} * static_cast<uint64_t>(k + 1) / 3 + static_cast<uint64_t>(k));
  }
  std::sort(t.ids.begin(), t.ids.end());
  for (int64_t k = 0; k < count * kDim; ++k) t.values.push_back(std::sin(0.37f * static_cast<float>(k)));
  return t;
}

struct Exported {
  proto::ModelSpec spec;
  std::vector<float> params;
  SparseTableRows table;
  onnx::ModelProto onnx;
};

Exported MakeExported(int64_t rows) {
  Exported e;
  e.spec = SparseModelSpec();
  e.table = SmallTable(rows);
  auto model = Model::Create(e.spec, {kNumeric + kFields}, 2, Device::kCpu);
  EXPECT_OK(model.status());
  for (uint64_t k = 0; k < (*model)->num_keys(); ++k) e.params.push_back(std::cos(0.11f * static_cast<float>(k)));
  OnnxExportOptions options;
  options.sparse_table = &e.table;
  auto onnx = BuildOnnxModel(e.spec, {kNumeric + kFields}, 2, e.params.data(), e.params.size(), options);
  EXPECT_OK(onnx.status());
  if (onnx.ok()) e.onnx = *std::move(onnx);
  return e;
}

// The model's logits for examples x[batch, numeric + fields] whose id slots
// are taken from ids[batch * fields], computed the training way: the batch's
// rows bound, each slot its row among them.
std::vector<float> Logits(Model* model, const SparseTableRows& table, std::vector<float> x,
                          const std::vector<uint64_t>& ids, int64_t batch) {
  auto sparse = MakeSparseBatch(ids, batch, kNumeric, kFields, x.data());
  EXPECT_OK(sparse.status());
  std::vector<float> rows;
  GatherBatchRows(table, sparse->ids, &rows);
  model->BindSparseRows(rows.data(), nullptr, static_cast<int64_t>(sparse->ids.size()));
  const float* logits = model->Infer(x.data(), batch);
  return std::vector<float>(logits, logits + batch);
}

TEST(SparseExportTest, TheGraphCarriesTheTableAndImportsBackToTheSameLogits) {
  Exported e = MakeExported(50);
  ASSERT_OK(CheckOnnxModel(e.onnx));
  auto imported = ImportOnnxModel(e.onnx);
  ASSERT_OK(imported.status());
  ASSERT_NE(imported->sparse_table, nullptr);
  EXPECT_EQ(imported->sparse_table->ids, e.table.ids);
  EXPECT_EQ(imported->sparse_table->values, e.table.values);
  EXPECT_EQ(imported->input_shape, (Shape{kNumeric + kFields}));
  EXPECT_EQ(imported->params, e.params);
  auto runtime = BuildRuntimeModel(*imported);
  ASSERT_OK(runtime.status());
  auto trained = Model::Create(e.spec, {kNumeric + kFields}, 2, Device::kCpu);
  ASSERT_OK(trained.status());
  std::copy(e.params.begin(), e.params.end(), (*trained)->params());
  // Ids the table holds, one it does not (zeros), empty fields (nothing).
  const std::vector<float> x = {0.5f, -1, -1, -1, -1, 2.0f, 0.25f, -1, -1, -1, 0, 0, -1, -1, -1};
  const std::vector<uint64_t> ids = {e.table.ids[3], e.table.ids[49], 12345, kNoSparseId, e.table.ids[3], kNoSparseId,
                                     kNoSparseId, kNoSparseId, kNoSparseId};
  const std::vector<float> a = Logits(runtime->get(), *imported->sparse_table, x, ids, 3);
  const std::vector<float> b = Logits(trained->get(), e.table, x, ids, 3);
  ASSERT_EQ(a.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << "example " << i;
  // An unseen id reads zeros: the same logit as an empty field.
  const std::vector<uint64_t> unseen = {777, kNoSparseId, kNoSparseId};
  const std::vector<uint64_t> empty = {kNoSparseId, kNoSparseId, kNoSparseId};
  const std::vector<float> one(x.begin(), x.begin() + kNumeric + kFields);
  EXPECT_EQ(Logits(runtime->get(), *imported->sparse_table, one, unseen, 1),
            Logits(runtime->get(), *imported->sparse_table, one, empty, 1));
}

TEST(SparseExportTest, AModelOfMoreThanTheThresholdKeepsItsTableAsExternalData) {
  Exported e = MakeExported(1000);
  std::string inline_bytes;
  ASSERT_TRUE(e.onnx.SerializeToString(&inline_bytes));
  std::vector<std::string> pieces;
  const uint64_t moved = MoveInitializersToExternalData(&e.onnx, /*threshold=*/4096, &pieces);
  // The table (1001 rows of 4 floats) and its ids (1000 uint64) leave; the small weights stay.
  EXPECT_EQ(moved, 1001u * kDim * 4 + 1000u * 8);
  ASSERT_EQ(pieces.size(), 2u);
  const std::string dir = MakeTempDir("sparse-export-external");
  ASSERT_OK(WriteExternalDataFile(dir + "/" + kExternalDataFileName, pieces));
  EXPECT_EQ(fs::file_size(dir + "/" + kExternalDataFileName), moved);
  std::string outside;
  ASSERT_TRUE(e.onnx.SerializeToString(&outside));
  EXPECT_LT(outside.size() + moved / 2, inline_bytes.size());
  ASSERT_OK(LoadExternalData(&e.onnx, dir));
  std::string back;
  ASSERT_TRUE(e.onnx.SerializeToString(&back));
  EXPECT_EQ(back, inline_bytes);
  // Below the threshold nothing moves.
  std::vector<std::string> none;
  EXPECT_EQ(MoveInitializersToExternalData(&e.onnx, uint64_t{1} << 40, &none), 0u);
  EXPECT_TRUE(none.empty());
}

// The model with its table in `dir`/model.onnx.data, then `damage` applied
// to the table's entries or the file; LoadExternalData's status.
Status LoadDamaged(const std::string& name, const std::function<void(onnx::TensorProto*, const std::string&)>& damage) {
  Exported e = MakeExported(300);
  std::vector<std::string> pieces;
  MoveInitializersToExternalData(&e.onnx, 4096, &pieces);
  const std::string dir = MakeTempDir("sparse-export-" + name);
  EXPECT_OK(WriteExternalDataFile(dir + "/" + kExternalDataFileName, pieces));
  for (onnx::TensorProto& t : *e.onnx.mutable_graph()->mutable_initializer()) {
    if (t.name() == "layer0.sparse_embedding.table") damage(&t, dir);
  }
  return LoadExternalData(&e.onnx, dir);
}

void SetEntry(onnx::TensorProto* t, const std::string& key, const std::string& value) {
  for (auto& entry : *t->mutable_external_data()) {
    if (entry.key() == key) {
      entry.set_value(value);
      return;
    }
  }
  auto* entry = t->add_external_data();
  entry->set_key(key);
  entry->set_value(value);
}

TEST(SparseExportTest, BadOrTruncatedExternalDataIsRefusedInOneLine) {
  struct Case {
    std::string name, expected;
    std::function<void(onnx::TensorProto*, const std::string&)> damage;
  };
  const std::vector<Case> cases = {
      {"truncated", "past the end",
       [](onnx::TensorProto*, const std::string& dir) {
         fs::resize_file(dir + "/" + kExternalDataFileName, 1000);
       }},
      {"parent", "leaves the model's directory",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "location", "../model.onnx.data"); }},
      {"absolute", "must be a relative path",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "location", "/etc/passwd"); }},
      {"link", "outside the model's directory",
       [](onnx::TensorProto* t, const std::string& dir) {
         fs::create_symlink("/etc/hostname", dir + "/link.data");
         SetEntry(t, "location", "link.data");
       }},
      {"missing", "does not exist",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "location", "nothing.data"); }},
      {"length", "expected 4816 bytes",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "length", "16"); }},
      {"offset", "past the end",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "offset", "18446744073709551615"); }},
      {"overflow", "not a decimal byte count",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "offset", "18446744073709551616"); }},
      {"words", "not a decimal byte count",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "length", "-4"); }},
      {"key", "unknown external data key",
       [](onnx::TensorProto* t, const std::string&) { SetEntry(t, "basepath", "x"); }},
      {"no-location", "without a location",
       [](onnx::TensorProto* t, const std::string&) {
         auto* entries = t->mutable_external_data();
         for (int i = 0; i < entries->size(); ++i) {
           if (entries->Get(i).key() == "location") entries->DeleteSubrange(i, 1);
         }
       }},
  };
  for (const Case& c : cases) {
    const Status s = LoadDamaged(c.name, c.damage);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.name << ": " << s.message();
    EXPECT_NE(s.message().find(c.expected), std::string::npos) << c.name << ": " << s.message();
    EXPECT_NE(s.message().find("layer0.sparse_embedding.table"), std::string::npos) << c.name;
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << c.name;
  }
}

// Random bytes over the file and random entries: refused or read, never a crash.
TEST(SparseExportTest, RandomExternalEntriesNeverCrash) {
  std::mt19937 rng(7);
  for (int round = 0; round < 40; ++round) {
    const uint64_t offset = rng() % 20000, length = rng() % 20000;
    const Status s = LoadDamaged("random-" + std::to_string(round), [&](onnx::TensorProto* t, const std::string& dir) {
      SetEntry(t, "offset", std::to_string(offset));
      SetEntry(t, "length", std::to_string(length));
      fs::resize_file(dir + "/" + kExternalDataFileName, rng() % 20000);
    });
    if (!s.ok()) {
      EXPECT_EQ(s.message().find('\n'), std::string::npos);
    }
  }
}

// A checkpoint of two server parts, their rows written as the servers write them.
TEST(SparseExportTest, ACheckpointsTableIsGatheredFromEveryServerPartInIdOrder) {
  const std::string dir = MakeTempDir("sparse-export-parts");
  proto::CheckpointManifest m;
  m.set_step(40);
  *m.mutable_spec()->mutable_model() = SparseModelSpec();
  const std::vector<std::vector<uint64_t>> part_ids = {{5, 90, 1000}, {7, 8, 2000000000000}};
  for (int p = 0; p < 2; ++p) {
    proto::ServerPart* part = m.add_servers();
    part->set_dir("server-" + std::to_string(p));
    fs::create_directories(dir + "/" + part->dir());
    SparseTableSnapshot snapshot;
    snapshot.name = "ids";
    snapshot.dim = kDim;
    snapshot.state_floats = kDim;  // AdaGrad's accumulators: not exported
    snapshot.step = 40;
    const std::vector<uint64_t> ids = part_ids[p];
    snapshot.for_each_row = [ids](const SparseRowVisitor& visit) {
      for (uint64_t id : ids) {
        std::vector<float> row(2 * kDim);
        for (int k = 0; k < kDim; ++k) row[k] = static_cast<float>(id) + 0.25f * k;
        for (int k = kDim; k < 2 * kDim; ++k) row[k] = -1;
        RETURN_IF_ERROR(visit(id, row.data(), 1));
      }
      return OkStatus();
    };
    ASSERT_OK(WriteSparseTableFile(dir + "/" + part->dir() + "/" + SparseTableFileName(0), snapshot).status());
  }
  auto rows = ReadCheckpointTableRows(dir, m, 0);
  ASSERT_OK(rows.status());
  EXPECT_EQ(rows->ids, (std::vector<uint64_t>{5, 7, 8, 90, 1000, 2000000000000}));
  ASSERT_EQ(rows->values.size(), 6u * kDim);
  EXPECT_EQ(rows->values[3 * kDim + 1], 90.25f);
  EXPECT_EQ(rows->RowOf(1000), 4);
  EXPECT_EQ(rows->RowOf(6), -1);
  // Another step than the manifest's: not this cut's table.
  m.set_step(41);
  auto other = ReadCheckpointTableRows(dir, m, 0);
  EXPECT_EQ(other.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(other.status().message().find("at step 40"), std::string::npos) << other.status().message();
  // The same id on two servers: refused.
  m.set_step(40);
  fs::copy_file(dir + "/server-0/sparse-0.rows", dir + "/server-1/sparse-0.rows",
                fs::copy_options::overwrite_existing);
  auto twice = ReadCheckpointTableRows(dir, m, 0);
  EXPECT_EQ(twice.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(twice.status().message().find("in two server parts"), std::string::npos) << twice.status().message();
}

TEST(SparseExportTest, OnlyOneValuePerFieldExports) {
  proto::ModelSpec spec = SparseModelSpec();
  spec.mutable_layer(0)->mutable_sparse_embedding()->set_values_per_field(2);
  const SparseTableRows table = SmallTable(4);
  OnnxExportOptions options;
  options.sparse_table = &table;
  auto model = Model::Create(spec, {kNumeric + 2 * kFields}, 2, Device::kCpu);
  ASSERT_OK(model.status());
  std::vector<float> params((*model)->num_keys(), 0.5f);
  auto onnx = BuildOnnxModel(spec, {kNumeric + 2 * kFields}, 2, params.data(), params.size(), options);
  EXPECT_EQ(onnx.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(onnx.status().message().find("values_per_field 2 cannot be exported yet"), std::string::npos)
      << onnx.status().message();
}

// --- real processes: train, export, predict ---

void MakeCriteo(const std::string& path, int rows, int rows_seed) {
  auto child = ChildProcess::Start("make_criteo",
                                   {TESSERA_MAKE_CRITEO, "--rows", std::to_string(rows), "--seed", "5", "--rows_seed",
                                    std::to_string(rows_seed), "--vocab", "5000", "--out", path},
                                   path + ".log");
  ASSERT_OK(child.status());
  ASSERT_EQ((*child)->Wait(120 * 1000), std::optional<int>(0)) << FileText(path + ".log");
}

// admit_after 2: training reads an id that has no row (never admitted) as
// zeros, which is what the exported table gives every id it lacks. (With
// admit_after 1 training reads a never-pushed id as the random values its
// row would start with, which no exported table holds: docs/FORMATS.md.)
std::string CtrSpec(const std::string& dir) {
  return R"pb(
    name: "ctr"
    data { format: CRITEO dir: ")pb" + dir + R"pb(" train_files: "train.tsv.gz" test_files: "test.tsv.gz" }
    model {
      sparse_table { name: "ids" dim: 8 optimizer { type: ADAGRAD learning_rate: 0.05 } admit_after: 2 }
      layer { sparse_embedding { table: "ids" fields: 26 } }
      layer { linear { out_features: 16 } }
      layer { relu {} }
      layer { linear { out_features: 1 } }
    }
    cluster { servers: 2 workers: 2 }
    optimizer { type: ADAM learning_rate: 0.002 }
    batch_size: 64
    epochs: 1
    seed: 3
  )pb";
}

// The number after `key` in a summary line ("AUC 0.71, log loss 0.5").
double NumberAfter(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + key.size(), nullptr);
}

class SparseExportCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("sparse-export-cli"));
    MakeCriteo(*dir_ + "/train.tsv.gz", 6000, 0);
    MakeCriteo(*dir_ + "/test.tsv.gz", 1500, 1);
    // A few lines: three of the training file's (ids the table holds), then
    // unseen values with empty fields, then every field empty.
    std::string few;
    auto reader = CsvReader::Open(*dir_ + "/train.tsv.gz", CriteoCsvOptions());
    ASSERT_OK(reader.status());
    CsvRecord record;
    for (int line = 0; line < 3; ++line) {
      auto more = (*reader)->Next(&record);
      ASSERT_TRUE(more.ok() && *more);
      for (size_t f = 0; f < record.fields.size(); ++f) {
        if (f > 0) few += '\t';
        few.append(record.fields[f]);
      }
      few += '\n';
    }
    few += "1";
    for (int i = 0; i < 13; ++i) few.append("\t").append(std::to_string(i * 3));
    for (int c = 0; c < 26; ++c) {
      few += '\t';
      // Hex values no training line has (make_criteo writes 8 digits); every third field empty.
      if (c % 3 != 0) few.append("abc").append(std::to_string(100 + c));
    }
    few += "\n0";
    for (int i = 0; i < 13; ++i) few += "\t";
    for (int c = 0; c < 26; ++c) few += "\t";
    few += "\n";
    WriteText(*dir_ + "/few.tsv", few);
    std::ofstream(*dir_ + "/ctr.pbtxt") << CtrSpec(*dir_);
    CommandResult r = RunTessera({"train", *dir_ + "/ctr.pbtxt", "--run-dir", *dir_ + "/run", "--threads", "1",
                                  "--progress", "none"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string* dir_;
};
std::string* SparseExportCliTest::dir_ = nullptr;

TEST_F(SparseExportCliTest, ExportAndPredictGiveTrainingsTestAucAndLogLoss) {
  const std::string repo = *dir_ + "/repo", summary = FileText(*dir_ + "/run/summary.json");
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", repo + "/ctr"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string manifest = FileText(repo + "/ctr/1/manifest.json");
  EXPECT_GT(JsonNumber(summary, "auc"), 0.6) << summary;
  // summary.json gives 9 digits: the AUC equals those (a row read otherwise
  // moves the 5th or 6th). Its log loss is the mean loss of the logits, the
  // manifest's that of the float32 probabilities: a few 1e-9 apart.
  const double auc = JsonNumber(manifest, "test_auc", -1), log_loss = JsonNumber(manifest, "test_log_loss", -1);
  EXPECT_NEAR(auc, JsonNumber(summary, "auc", -2), 1e-9) << manifest;
  EXPECT_NEAR(log_loss, JsonNumber(summary, "log_loss", -2), 1e-7) << manifest;
  EXPECT_NE(manifest.find("\"kind\": \"criteo\""), std::string::npos) << manifest;
  EXPECT_FALSE(FileExists(repo + "/ctr/1/model.onnx.data"));  // far below 2 GiB

  CommandResult p = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/test.tsv.gz", "--out", *dir_ + "/p.csv"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_EQ(NumberAfter(p.output, "AUC "), auc) << p.output;
  EXPECT_EQ(NumberAfter(p.output, "log loss "), log_loss) << p.output;

  // Unseen values and empty fields predict too.
  CommandResult few = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/few.tsv", "--out", *dir_ + "/few.csv"});
  ASSERT_EQ(few.exit_code, 0) << few.output;
  const std::string rows = FileText(*dir_ + "/few.csv");
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 6) << rows;  // the header and five rows
}

TEST_F(SparseExportCliTest, ExternalDataPastATinyThresholdPredictsTheSame) {
  const std::string repo = *dir_ + "/repo-external";
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", repo + "/ctr", "--noevaluate",
                                "--external-data-threshold-bytes", "65536"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(FileExists(repo + "/ctr/1/model.onnx.data"));
  const std::string manifest = FileText(repo + "/ctr/1/manifest.json");
  EXPECT_EQ(JsonNumber(manifest, "bytes", -1), static_cast<double>(fs::file_size(repo + "/ctr/1/model.onnx.data")));
  CommandResult p = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/test.tsv.gz", "--out", *dir_ + "/pe.csv"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NEAR(NumberAfter(p.output, "AUC "), JsonNumber(FileText(*dir_ + "/run/summary.json"), "auc", -2), 1e-9);

  // Truncated: one line naming the tensor and the file, exit 2.
  fs::resize_file(repo + "/ctr/1/model.onnx.data", fs::file_size(repo + "/ctr/1/model.onnx.data") / 2);
  CommandResult bad = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/test.tsv.gz", "--out", *dir_ + "/pb.csv"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("past the end of"), std::string::npos) << bad.output;
}

TEST_F(SparseExportCliTest, Int8AndPruningAreRefusedInOneLine) {
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--quantize", "int8"}, std::vector<std::string>{"--prune-sparsity", "0.5"}}) {
    std::vector<std::string> args = {"export", *dir_ + "/run", "--out", *dir_ + "/repo-refused/ctr"};
    args.insert(args.end(), flags.begin(), flags.end());
    CommandResult r = RunTessera(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("sparse_embedding (a sparse table)"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(*dir_ + "/repo-refused/ctr/1"));
  }
}

// The KServe inputs of few.tsv's lines: I1-I13 as INT64 (null: missing),
// C1-C26 as BYTES (null: missing), [N] each.
nlohmann::json FewInputs(const std::string& path) {
  auto reader = CsvReader::Open(path, CriteoCsvOptions());
  EXPECT_OK(reader.status());
  std::vector<nlohmann::json> data(kCriteoFields - 1, nlohmann::json::array());
  CsvRecord record;
  int64_t rows = 0;
  while (reader.ok()) {
    auto more = (*reader)->Next(&record);
    if (!more.ok() || !*more) break;
    ++rows;
    for (int f = 1; f < kCriteoFields; ++f) {
      const std::string field(record.fields[f]);
      if (field.empty()) {
        data[f - 1].push_back(nullptr);
      } else if (f <= kCriteoIntegerFields) {
        data[f - 1].push_back(std::stoll(field));
      } else {
        data[f - 1].push_back(field);
      }
    }
  }
  nlohmann::json inputs = nlohmann::json::array();
  for (int f = 1; f < kCriteoFields; ++f) {
    inputs.push_back({{"name", CriteoColumnNames()[f]},
                      {"datatype", f <= kCriteoIntegerFields ? "INT64" : "BYTES"},
                      {"shape", {rows}},
                      {"data", data[f - 1]}});
  }
  return inputs;
}

TEST_F(SparseExportCliTest, ServeGivesPredictsProbabilitiesBitForBit) {
  const std::string repo = *dir_ + "/repo-serve";
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", repo + "/ctr", "--noevaluate"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CommandResult p = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/few.tsv", "--out", *dir_ + "/few-serve.csv"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const auto rows = ReadCsv(*dir_ + "/few-serve.csv");
  ASSERT_EQ(rows.size(), 6u);
  const size_t column = std::find(rows[0].begin(), rows[0].end(), "probability") - rows[0].begin();
  ASSERT_LT(column, rows[0].size());

  ServeProcess serve = StartServe({"--model-repo", repo, "--device", "cpu"});
  ASSERT_GT(serve.port, 0);
  const nlohmann::json response = Infer(serve, "ctr", {{"inputs", FewInputs(*dir_ + "/few.tsv")}});
  nlohmann::json probability;
  for (const nlohmann::json& o : response["outputs"]) {
    if (o["name"] == "probability") probability = o["data"];
  }
  ASSERT_EQ(probability.size(), 5u) << response.dump();
  for (size_t row = 0; row < 5; ++row) {
    EXPECT_EQ(static_cast<float>(probability[row].get<double>()), ParseFloat(rows[row + 1][column])) << "row " << row;
  }
  // A categorical field sent as a number is refused in one line.
  nlohmann::json bad = FewInputs(*dir_ + "/few.tsv");
  bad[20]["data"][0] = 1.5;
  httplib::Client client("127.0.0.1", serve.port);
  auto res = client.Post("/v2/models/ctr/infer", nlohmann::json({{"inputs", bad}}).dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_NE(res->body.find("input 'C8' element 0"), std::string::npos) << res->body;
}

// onnxruntime (onnxruntime-node) runs the exported graph on inputs made
// from the model alone (scripts/onnxruntime_criteo_check.js: hashing, the
// sorted ids it carries) and gives predict's probabilities within 1e-5.
// Skipped without it.
TEST_F(SparseExportCliTest, OnnxRuntimeGivesPredictsProbabilities) {
  const char* env = std::getenv("TESSERA_ONNXRUNTIME_NODE");
  const std::string ort = env != nullptr ? env : "/tmp/node_modules/onnxruntime-node";
  if (!FileExists(ort + "/package.json") || !FileExists("/usr/bin/node")) {
    GTEST_SKIP() << "onnxruntime-node not installed (npm install onnxruntime-node)";
  }
  const std::string repo = *dir_ + "/repo-ort";
  CommandResult r = RunTessera({"export", *dir_ + "/run", "--out", repo + "/ctr", "--noevaluate"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CommandResult p = RunTessera({"predict", repo + "/ctr/1", *dir_ + "/few.tsv", "--out", *dir_ + "/few-ort.csv"});
  ASSERT_EQ(p.exit_code, 0) << p.output;
  const std::string command = "NODE_PATH=" + fs::path(ort).parent_path().string() + " /usr/bin/node " +
                              std::string(TESSERA_SOURCE_DIR) + "/scripts/onnxruntime_criteo_check.js " + repo +
                              "/ctr/1 " + *dir_ + "/few.tsv " + *dir_ + "/few-ort.csv > " + *dir_ + "/ort.log 2>&1";
  const int status = std::system(command.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << FileText(*dir_ + "/ort.log");
  EXPECT_NE(FileText(*dir_ + "/ort.log").find("5 rows"), std::string::npos) << FileText(*dir_ + "/ort.log");
}

}  // namespace
}  // namespace tessera
