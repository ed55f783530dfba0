// Categorical columns (core/categorical, their part of core/table_data, and
// scheduler/table_vocabulary): the hash pinned to its published values,
// vocabulary order, ties and min_count, missing and out-of-vocabulary ids,
// a table's ids read back, the stored vocabularies and their decoder.
#include "core/categorical.h"

#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "core/vocabulary_counter.h"
#include "scheduler/table_vocabulary.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CategoricalTest, Fnv1a64MatchesThePublishedValues) {
  // The FNV-1a 64 test vectors (offset basis for "", then "a" and "foobar").
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
  EXPECT_EQ(Fnv1a64("Paris"), 0xcbb57d0e13c03ee0ULL);
}

proto::CategoricalColumn Hashed(int buckets) {
  proto::CategoricalColumn c;
  c.set_name("c");
  c.set_hash_buckets(buckets);
  return c;
}

TEST(CategoricalTest, HashedIdsArePinnedAndAMissingValueIsZero) {
  const CategoricalIds ids(Hashed(1000));
  EXPECT_EQ(ids.rows(), 1001);
  EXPECT_EQ(ids.Id(""), 0);         // missing
  EXPECT_EQ(ids.Id("a"), 997);      // 1 + 0xaf63dc4c8601ec8c % 1000
  EXPECT_EQ(ids.Id("foobar"), 969);
  EXPECT_EQ(ids.Id("Paris"), 1);
  EXPECT_EQ(ids.Id("42"), 692);     // integers are their text's bytes
  const CategoricalIds ten(Hashed(10));
  EXPECT_EQ(ten.Id("a"), 7);
  std::mt19937 rng(5);
  for (int i = 0; i < 1000; ++i) {
    const int64_t id = ten.Id(std::to_string(rng()));
    EXPECT_GE(id, 1);
    EXPECT_LE(id, 10);
  }
}

proto::VocabularySpec Vocabulary(int max_size, int64_t min_count) {
  proto::VocabularySpec spec;
  spec.set_max_size(max_size);
  spec.set_min_count(min_count);
  return spec;
}

TEST(CategoricalTest, VocabularyIsByDescendingCountThenBytewise) {
  VocabularyCounter counter;
  for (const char* v : {"b", "a", "c", "b", "", "B", "c", "b", "d", "", "a"}) ASSERT_OK(counter.Add(v));
  auto all = counter.Build(Vocabulary(0, 1), "c");
  ASSERT_OK(all.status());
  // "" is missing, not a value; b 3, then a and c 2 (bytewise), then B and d 1 ("B" < "d": bytes, not case-folded).
  EXPECT_THAT(*all, ElementsAre("b", "a", "c", "B", "d"));
  auto frequent = counter.Build(Vocabulary(0, 2), "c");
  ASSERT_OK(frequent.status());
  EXPECT_THAT(*frequent, ElementsAre("b", "a", "c"));
  auto capped = counter.Build(Vocabulary(2, 1), "c");
  ASSERT_OK(capped.status());
  EXPECT_THAT(*capped, ElementsAre("b", "a"));
  auto none = counter.Build(Vocabulary(0, 4), "c");
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
}

TEST(CategoricalTest, VocabularyIdsStartAtOneAndTheRestAreZero) {
  proto::CategoricalColumn c;
  c.set_name("city");
  for (const char* v : {"Paris", "Oslo", "Lima"}) c.add_vocabulary(v);
  ASSERT_OK(ValidateCategoricalColumn(c));
  const CategoricalIds ids(c);
  EXPECT_EQ(ids.rows(), 4);
  EXPECT_EQ(ids.Id("Paris"), 1);
  EXPECT_EQ(ids.Id("Lima"), 3);
  EXPECT_EQ(ids.Id("Rome"), 0);   // out of the vocabulary
  EXPECT_EQ(ids.Id(""), 0);       // missing
  EXPECT_EQ(ids.Id("paris"), 0);  // bytes, not case-folded
}

TEST(CategoricalTest, ValidateRefusesBadColumns) {
  proto::CategoricalColumn c = Hashed(kMaxCategoricalIds);
  EXPECT_THAT(ValidateCategoricalColumn(c).message(), HasSubstr("hash_buckets 16777216 out of [0, 16777215]"));
  c = Hashed(-1);
  EXPECT_EQ(ValidateCategoricalColumn(c).code(), StatusCode::kDataLoss);
  c = Hashed(4);
  c.add_vocabulary("x");
  EXPECT_THAT(ValidateCategoricalColumn(c).message(), HasSubstr("both hash_buckets and a vocabulary"));
  c = Hashed(0);
  c.add_vocabulary("x");
  c.add_vocabulary("x");
  EXPECT_THAT(ValidateCategoricalColumn(c).message(), HasSubstr("empty or a repeated value"));
  c = Hashed(0);
  c.add_vocabulary("");
  EXPECT_THAT(ValidateCategoricalColumn(c).message(), HasSubstr("empty or a repeated value"));
  c = Hashed(3);
  c.set_column(-2);
  EXPECT_EQ(ValidateCategoricalColumn(c).code(), StatusCode::kDataLoss);
}

// ---------------------------------------------------------------- in a table

proto::DataSpec CityData(const std::string& dir) {
  proto::DataSpec data;
  data.set_format(proto::DataSpec::CSV);
  data.set_dir(dir);
  data.add_train_files("train.csv");
  data.add_test_files("test.csv");
  proto::TableSpec* t = data.mutable_table();
  t->set_label_column("label");
  proto::CategoricalColumnSpec* city = t->add_categorical_columns();
  city->set_name("city");
  city->mutable_vocabulary()->set_min_count(1);
  proto::CategoricalColumnSpec* code = t->add_categorical_columns();
  code->set_name("code");
  code->set_hash_buckets(1000);
  return data;
}

constexpr char kCityTrain[] =
    "city,x,label,code\n"
    "Oslo,1,0,a\n"
    "Lima,2,1,foobar\n"
    "\"Oslo\",3,0,\n"
    ",4,1,42\n"
    "Lima,5,1,a\n"
    "Oslo,6,0,a\n";

TEST(CategoricalTableTest, IdsFollowTheNumericFeatures) {
  ScopedTestDir dir;
  WriteText(dir.File("train.csv"), kCityTrain);
  WriteText(dir.File("test.csv"), "city,x,label,code\nRome,7,0,a\nLima,8,1,Paris\n");
  const proto::DataSpec data = CityData(dir.path());
  auto table = DescribeTable(data);
  ASSERT_OK(table.status());
  // Without feature_columns every column but the label and the categorical ones is a feature.
  EXPECT_THAT(table->feature_columns(), ElementsAre(1));
  ASSERT_EQ(table->categorical_columns_size(), 2);
  EXPECT_EQ(table->categorical_columns(0).column(), 0);
  EXPECT_THAT(table->categorical_columns(0).vocabulary(), ElementsAre("Oslo", "Lima"));  // 3, then 2
  EXPECT_EQ(table->categorical_columns(1).column(), 3);
  EXPECT_EQ(table->categorical_columns(1).hash_buckets(), 1000);
  EXPECT_EQ(TableExampleValues(*table), 3);
  ASSERT_OK(ValidateTableData(data, *table, 6, 2));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTraining, *table, table->train_blocks(0), &x, &labels));
  ASSERT_EQ(x.size(), 18u);
  // Per record: x (standardized, not checked here), city id, code id.
  const std::vector<float> ids = {x[1], x[2], x[4], x[5], x[7], x[8], x[10], x[11], x[13], x[14], x[16], x[17]};
  EXPECT_THAT(ids, ElementsAre(1, 997, 2, 969, 1, 0, 0, 692, 2, 997, 1, 997));
  ASSERT_OK(ReadTableBlock(data, Split::kTest, *table, table->test_blocks(0), &x, &labels));
  EXPECT_EQ(x[1], 0);  // Rome: never seen in training
  EXPECT_EQ(x[4], 2);
  EXPECT_EQ(x[5], 1);  // "Paris" hashes to bucket 0
}

TEST(CategoricalTableTest, StoredVocabulariesReplaceTheBuiltOnes) {
  ScopedTestDir dir;
  WriteText(dir.File("train.csv"), kCityTrain);
  WriteText(dir.File("test.csv"), "city,x,label,code\nLima,8,1,a\n");
  const proto::DataSpec data = CityData(dir.path());
  auto built = DescribeTable(data);
  ASSERT_OK(built.status());
  proto::TableVocabularies stored;
  stored.set_format_version(1);
  *stored.mutable_columns() = built->categorical_columns();
  stored.mutable_columns(0)->mutable_vocabulary()->SwapElements(0, 1);  // Lima first now
  auto table = DescribeTable(data, nullptr, &stored);
  ASSERT_OK(table.status());
  EXPECT_THAT(table->categorical_columns(0).vocabulary(), ElementsAre("Lima", "Oslo"));
  std::vector<float> x;
  std::vector<float> labels;
  ASSERT_OK(ReadTableBlock(data, Split::kTest, *table, table->test_blocks(0), &x, &labels));
  EXPECT_EQ(x[1], 1);

  stored.mutable_columns(1)->set_hash_buckets(10);
  EXPECT_THAT(DescribeTable(data, nullptr, &stored).status().message(),
              HasSubstr("categorical column 'code': 10 hash buckets, the spec 1000"));
  stored.mutable_columns()->RemoveLast();
  EXPECT_THAT(DescribeTable(data, nullptr, &stored).status().message(),
              HasSubstr("the stored vocabularies hold 1 categorical columns, the spec 2"));
}

TEST(CategoricalTableTest, AnUnknownColumnIsOneLine) {
  ScopedTestDir dir;
  WriteText(dir.File("train.csv"), kCityTrain);
  WriteText(dir.File("test.csv"), kCityTrain);
  proto::DataSpec data = CityData(dir.path());
  data.mutable_table()->mutable_categorical_columns(1)->set_name("zip");
  EXPECT_THAT(DescribeTable(data).status().message(),
              HasSubstr("train.csv: no column 'zip' (data.table.categorical_columns); the header has city, x, "
                        "label, code"));
}

TEST(CategoricalTableTest, ValidateTableDataRefusesMismatchedColumns) {
  ScopedTestDir dir;
  WriteText(dir.File("train.csv"), kCityTrain);
  WriteText(dir.File("test.csv"), kCityTrain);
  const proto::DataSpec data = CityData(dir.path());
  auto table = DescribeTable(data);
  ASSERT_OK(table.status());
  proto::TableData bad = *table;
  bad.mutable_categorical_columns()->RemoveLast();
  EXPECT_THAT(ValidateTableData(data, bad, 6, 6).message(), HasSubstr("1 categorical columns, the spec 2"));
  bad = *table;
  bad.mutable_categorical_columns(0)->add_vocabulary("Oslo");
  EXPECT_EQ(ValidateTableData(data, bad, 6, 6).code(), StatusCode::kDataLoss);
}

// ---------------------------------------------------------------- the stored file

TEST(TableVocabularyFileTest, RoundTripsAndRefusesDamage) {
  ScopedTestDir dir;
  EXPECT_EQ(ReadTableVocabularies(dir.path()).status().code(), StatusCode::kFailedPrecondition);
  proto::TableData table;
  proto::CategoricalColumn* c = table.add_categorical_columns();
  c->set_name("city");
  c->set_column(2);
  for (const char* v : {"Oslo", "Lima"}) c->add_vocabulary(v);
  ASSERT_OK(WriteTableVocabularies(dir.path(), table));
  auto read = ReadTableVocabularies(dir.path());
  ASSERT_OK(read.status());
  EXPECT_EQ(read->format_version(), 1);
  EXPECT_EQ(read->columns(0).DebugString(), c->DebugString());

  const std::string path = dir.File(kTableVocabularyFile);
  auto bytes = ReadFileToString(path);
  ASSERT_OK(bytes.status());
  // Truncated and random bytes: DataLoss (or a valid message another check refuses), never a crash.
  std::mt19937 rng(11);
  for (size_t cut = 0; cut < bytes->size(); ++cut) {
    WriteText(path, bytes->substr(0, cut));
    auto r = ReadTableVocabularies(dir.path());
    // Cut between fields it parses, but without the column (which the spec's check then misses).
    if (r.ok()) {
      EXPECT_EQ(r->columns_size(), 0) << cut;
    } else {
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << cut << ": " << r.status().message();
    }
  }
  for (int i = 0; i < 200; ++i) {
    std::string noise = *bytes;
    noise[rng() % noise.size()] = static_cast<char>(rng());
    WriteText(path, noise);
    auto r = ReadTableVocabularies(dir.path());
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().message();
    }
  }
  proto::TableVocabularies other;
  other.set_format_version(2);
  WriteText(path, other.SerializeAsString());
  EXPECT_THAT(ReadTableVocabularies(dir.path()).status().message(), HasSubstr("format_version 2, expected 1"));
}

// ---------------------------------------------------------------- the spec

proto::JobSpec CategoricalJob(const std::string& columns, const std::string& first_layer) {
  StatusOr<proto::JobSpec> spec = ParseJobSpec(
      "model { layer { " + first_layer + " } layer { linear { out_features: 3 } } }\n"
      "data { format: CSV train_files: \"train.csv\" test_files: \"test.csv\"\n"
      "       table { label_column: \"y\" " + columns + " } }\n",
      "csv.pbtxt");
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : proto::JobSpec();
}

TEST(CategoricalSpecTest, ValidateJobSpecRefusesEachMistakeInOneLine) {
  const std::string embed = "column_embedding { embedding_dim: 4 }";
  EXPECT_OK(ValidateJobSpec(CategoricalJob("categorical_columns { name: \"c\" hash_buckets: 16777215 }", embed)));
  EXPECT_OK(ValidateJobSpec(
      CategoricalJob("categorical_columns { name: \"c\" vocabulary { max_size: 100 min_count: 2 } }", embed)));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"categorical_columns { name: \"y\" hash_buckets: 8 }", "data.table.categorical_columns[0] 'y' is the label column"},
      {"feature_columns: \"a\" categorical_columns { name: \"a\" hash_buckets: 8 }",
       "data.table.categorical_columns[0] 'a' is also in data.table.feature_columns (a column is numeric or "
       "categorical, not both)"},
      {"categorical_columns { name: \"c\" hash_buckets: 0 }",
       "data.table.categorical_columns[0] 'c': hash_buckets must be in [1, 16777215] (ids travel as float32), got 0"},
      {"categorical_columns { name: \"c\" hash_buckets: 16777216 }",
       "data.table.categorical_columns[0] 'c': hash_buckets must be in [1, 16777215] (ids travel as float32), got "
       "16777216"},
      {"categorical_columns { name: \"c\" vocabulary { max_size: 16777216 } }",
       "data.table.categorical_columns[0] 'c': vocabulary.max_size must be in [0, 16777215] (ids travel as float32), "
       "got 16777216"},
      {"categorical_columns { name: \"c\" vocabulary { min_count: 0 } }",
       "data.table.categorical_columns[0] 'c': vocabulary.min_count must be >= 1, got 0"},
      {"categorical_columns { name: \"c\" }", "data.table.categorical_columns[0] 'c' needs hash_buckets or a vocabulary"},
      {"categorical_columns { hash_buckets: 3 }", "data.table.categorical_columns[0].name must name a column"},
      {"categorical_columns { name: \"c\" hash_buckets: 3 } categorical_columns { name: \"c\" hash_buckets: 3 }",
       "data.table.categorical_columns[1] 'c' is listed twice"},
  };
  for (const auto& [columns, message] : cases) {
    const Status s = ValidateJobSpec(CategoricalJob(columns, embed));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << columns;
    EXPECT_EQ(s.message(), message);
  }
  // The model and the columns go together.
  EXPECT_EQ(ValidateJobSpec(CategoricalJob("categorical_columns { name: \"c\" hash_buckets: 3 }",
                                           "linear { out_features: 5 }"))
                .message(),
            "data.table.categorical_columns give ids: the model's first layer must be a column_embedding");
  EXPECT_EQ(ValidateJobSpec(CategoricalJob("", embed)).message(),
            "model.layer[0] is a column_embedding: it needs a CSV or TSV table with data.table.categorical_columns");
  proto::JobSpec second = CategoricalJob("categorical_columns { name: \"c\" hash_buckets: 3 }", embed);
  *second.mutable_model()->add_layer() = second.model().layer(0);
  EXPECT_EQ(ValidateJobSpec(second).message(),
            "model.layer[2] is a column_embedding: it must be the first layer (its inputs are the table's examples)");
}

}  // namespace
}  // namespace tessera
