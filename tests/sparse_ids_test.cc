// A CSV/TSV table's categorical columns as 64-bit ids for a sparse table
// (data.table.sparse_ids), and the checks before a sparse job trains: the
// spec's shape, a memory budget below one batch's rows, the estimate of the
// distinct ids (DistinctCounter) and the disk the spilled rows need
// (scheduler/spill_space.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/categorical.h"
#include "core/criteo_format.h"
#include "core/distinct_counter.h"
#include "core/sparse_id.h"
#include "core/sparse_table_spec.h"
#include "core/spec.h"
#include "core/table_data.h"
#include "scheduler/spill_space.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;

// A TSV table: label, one numeric column "n", categorical "city" and "tag".
proto::JobSpec TsvSpec(const std::string& dir, const std::string& extra_table = "", int fields = 2) {
  StatusOr<proto::JobSpec> spec = ParseJobSpec(R"(name: "ids"
      data { format: TSV dir: ")" + dir + R"(" train_files: "train.tsv" test_files: "test.tsv"
        table { label_column: "y" sparse_ids: true categorical_columns { name: "city" }
                categorical_columns { name: "tag" } )" + extra_table + R"( } }
      model {
        sparse_table { name: "ids" dim: 4 }
        layer { sparse_embedding { table: "ids" fields: )" + std::to_string(fields) + R"( } }
        layer { linear { out_features: 1 } }
      })",
                                               "test");
  EXPECT_OK(spec.status());
  return *spec;
}

TEST(SparseIdsSpecTest, TheColumnsAreTheBagsOfASparseEmbedding) {
  ScopedTestDir dir;
  ASSERT_OK(ValidateJobSpec(TsvSpec(dir.path())));
  EXPECT_EQ(ValidateJobSpec(TsvSpec(dir.path(), "", 3)).message(),
            "data.table.sparse_ids gives 2 bags of one id each (one per categorical column): "
            "model.layer[0].sparse_embedding needs fields: 2 and values_per_field: 1, got 3 and 1");
  proto::JobSpec spec = TsvSpec(dir.path());
  spec.mutable_data()->mutable_table()->mutable_categorical_columns(1)->set_hash_buckets(100);
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "data.table.categorical_columns[1] 'tag': hash_buckets and vocabulary are for a column_embedding's "
            "small ids; with data.table.sparse_ids every value is hashed to a 64-bit id (set neither)");
  spec = TsvSpec(dir.path());
  spec.mutable_data()->mutable_table()->clear_categorical_columns();
  EXPECT_THAT(ValidateJobSpec(spec).message(),
              HasSubstr("data.table.sparse_ids needs 1 to 255 data.table.categorical_columns"));
  // Without sparse_ids the columns are small ids, for a column_embedding.
  spec = TsvSpec(dir.path());
  spec.mutable_data()->mutable_table()->set_sparse_ids(false);
  for (auto& c : *spec.mutable_data()->mutable_table()->mutable_categorical_columns()) c.set_hash_buckets(10);
  EXPECT_THAT(ValidateJobSpec(spec).message(), HasSubstr("the model's first layer must be a column_embedding"));
}

TEST(SparseIdsDataTest, EachColumnsValueIsItsSaltedIdBesideTheFloats) {
  ScopedTestDir dir;
  WriteText(dir.File("train.tsv"), "y\tcity\tn\ttag\n1\tParis\t2.5\tred\n0\t\t4\tParis\n");
  WriteText(dir.File("test.tsv"), "y\tcity\tn\ttag\n1\tRome\t1\tblue\n");
  const proto::JobSpec spec = TsvSpec(dir.path(), "scaling: NONE");
  EXPECT_EQ(TableIdsPerExample(spec.data()), 2);
  double distinct = 0;
  StatusOr<proto::TableData> table = DescribeTable(spec.data(), nullptr, nullptr, proto::TableLabels::BINARY,
                                                   &distinct);
  ASSERT_OK(table.status());
  EXPECT_NEAR(distinct, 3, 0.01);  // Paris (city), Paris (tag), red: the training split's ids
  std::vector<float> x, labels;
  std::vector<uint64_t> ids;
  ASSERT_OK(ReadTableBlock(spec.data(), Split::kTraining, *table, table->train_blocks(0), &x, &labels, &ids));
  EXPECT_EQ(x, (std::vector<float>{2.5f, -1, -1, 4, -1, -1}));
  EXPECT_EQ(labels, (std::vector<float>{1, 0}));
  // Column k's ids are Criteo's field Ck's: the same value in two columns
  // gets two ids; an empty field is none.
  EXPECT_EQ(ids, (std::vector<uint64_t>{CriteoId(1, "Paris"), CriteoId(2, "red"), kNoSparseId, CriteoId(2, "Paris")}));
  EXPECT_NE(CriteoId(1, "Paris"), CriteoId(2, "Paris"));
  EXPECT_EQ(SparseColumnId(1, "Paris"), CriteoId(1, "Paris"));
}

TEST(SparseBudgetTest, ABudgetBelowOneBatchsRowsIsRefusedWithTheNumbers) {
  ScopedTestDir dir;
  proto::JobSpec spec = TsvSpec(dir.path());
  proto::SparseTableSpec* table = spec.mutable_model()->mutable_sparse_table(0);
  table->set_dim(16);  // AdaGrad: 16 values + 16 sums = 128 bytes + 48
  EXPECT_EQ(SparseRowBytes(*table), 176);
  table->set_memory_budget_mb(1);  // 5957 rows
  spec.set_batch_size(2978);       // 5956 ids: fits
  ASSERT_OK(ValidateJobSpec(spec));
  spec.set_batch_size(2979);  // 5958 ids
  EXPECT_EQ(ValidateJobSpec(spec).message(),
            "model.sparse_table 'ids': memory_budget_mb 1 holds 5957 rows of 176 bytes, fewer than one batch's 5958 "
            "ids (batch_size 2979 x fields 2 x values_per_field 1): raise memory_budget_mb to at least 2");
  table->set_memory_budget_mb(0);  // no limit
  ASSERT_OK(ValidateJobSpec(spec));
}

TEST(DistinctCounterTest, EstimatesWithinAFewStandardErrors) {
  for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{1000}, int64_t{50000}, int64_t{1000000}}) {
    DistinctCounter counter;
    for (int64_t i = 0; i < n; ++i) {
      counter.Add(static_cast<uint64_t>(i));
      counter.Add(static_cast<uint64_t>(i));  // twice: counted once
    }
    const double error = 4 * DistinctCounter::kRelativeError * static_cast<double>(n);
    EXPECT_NEAR(counter.Estimate(), static_cast<double>(n), std::max(error, 1.0)) << n;
  }
}

TEST(SpillSpaceTest, TheWholeTableMustFitTheFreeDisk) {
  ScopedTestDir dir;
  proto::JobSpec spec = TsvSpec(dir.path());
  proto::ModelSpec& model = *spec.mutable_model();
  EXPECT_EQ(SpillBytesNeeded(model, 1e6), 0);  // no budget: nothing spills
  model.mutable_sparse_table(0)->set_memory_budget_mb(1);
  // 1e6 ids + 3 standard errors (2.4375%), 4 values + 4 sums = 32 bytes + 48.
  const int64_t needed = SpillBytesNeeded(model, 1e6);
  EXPECT_GE(needed, int64_t{1024375} * 80);
  EXPECT_LE(needed, int64_t{1024376} * 80);
  EXPECT_OK(CheckSpillSpace(model, 1e6, "/spill", needed));
  const std::string refused = CheckSpillSpace(model, 1e6, "/spill", needed - 1).message();
  EXPECT_THAT(refused, HasSubstr("model.sparse_table 'ids' may spill more than the disk holds: about 102437"));
  EXPECT_THAT(refused, HasSubstr(" rows (the training files' distinct ids, estimated, plus 3 standard errors) x 80 "
                                 "bytes = 79 MiB, and /spill has 79 MiB free: free some disk or put the run "
                                 "directory on a larger one"));
  StatusOr<int64_t> free_bytes = FreeDiskBytes(dir.File("not/made/yet"));
  ASSERT_OK(free_bytes.status());
  EXPECT_GT(*free_bytes, 0);
}

}  // namespace
}  // namespace tessera
