// A sparse table's checkpoint file: what is written reads back exactly, and
// every kind of bad file is DataLoss naming it, never a crash, and hands out
// no row when its sizes are wrong.
#include "server/sparse_table_file.h"

#include <gtest/gtest.h>

#include <fstream>
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
  version[4] = 2;
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

}  // namespace
}  // namespace tessera
