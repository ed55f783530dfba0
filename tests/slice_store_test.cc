#include "server/slice_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/key_range.h"
#include "core/sha256.h"
#include "core/status.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

// The record layout (server/slice_store.cc): "TSL1", u64 begin, u64 end,
// i64 version, u32 state_per_param, u64 param count, then params and state
// as little-endian float32. Built here independently of EncodeSliceRecord.
constexpr size_t kHeader = 4 + 8 + 8 + 8 + 4 + 8;

template <typename T>
void Append(std::string* out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out->append(buf, sizeof(T));
}

std::string Header(uint64_t begin, uint64_t end, int64_t version, uint32_t per, uint64_t n) {
  std::string v("TSL1");
  Append<uint64_t>(&v, begin);
  Append<uint64_t>(&v, end);
  Append<int64_t>(&v, version);
  Append<uint32_t>(&v, per);
  Append<uint64_t>(&v, n);
  return v;
}

// A well-formed record built by hand: header then `floats` zero floats.
std::string HandRecord(uint64_t begin, uint64_t end, int64_t version, uint32_t per, uint64_t n, uint64_t floats) {
  std::string v = Header(begin, end, version, per, n);
  v.append(floats * sizeof(float), '\0');
  return v;
}

std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = normal(rng);
  return out;
}

SliceSnapshot MakeSlice(uint64_t begin, uint64_t end, int64_t version, int per, uint32_t seed) {
  SliceSnapshot s;
  s.range = {begin, end};
  s.version = version;
  s.params = std::make_shared<const std::vector<float>>(RandomFloats(end - begin, seed));
  s.state = RandomFloats((end - begin) * per, seed + 1000);
  return s;
}

bool Bitwise(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void ExpectSameRecord(const SliceRecord& got, const SliceSnapshot& want, int per) {
  EXPECT_EQ(got.range, want.range);
  EXPECT_EQ(got.version, want.version);
  EXPECT_EQ(got.state_per_param, per);
  EXPECT_TRUE(Bitwise(got.params, *want.params)) << ToString(want.range);
  EXPECT_TRUE(Bitwise(got.state, want.state)) << ToString(want.range);
}

// ---------------------------------------------------------------- records

TEST(SliceRecordTest, SliceKeyIsFixedWidthHexSortingByBegin) {
  EXPECT_EQ(SliceKey(0), "slice/0000000000000000");
  EXPECT_EQ(SliceKey(0x1234abcd), "slice/000000001234abcd");
  EXPECT_EQ(SliceKey(UINT64_MAX), "slice/ffffffffffffffff");
  EXPECT_LT(SliceKey(9), SliceKey(16));
  EXPECT_LT(SliceKey(255), SliceKey(4096));
}

TEST(SliceRecordTest, RoundTripKeepsParamsAndStateBlocks) {
  for (int per : {0, 1, 2}) {
    SCOPED_TRACE("state_per_param " + std::to_string(per));
    SliceSnapshot s = MakeSlice(1000, 1037, 42, per, 7 + per);
    // Values that a lossy encoding would change.
    auto params = std::make_shared<std::vector<float>>(*s.params);
    (*params)[0] = -0.0f;
    (*params)[1] = std::numeric_limits<float>::denorm_min();
    (*params)[2] = std::numeric_limits<float>::infinity();
    s.params = params;
    const std::string value = EncodeSliceRecord(s, per);
    EXPECT_EQ(value.size(), kHeader + 37 * sizeof(float) * (1 + per));
    auto r = DecodeSliceRecord(SliceKey(1000), value);
    ASSERT_OK(r.status());
    ExpectSameRecord(*r, s, per);
    ASSERT_EQ(r->state.size(), 37u * per);
    // Block j holds state[j * n ...]: check the blocks were not interleaved.
    for (int j = 0; j < per; ++j) {
      for (size_t k = 0; k < 37; ++k) {
        EXPECT_EQ(std::memcmp(&r->state[j * 37 + k], &s.state[j * 37 + k], sizeof(float)), 0);
      }
    }
  }
}

TEST(SliceRecordTest, EncodingMatchesTheDocumentedLayout) {
  SliceSnapshot s = MakeSlice(5, 8, -3, 1, 99);
  std::string want = Header(5, 8, -3, 1, 3);
  want.append(reinterpret_cast<const char*>(s.params->data()), 3 * sizeof(float));
  want.append(reinterpret_cast<const char*>(s.state.data()), 3 * sizeof(float));
  EXPECT_EQ(EncodeSliceRecord(s, 1), want);
}

TEST(SliceRecordTest, KeyMustNameTheSlicesBegin) {
  const SliceSnapshot s = MakeSlice(16, 20, 1, 1, 3);
  const std::string value = EncodeSliceRecord(s, 1);
  ASSERT_OK(DecodeSliceRecord(SliceKey(16), value).status());
  for (const std::string& key : {SliceKey(17), SliceKey(0), SliceKey(0x10 << 4), std::string("slice/16"),
                                 std::string(""), std::string("slice/0000000000000010 ")}) {
    auto r = DecodeSliceRecord(key, value);
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "key '" << key << "'";
  }
}

TEST(SliceRecordTest, EveryTruncationIsDataLoss) {
  for (int per : {0, 2}) {
    const std::string value = EncodeSliceRecord(MakeSlice(3, 9, 4, per, 11), per);
    for (size_t len = 0; len < value.size(); ++len) {
      auto r = DecodeSliceRecord(SliceKey(3), value.substr(0, len));
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "per " << per << " length " << len;
    }
  }
}

TEST(SliceRecordTest, ExtraBytesAreDataLoss) {
  const std::string value = EncodeSliceRecord(MakeSlice(3, 9, 4, 1, 12), 1);
  for (size_t extra : {1u, 3u, 4u, 24u}) {
    auto r = DecodeSliceRecord(SliceKey(3), value + std::string(extra, '\0'));
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << extra << " extra bytes";
  }
}

TEST(SliceRecordTest, BadMagicIsDataLoss) {
  const std::string value = EncodeSliceRecord(MakeSlice(0, 4, 1, 0, 13), 0);
  for (size_t i = 0; i < 4; ++i) {
    std::string bad = value;
    bad[i] ^= 0x20;
    auto r = DecodeSliceRecord(SliceKey(0), bad);
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "magic byte " << i;
  }
  EXPECT_EQ(DecodeSliceRecord(SliceKey(0), "TSL2" + value.substr(4)).status().code(), StatusCode::kDataLoss);
}

TEST(SliceRecordTest, HandBuiltRecordsAreCheckedFieldByField) {
  // Sanity: a hand-built record of the right shape decodes.
  auto good = DecodeSliceRecord(SliceKey(10), HandRecord(10, 14, 5, 2, 4, 4 * 3));
  ASSERT_OK(good.status());
  EXPECT_EQ(good->range, (KeyRange{10, 14}));
  EXPECT_EQ(good->version, 5);
  EXPECT_EQ(good->state_per_param, 2);
  EXPECT_EQ(good->params.size(), 4u);
  EXPECT_EQ(good->state.size(), 8u);
  // The largest state_per_param allowed.
  ASSERT_OK(DecodeSliceRecord(SliceKey(10), HandRecord(10, 14, 5, 8, 4, 4 * 9)).status());

  struct Case {
    const char* what;
    std::string value;
  };
  const std::vector<Case> cases = {
      {"end == begin", HandRecord(10, 10, 5, 0, 0, 0)},
      {"end < begin", HandRecord(10, 6, 5, 0, 4, 4)},
      {"end < begin, n = end - begin wrapped", HandRecord(10, 6, 5, 0, uint64_t(6) - 10, 0)},
      {"n < end - begin", HandRecord(10, 14, 5, 0, 3, 3)},
      {"n > end - begin", HandRecord(10, 14, 5, 0, 5, 5)},
      {"n > end - begin, sized for the range", HandRecord(10, 14, 5, 0, 5, 4)},
      {"state_per_param 9", HandRecord(10, 14, 5, 9, 4, 4 * 10)},
      {"state_per_param huge", HandRecord(10, 14, 5, 0xffffffffu, 4, 4)},
      {"state sized for another state_per_param", HandRecord(10, 14, 5, 1, 4, 4 * 3)},
  };
  for (const Case& c : cases) {
    auto r = DecodeSliceRecord(SliceKey(10), c.value);
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << c.what;
  }
}

TEST(SliceRecordTest, ParamCountWhoseByteSizeWrapsIsDataLoss) {
  // n * 4 * (1 + per) wraps to 0 modulo 2^64, so a bare header "matches" the
  // expected size; a decoder must reject it rather than allocate n floats.
  const uint64_t n0 = uint64_t{1} << 62;  // per 0: n * 4 == 2^64
  const uint64_t n1 = uint64_t{1} << 61;  // per 1: n * 4 * 2 == 2^64
  const uint64_t n3 = uint64_t{1} << 60;  // per 3: n * 4 * 4 == 2^64
  struct Case {
    uint64_t n;
    uint32_t per;
    uint64_t floats;
  };
  for (const Case& c : {Case{n0, 0, 0}, Case{n1, 1, 0}, Case{n3, 3, 0}, Case{n0 + 1, 0, 1}}) {
    const std::string value = HandRecord(0, c.n, 1, c.per, c.n, c.floats);
    StatusCode code = StatusCode::kOk;
    try {
      code = DecodeSliceRecord(SliceKey(0), value).status().code();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "n " << c.n << " per " << c.per << " threw " << e.what();
      continue;
    }
    EXPECT_EQ(code, StatusCode::kDataLoss) << "n " << c.n << " per " << c.per;
  }
}

TEST(SliceRecordTest, RandomBytesGiveAnErrorOrAConsistentRecord) {
  std::mt19937 rng(2024);
  const std::string valid = EncodeSliceRecord(MakeSlice(64, 72, 3, 1, 21), 1);
  int decoded = 0;
  for (int i = 0; i < 300; ++i) {
    std::string value;
    switch (i % 3) {
      case 0: {  // pure noise
        value.resize(rng() % 160);
        for (char& c : value) c = static_cast<char>(rng());
        break;
      }
      case 1: {  // the right magic, then noise
        value = "TSL1";
        value.resize(4 + rng() % 160);
        for (size_t k = 4; k < value.size(); ++k) value[k] = static_cast<char>(rng());
        break;
      }
      default: {  // a valid record with a few bytes changed (header included)
        value = valid;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f) value[rng() % kHeader] ^= static_cast<char>(1 + rng() % 255);
        if (rng() % 4 == 0) value.resize(rng() % (valid.size() + 8));
        break;
      }
    }
    const std::string key = (i % 2 == 0) ? SliceKey(64) : SliceKey(rng() % 128);
    auto r = DecodeSliceRecord(key, value);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << "case " << i;
      continue;
    }
    ++decoded;
    EXPECT_EQ(key, SliceKey(r->range.begin)) << "case " << i;
    EXPECT_LT(r->range.begin, r->range.end) << "case " << i;
    EXPECT_EQ(r->params.size(), r->range.size()) << "case " << i;
    EXPECT_GE(r->state_per_param, 0);
    EXPECT_LE(r->state_per_param, 8);
    EXPECT_EQ(r->state.size(), r->range.size() * r->state_per_param) << "case " << i;
    EXPECT_EQ(value.size(), kHeader + (r->params.size() + r->state.size()) * sizeof(float)) << "case " << i;
  }
  // Flips of the version field leave the record valid: the loop did see some.
  EXPECT_GT(decoded, 0);
}

// ---------------------------------------------------------------- the store

// Every file of `dir` (names) with its contents.
std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    auto bytes = ReadFileToString(entry.path().string());
    EXPECT_TRUE(bytes.ok()) << name;
    out[name] = bytes.ok() ? *bytes : std::string();
  }
  return out;
}

bool IsLockOrLog(const std::string& name) { return name == "LOCK" || name.rfind("LOG", 0) == 0; }

struct StoreFixture {
  int per;
  std::vector<SliceSnapshot> slices;
};

// Slices given out of key order; begins whose decimal and hex orders differ.
StoreFixture Slices(int per) {
  StoreFixture f{per, {}};
  f.slices.push_back(MakeSlice(4096, 4096 + 3000, 7, per, 1));
  f.slices.push_back(MakeSlice(16, 16 + 2000, 7, per, 2));
  f.slices.push_back(MakeSlice(9, 16, 6, per, 3));
  f.slices.push_back(MakeSlice(255, 4000, 8, per, 4));
  f.slices.push_back(MakeSlice(100000, 100001, 0, per, 5));
  return f;
}

TEST(SliceStoreTest, WriteThenReadGivesTheSameRecordsInKeyOrder) {
  for (int per : {0, 1, 2}) {
    SCOPED_TRACE("state_per_param " + std::to_string(per));
    const std::string dir = MakeTempDir("slice-store") + "/server-0";
    const StoreFixture f = Slices(per);
    auto written = WriteSliceStore(dir, f.slices, per);
    ASSERT_OK(written.status());
    int64_t want_bytes = 0;
    for (const SliceSnapshot& s : f.slices) want_bytes += kHeader + s.range.size() * sizeof(float) * (1 + per);
    EXPECT_EQ(written->bytes, want_bytes);

    auto read = ReadSliceStore(dir);
    ASSERT_OK(read.status());
    std::vector<SliceSnapshot> sorted = f.slices;
    std::sort(sorted.begin(), sorted.end(),
              [](const SliceSnapshot& a, const SliceSnapshot& b) { return a.range.begin < b.range.begin; });
    ASSERT_EQ(read->size(), sorted.size());
    for (size_t i = 0; i < sorted.size(); ++i) ExpectSameRecord((*read)[i], sorted[i], per);
  }
}

TEST(SliceStoreTest, EmptyStoreReadsAsNoRecords) {
  const std::string dir = MakeTempDir("slice-store") + "/empty";
  ASSERT_OK(WriteSliceStore(dir, {}, 1).status());
  auto read = ReadSliceStore(dir);
  ASSERT_OK(read.status());
  EXPECT_TRUE(read->empty());
}

TEST(SliceStoreTest, ChecksumsNameRealFilesWithTheirSizesAndSha256) {
  const std::string dir = MakeTempDir("slice-store") + "/server-1";
  auto written = WriteSliceStore(dir, Slices(2).slices, 2);
  ASSERT_OK(written.status());
  ASSERT_FALSE(written->files.empty());
  bool has_current = false, has_sst = false, has_manifest = false;
  std::vector<std::string> names;
  for (const proto::FileChecksum& f : written->files) {
    SCOPED_TRACE(f.name());
    names.push_back(f.name());
    EXPECT_EQ(f.name().find('/'), std::string::npos);
    EXPECT_FALSE(IsLockOrLog(f.name()));
    auto bytes = ReadFileToString(dir + "/" + f.name());
    ASSERT_OK(bytes.status());
    EXPECT_EQ(f.size(), bytes->size());
    EXPECT_EQ(f.size(), std::filesystem::file_size(dir + "/" + f.name()));
    EXPECT_EQ(f.sha256(), Sha256Hex(bytes->data(), bytes->size()));
    EXPECT_EQ(f.sha256().size(), 64u);
    has_current |= f.name() == "CURRENT";
    has_manifest |= f.name().rfind("MANIFEST-", 0) == 0;
    has_sst |= f.name().size() > 4 && f.name().substr(f.name().size() - 4) == ".sst";
  }
  EXPECT_TRUE(has_current);
  EXPECT_TRUE(has_manifest);
  EXPECT_TRUE(has_sst);
  std::vector<std::string> unique = names;
  std::sort(unique.begin(), unique.end());
  EXPECT_TRUE(std::adjacent_find(unique.begin(), unique.end()) == unique.end()) << "a file is listed twice";
  // Everything in the directory but LOCK and LOG* is listed.
  for (const auto& [name, bytes] : DirContents(dir)) {
    if (IsLockOrLog(name)) continue;
    EXPECT_TRUE(std::find(names.begin(), names.end(), name) != names.end()) << name << " is not listed";
  }
}

TEST(SliceStoreTest, WriteIntoAnExistingDirectoryIsFailedPreconditionAndTouchesNothing) {
  const std::string dir = MakeTempDir("slice-store") + "/server-0";
  ASSERT_OK(MakeDirs(dir));
  ASSERT_OK(WriteFileAtomic(dir + "/keep.txt", "precious"));
  const auto before = DirContents(dir);
  auto written = WriteSliceStore(dir, Slices(1).slices, 1);
  EXPECT_EQ(written.status().code(), StatusCode::kFailedPrecondition) << written.status().ToString();
  EXPECT_EQ(DirContents(dir), before);

  // An existing store is not overwritten either.
  const std::string store = MakeTempDir("slice-store") + "/server-1";
  ASSERT_OK(WriteSliceStore(store, Slices(0).slices, 0).status());
  const auto store_before = DirContents(store);
  auto again = WriteSliceStore(store, {MakeSlice(0, 5, 1, 0, 77)}, 0);
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition) << again.status().ToString();
  EXPECT_EQ(DirContents(store), store_before);
  auto read = ReadSliceStore(store);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->size(), Slices(0).slices.size());
}

TEST(SliceStoreTest, ReadOfAMissingOrEmptyDirectoryIsNotFound) {
  const std::string base = MakeTempDir("slice-store");
  EXPECT_EQ(ReadSliceStore(base + "/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadSliceStore(base).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(FileExists(base + "/nope"));  // reading created nothing
}

TEST(SliceStoreTest, ReadingLeavesTheFilesByteIdentical) {
  const std::string dir = MakeTempDir("slice-store") + "/server-0";
  auto written = WriteSliceStore(dir, Slices(1).slices, 1);
  ASSERT_OK(written.status());
  const auto before = DirContents(dir);
  for (int i = 0; i < 2; ++i) {
    auto read = ReadSliceStore(dir);
    ASSERT_OK(read.status());
    EXPECT_EQ(read->size(), Slices(1).slices.size());
  }
  const auto after = DirContents(dir);
  for (const proto::FileChecksum& f : written->files) {
    SCOPED_TRACE(f.name());
    ASSERT_TRUE(after.count(f.name()));
    EXPECT_TRUE(after.at(f.name()) == before.at(f.name())) << "changed by reading";
    EXPECT_EQ(after.at(f.name()).size(), f.size());
    EXPECT_EQ(Sha256Hex(after.at(f.name()).data(), after.at(f.name()).size()), f.sha256());
  }
  // And no new data files appeared (a read-only open may add LOCK at most).
  for (const auto& [name, bytes] : after) {
    if (IsLockOrLog(name)) continue;
    EXPECT_TRUE(before.count(name)) << name << " appeared while reading";
  }
}

TEST(SliceStoreTest, CorruptSstIsAnErrorNotACrash) {
  const std::string dir = MakeTempDir("slice-store") + "/server-0";
  auto written = WriteSliceStore(dir, Slices(2).slices, 2);
  ASSERT_OK(written.status());
  std::string sst;
  for (const proto::FileChecksum& f : written->files) {
    if (f.name().size() > 4 && f.name().substr(f.name().size() - 4) == ".sst") sst = dir + "/" + f.name();
  }
  ASSERT_FALSE(sst.empty());
  auto bytes = ReadFileToString(sst);
  ASSERT_OK(bytes.status());
  ASSERT_GT(bytes->size(), 4096u);
  std::string bad = *bytes;
  for (size_t k = 0; k < 16; ++k) bad[bad.size() / 2 + k] ^= static_cast<char>(0xA5);
  {
    std::ofstream out(sst, std::ios::binary | std::ios::trunc);
    out.write(bad.data(), static_cast<std::streamsize>(bad.size()));
    ASSERT_TRUE(out.good());
  }
  auto read = ReadSliceStore(dir);
  ASSERT_FALSE(read.ok()) << "a corrupt .sst read back " << read->size() << " records";
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status().ToString();
  EXPECT_NE(read.status().message().find(dir), std::string::npos) << read.status().ToString();
}

TEST(SliceStoreTest, CorruptRecordInAnIntactDatabaseIsDataLossNamingTheDirectory) {
  // A database RocksDB itself finds intact, holding a record that is not.
  const std::string dir = MakeTempDir("slice-store") + "/server-0";
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const SliceSnapshot good = MakeSlice(0, 4, 1, 0, 5);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), SliceKey(0), EncodeSliceRecord(good, 0)).ok());
    // Right shape, stored under the wrong key.
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), SliceKey(8), EncodeSliceRecord(MakeSlice(4, 8, 1, 0, 6), 0)).ok());
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  auto read = ReadSliceStore(dir);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status().ToString();
  EXPECT_NE(read.status().message().find(dir), std::string::npos) << read.status().ToString();
}

}  // namespace
}  // namespace tessera
