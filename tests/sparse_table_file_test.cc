// A sparse table's checkpoint file: what is written reads back exactly, and
// every kind of bad file is DataLoss naming it, never a crash, and hands out
// no row when its sizes are wrong.
#include "server/sparse_table_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

const std::vector<uint64_t> kIds = {3, 17, uint64_t{1} << 63};
const std::vector<int64_t> kLastSteps = {39, 12, 0};

std::vector<float> Rows() {
  std::vector<float> rows;
  for (int i = 0; i < 18; ++i) rows.push_back(0.25f * static_cast<float>(i) - 1.0f);
  return rows;
}

// Rows of 3 values and 3 state floats, from kIds, kLastSteps and `rows`.
SparseTableSnapshot Example(std::vector<uint64_t> ids = kIds) {
  SparseTableSnapshot s;
  s.table = 2;
  s.name = "ads";
  s.dim = 3;
  s.state_floats = 3;
  s.optimizer_type = 1;
  s.step = 40;
  s.admission = std::string("A\x01\x04", 3) + std::string(4 * 16 * 2, '\0');
  s.for_each_row = [ids](const SparseRowVisitor& visit) -> Status {
    const std::vector<float> rows = Rows();
    for (size_t i = 0; i < ids.size(); ++i) RETURN_IF_ERROR(visit(ids[i], rows.data() + i * 6, kLastSteps[i]));
    return OkStatus();
  };
  return s;
}

struct ReadBack {
  Status status;
  SparseTableFileHeader header;
  std::vector<uint64_t> ids;
  std::vector<int64_t> last_steps;
  std::vector<float> rows;
};

ReadBack Read(const std::string& path) {
  ReadBack r;
  auto header = ReadSparseTableFile(path, [&](uint64_t id, const float* row, int64_t last_step) {
    r.ids.push_back(id);
    r.last_steps.push_back(last_step);
    r.rows.insert(r.rows.end(), row, row + 6);
    return OkStatus();
  });
  r.status = header.status();
  if (header.ok()) r.header = *header;
  return r;
}

class SparseTableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("sparse_table_file");
    path_ = dir_ + "/" + SparseTableFileName(2);
    auto written = WriteSparseTableFile(path_, Example());
    ASSERT_TRUE(written.ok());
    ASSERT_EQ(*written, 3);
    auto bytes = ReadFileToString(path_);
    ASSERT_TRUE(bytes.ok());
    bytes_ = *bytes;
  }
  // Writes `bytes` as a file of its own and reads it.
  ReadBack ReadBytes(const std::string& bytes) {
    const std::string path = dir_ + "/bad-" + std::to_string(next_++);
    std::ofstream(path, std::ios::binary) << bytes;
    return Read(path);
  }

  std::string dir_, path_, bytes_;
  int next_ = 0;
};

TEST_F(SparseTableFileTest, RowsReadBackExactlyInIdOrder) {
  EXPECT_EQ(SparseTableFileName(2), "sparse-2.rows");
  const ReadBack r = Read(path_);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  const SparseTableSnapshot s = Example();
  EXPECT_EQ(r.header.name, "ads");
  EXPECT_EQ(r.header.dim, 3);
  EXPECT_EQ(r.header.state_floats, 3);
  EXPECT_EQ(r.header.optimizer_type, 1);
  EXPECT_EQ(r.header.step, 40);
  EXPECT_EQ(r.header.admission, s.admission);
  EXPECT_EQ(r.header.count, 3u);
  EXPECT_EQ(r.ids, kIds);
  EXPECT_EQ(r.last_steps, kLastSteps);
  EXPECT_EQ(r.rows, Rows());
  // A second write to the same path is refused: a part is written once.
  EXPECT_FALSE(WriteSparseTableFile(path_, s).ok());
  EXPECT_EQ(Read(dir_ + "/none").status.code(), StatusCode::kNotFound);
  // Rows out of order are refused as they are written.
  EXPECT_EQ(WriteSparseTableFile(dir_ + "/unordered", Example({3, 3, 4})).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SparseTableFileTest, BadFilesAreDataLossAndHandOutNoRowWhenTheirSizesAreWrong) {
  // Truncated anywhere, or a byte too long: no row is visited.
  for (size_t size : {size_t{0}, size_t{3}, size_t{20}, bytes_.size() - 1}) {
    const ReadBack r = ReadBytes(bytes_.substr(0, size));
    EXPECT_EQ(r.status.code(), StatusCode::kDataLoss) << size << ": " << r.status.ToString();
    EXPECT_TRUE(r.ids.empty()) << size;
  }
  const ReadBack longer = ReadBytes(bytes_ + "x");
  EXPECT_EQ(longer.status.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(longer.ids.empty());
  EXPECT_NE(longer.status.message().find("bad-"), std::string::npos) << longer.status.ToString();

  std::string magic = bytes_;
  magic[0] = 'X';
  EXPECT_EQ(ReadBytes(magic).status.code(), StatusCode::kDataLoss);
  std::string version = bytes_;
  version[4] = 1;  // the first version, before chains
  EXPECT_EQ(ReadBytes(version).status.code(), StatusCode::kDataLoss);
  // The second and third ids swapped: refused at the row out of order.
  const size_t header_bytes = bytes_.size() - 3 * (16 + 6 * 4);
  std::string swapped = bytes_;
  for (int b = 0; b < 8; ++b) {
    std::swap(swapped[header_bytes + 1 * 40 + b], swapped[header_bytes + 2 * 40 + b]);
  }
  const ReadBack unordered = ReadBytes(swapped);
  EXPECT_EQ(unordered.status.code(), StatusCode::kDataLoss);
  EXPECT_NE(unordered.status.message().find("strictly increasing"), std::string::npos);
  // A count claiming 2^60 rows.
  std::string count = bytes_;
  const uint64_t huge = uint64_t{1} << 60;
  std::memcpy(count.data() + header_bytes - 8, &huge, 8);
  EXPECT_EQ(ReadBytes(count).status.code(), StatusCode::kDataLoss);
}

TEST_F(SparseTableFileTest, RandomDamageNeverCrashes) {
  std::mt19937 random(3);
  for (int i = 0; i < 300; ++i) {
    std::string damaged = bytes_;
    for (int k = 0; k < 1 + i % 4; ++k) damaged[random() % damaged.size()] = static_cast<char>(random());
    ReadBytes(damaged.substr(0, random() % (damaged.size() + 1)));  // any status; no crash
  }
}

// A table of rows with one value and no state: id -> (value, last step).
using Table = std::map<uint64_t, std::pair<float, int64_t>>;

SparseTableSnapshot TableSnapshot(const Table& table, int64_t step, std::vector<uint64_t> expired = {}) {
  SparseTableSnapshot s;
  s.table = 0;
  s.name = "ids";
  s.dim = 1;
  s.step = step;
  s.latest_step = step;
  s.expired = std::move(expired);
  s.for_each_row = [table](const SparseRowVisitor& visit) -> Status {
    for (const auto& [id, row] : table) RETURN_IF_ERROR(visit(id, &row.first, row.second));
    return OkStatus();
  };
  return s;
}

// The table a part's chain gives (ReadCheckpointSparseTable).
StatusOr<Table> ReadTable(const std::string& part_dir) {
  Table table;
  auto header = ReadCheckpointSparseTable(part_dir, 0, [&](uint64_t id, const float* row, int64_t last_step) {
    table[id] = {row[0], last_step};
    return OkStatus();
  });
  if (!header.ok()) return header.status();
  if (header->count != table.size()) return InternalError("the header's count is not the rows visited");
  return table;
}

// Cuts of a table as a server makes them, one part directory each.
class SparseTableChainTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("sparse_table_chain"); }
  // Writes the cut at `step` into checkpoint `ckpt-STEP/server-0`, after the
  // previous cut's part; returns the names in the part.
  std::vector<std::string> Cut(const Table& table, int64_t step, std::vector<uint64_t> expired = {},
                               int full_every = 3) {
    const std::string part = PartDir(step);
    EXPECT_OK(MakeDirs(part));
    auto written = WriteCheckpointSparseTable(part, TableSnapshot(table, step, std::move(expired)), previous_,
                                              full_every);
    EXPECT_OK(written.status());
    previous_ = part;
    std::vector<std::string> names;
    if (written.ok()) {
      for (const SparseTableFileWritten& f : *written) names.push_back(f.name);
    }
    return names;
  }
  std::string PartDir(int64_t step) const { return dir_ + "/ckpt-" + std::to_string(step) + "/server-0"; }

  std::string dir_, previous_;
};

TEST_F(SparseTableChainTest, IncrementalCutsHoldTheChangedRowsAndTombstonesAndAssembleExactly) {
  Table table = {{1, {0.5f, 0}}, {5, {1.5f, 3}}, {9, {2.5f, 10}}, {12, {3.5f, 10}}};
  EXPECT_EQ(Cut(table, 10), std::vector<std::string>{"sparse-0.rows"});
  // Step 20: 5 changes, 9 expired, 20 is new (made by a read at 10: kept).
  table[5] = {-1.0f, 15};
  table.erase(9);
  table[20] = {7.0f, 10};
  EXPECT_EQ(Cut(table, 20, {9}), (std::vector<std::string>{"sparse-0.step-10.rows", "sparse-0.rows"}));
  auto chain = ReadSparseTableChain(PartDir(20), 0);
  ASSERT_OK(chain.status());
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_TRUE((*chain)[0].incremental);
  EXPECT_EQ((*chain)[0].chain_length, 2u);
  EXPECT_EQ((*chain)[0].base_file, "sparse-0.step-10.rows");
  EXPECT_EQ((*chain)[0].base_checkpoint, "ckpt-10");
  EXPECT_EQ((*chain)[0].tombstones, 1u);
  // 5 (15), 12 (10, the base's latest step) and 20 (10); not 1 (0).
  EXPECT_EQ((*chain)[0].count, 3u);
  EXPECT_FALSE((*chain)[1].incremental);
  auto read = ReadTable(PartDir(20));
  ASSERT_OK(read.status());
  EXPECT_EQ(*read, table);

  // Step 30: 9 comes back (a new row), 1 expires; then the third cut since
  // the full one is full again (full_every 3).
  table[9] = {4.0f, 25};
  table.erase(1);
  EXPECT_EQ(Cut(table, 30, {1}).size(), 3u);
  read = ReadTable(PartDir(30));
  ASSERT_OK(read.status());
  EXPECT_EQ(*read, table);
  EXPECT_EQ(Cut(table, 40), std::vector<std::string>{"sparse-0.rows"});
  read = ReadTable(PartDir(40));
  ASSERT_OK(read.status());
  EXPECT_EQ(*read, table);

  // Deleting the older checkpoints breaks no newer one: the chain was linked.
  std::filesystem::remove_all(dir_ + "/ckpt-10");
  std::filesystem::remove_all(dir_ + "/ckpt-20");
  read = ReadTable(PartDir(30));
  ASSERT_OK(read.status());
  EXPECT_EQ(read->size(), table.size());
}

TEST_F(SparseTableChainTest, AMissingOrBadBaseIsDataLossNamingIt) {
  const Table table = {{1, {0.5f, 0}}, {5, {1.5f, 3}}};
  Cut(table, 10);
  Cut(table, 20);
  const std::string base = PartDir(20) + "/sparse-0.step-10.rows";
  auto bytes = ReadFileToString(base);
  ASSERT_OK(bytes.status());
  std::filesystem::remove(base);
  auto missing = ReadTable(PartDir(20));
  EXPECT_EQ(missing.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(missing.status().message().find("sparse-0.step-10.rows"), std::string::npos) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("missing"), std::string::npos) << missing.status().ToString();
  // A base of another step than the one named (a file put in its place).
  auto other = ReadFileToString(PartDir(20) + "/sparse-0.rows");
  ASSERT_OK(other.status());
  std::ofstream(base, std::ios::binary) << *other;
  auto wrong = ReadTable(PartDir(20));
  EXPECT_EQ(wrong.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(wrong.status().message().find("sparse-0.step-10.rows"), std::string::npos) << wrong.status().ToString();
  // A truncated base.
  std::filesystem::remove(base);
  std::ofstream(base, std::ios::binary) << bytes->substr(0, bytes->size() - 1);
  auto truncated = ReadTable(PartDir(20));
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("sparse-0.step-10.rows"), std::string::npos);
  // With the base broken, the next cut falls back to a full file.
  EXPECT_EQ(Cut(table, 30), std::vector<std::string>{"sparse-0.rows"});
  auto read = ReadTable(PartDir(30));
  ASSERT_OK(read.status());
  EXPECT_EQ(*read, table);
}

TEST_F(SparseTableChainTest, ASnapshotThatMustBeFullOrFullEveryOneWritesFullFiles) {
  const Table table = {{1, {0.5f, 0}}};
  Cut(table, 10, {}, /*full_every=*/1);
  EXPECT_EQ(Cut(table, 20, {}, /*full_every=*/1), std::vector<std::string>{"sparse-0.rows"});
  const std::string part = PartDir(30);
  ASSERT_OK(MakeDirs(part));
  SparseTableSnapshot s = TableSnapshot(table, 30);
  s.must_be_full = true;
  auto written = WriteCheckpointSparseTable(part, s, previous_, 8);
  ASSERT_OK(written.status());
  EXPECT_EQ(written->size(), 1u);
}

TEST_F(SparseTableChainTest, DamagedChainsNeverCrash) {
  Table table;
  for (uint64_t id = 1; id < 40; ++id) table[id] = {static_cast<float>(id), static_cast<int64_t>(id)};
  Cut(table, 10);
  for (uint64_t id = 1; id < 40; id += 3) table[id] = {-1.0f, 15};
  Cut(table, 20, {2, 5});
  const std::string newest = PartDir(20) + "/sparse-0.rows";
  auto bytes = ReadFileToString(newest);
  ASSERT_OK(bytes.status());
  std::mt19937 random(7);
  for (int i = 0; i < 300; ++i) {
    std::string damaged = *bytes;
    for (int k = 0; k < 1 + i % 4; ++k) damaged[random() % damaged.size()] = static_cast<char>(random());
    std::filesystem::remove(newest);
    std::ofstream(newest, std::ios::binary) << damaged.substr(0, random() % (damaged.size() + 1));
    ReadTable(PartDir(20)).status().IgnoreError();  // any status; no crash
  }
}

}  // namespace
}  // namespace tessera
