#include "core/checkpoint_manifest.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/file_util.h"
#include "core/sha256.h"
#include "core/status.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::google::protobuf::util::MessageDifferencer;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadRaw(const std::string& path) {
  auto bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

proto::FileChecksum Checksum(const std::string& name, const std::string& bytes) {
  proto::FileChecksum f;
  f.set_name(name);
  f.set_size(bytes.size());
  f.set_sha256(Sha256Hex(bytes.data(), bytes.size()));
  return f;
}

// A manifest with every field set (format_version left for WriteManifest).
proto::CheckpointManifest FullManifest() {
  proto::CheckpointManifest m;
  m.mutable_spec()->set_name("manifest-test");
  m.mutable_spec()->set_batch_size(32);
  m.set_step(940);
  m.mutable_cursor()->set_seed(7);
  m.mutable_cursor()->set_epoch(3);
  m.mutable_cursor()->set_steps_into_epoch(12);
  proto::TensorMeta* t = m.add_tensors();
  t->set_name("layer0.weight");
  t->add_shape(4);
  t->add_shape(3);
  t->set_offset(0);
  t->set_size(12);
  t->set_init_bound(0.25f);
  m.set_num_keys(12);
  proto::ServerPart* part = m.add_servers();
  part->set_rank(0);
  part->set_dir("server-0");
  proto::KeyRange* r = part->add_ranges();
  r->set_begin(0);
  r->set_end(12);
  *part->add_files() = Checksum("CURRENT", "MANIFEST-000005\n");
  m.set_params_sha256(std::string(64, 'a'));
  m.set_optimizer("adam");
  m.set_state_per_param(2);
  m.set_created_unix_seconds(1700000000);
  m.set_examples_per_epoch(60000);
  return m;
}

// A committed fake checkpoint at `dir` for `step`: two server parts with
// files, and a manifest listing them. Returns the manifest.
proto::CheckpointManifest MakeCheckpoint(const std::string& dir, int64_t step) {
  proto::CheckpointManifest m;
  m.set_step(step);
  m.set_num_keys(10);
  for (int rank = 0; rank < 2; ++rank) {
    const std::string part_dir = "server-" + std::to_string(rank);
    EXPECT_OK(MakeDirs(dir + "/" + part_dir));
    proto::ServerPart* part = m.add_servers();
    part->set_rank(rank);
    part->set_dir(part_dir);
    const std::vector<std::pair<std::string, std::string>> files = {
        {"CURRENT", "MANIFEST-000004\n"},
        {"000009.sst", std::string(3000, static_cast<char>('a' + rank)) + std::to_string(step)},
    };
    for (const auto& [name, bytes] : files) {
      WriteRaw(dir + "/" + part_dir + "/" + name, bytes);
      *part->add_files() = Checksum(name, bytes);
    }
  }
  EXPECT_OK(WriteManifest(dir, m));
  return m;
}

void FlipByte(const std::string& path, size_t at) {
  std::string bytes = ReadRaw(path);
  ASSERT_LT(at, bytes.size());
  bytes[at] ^= 0x01;
  WriteRaw(path, bytes);
}

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// ------------------------------------------------------------ names

TEST(CheckpointManifestTest, CheckpointNameIsZeroPaddedStep) {
  EXPECT_EQ(CheckpointName(940), "step-000000000940");
  EXPECT_EQ(CheckpointName(0), "step-000000000000");
  EXPECT_EQ(CheckpointName(123456789012), "step-123456789012");
  EXPECT_LT(CheckpointName(99), CheckpointName(100));
}

TEST(CheckpointManifestTest, RunDirOfIsTwoLevelsUp) {
  EXPECT_EQ(RunDirOf("/a/run/checkpoints/step-000000000940"), "/a/run");
  EXPECT_EQ(RunDirOf("/a/run/checkpoints/step-000000000940/"), "/a/run");
  EXPECT_EQ(RunDirOf("runs/job-1/checkpoints/step-000000000001"), "runs/job-1");
}

// ------------------------------------------------------------ manifests

TEST(CheckpointManifestTest, WriteThenReadRoundTripsWithFormatVersion1) {
  const std::string dir = MakeTempDir("manifest");
  const proto::CheckpointManifest m = FullManifest();
  ASSERT_FALSE(m.has_format_version());
  ASSERT_OK(WriteManifest(dir, m));
  auto read = ReadManifest(dir);
  ASSERT_OK(read.status());
  EXPECT_EQ(read->format_version(), 1);
  proto::CheckpointManifest want = m;
  want.set_format_version(1);
  EXPECT_TRUE(MessageDifferencer::Equals(*read, want)) << read->DebugString();
  EXPECT_EQ(read->servers(0).files(0).sha256(), m.servers(0).files(0).sha256());

  // Another format_version given is overwritten with 1.
  const std::string dir2 = MakeTempDir("manifest");
  proto::CheckpointManifest other = m;
  other.set_format_version(7);
  ASSERT_OK(WriteManifest(dir2, other));
  auto read2 = ReadManifest(dir2);
  ASSERT_OK(read2.status());
  EXPECT_EQ(read2->format_version(), 1);
}

TEST(CheckpointManifestTest, ManifestTxtIsTheSameInTextFormat) {
  const std::string dir = MakeTempDir("manifest");
  ASSERT_OK(WriteManifest(dir, FullManifest()));
  ASSERT_TRUE(FileExists(dir + "/MANIFEST.txt"));
  const std::string text = ReadRaw(dir + "/MANIFEST.txt");
  EXPECT_TRUE(Contains(text, "step: 940")) << text;
  EXPECT_TRUE(Contains(text, "format_version: 1")) << text;
  proto::CheckpointManifest parsed;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &parsed)) << text;
  auto read = ReadManifest(dir);
  ASSERT_OK(read.status());
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, *read));
  // Only the two manifests were written (temp files renamed away).
  EXPECT_EQ(Entries(dir), (std::set<std::string>{"MANIFEST", "MANIFEST.txt"}));
}

TEST(CheckpointManifestTest, ReadWithoutManifestIsNotFoundNotACheckpoint) {
  const std::string dir = MakeTempDir("manifest");
  auto read = ReadManifest(dir);
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(read.status().message(), "not a checkpoint")) << read.status().ToString();

  // MANIFEST.txt alone does not commit a checkpoint.
  std::string text;
  proto::CheckpointManifest m = FullManifest();
  m.set_format_version(1);
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(m, &text));
  WriteRaw(dir + "/MANIFEST.txt", text);
  EXPECT_EQ(ReadManifest(dir).status().code(), StatusCode::kNotFound);

  EXPECT_EQ(ReadManifest(dir + "/missing").status().code(), StatusCode::kNotFound);
}

TEST(CheckpointManifestTest, GarbageOrWrongVersionManifestIsDataLossNamingTheFile) {
  const std::string dir = MakeTempDir("manifest");
  proto::CheckpointManifest v2 = FullManifest();
  v2.set_format_version(2);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"tag 0", std::string("\x00\x01\x02garbage", 10)},
      {"truncated field", std::string("\x1a\x40short", 7)},
      {"text instead of binary", "format_version: 1\nstep: 3\n"},
      {"empty (format_version 0)", ""},
      {"format_version 2", v2.SerializeAsString()},
  };
  for (const auto& [what, bytes] : cases) {
    WriteRaw(dir + "/MANIFEST", bytes);
    auto read = ReadManifest(dir);
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << what;
    EXPECT_TRUE(Contains(read.status().message(), dir + "/MANIFEST")) << what << ": " << read.status().ToString();
  }
}

// ------------------------------------------------------------ verification

TEST(CheckpointManifestTest, VerifyAcceptsAnIntactCheckpoint) {
  const std::string dir = MakeTempDir("verify");
  const proto::CheckpointManifest m = MakeCheckpoint(dir, 5);
  EXPECT_OK(VerifyCheckpoint(dir, m));
  auto read = ReadManifest(dir);
  ASSERT_OK(read.status());
  EXPECT_OK(VerifyCheckpoint(dir, *read));
  // Extra files beside the listed ones (LOCK, LOG) do not matter.
  WriteRaw(dir + "/server-0/LOCK", "");
  EXPECT_OK(VerifyCheckpoint(dir, m));
}

TEST(CheckpointManifestTest, VerifyFindsAMissingFile) {
  const std::string dir = MakeTempDir("verify");
  const proto::CheckpointManifest m = MakeCheckpoint(dir, 5);
  const std::string path = dir + "/server-1/000009.sst";
  std::filesystem::remove(path);
  const Status s = VerifyCheckpoint(dir, m);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), path)) << s.ToString();
}

TEST(CheckpointManifestTest, VerifyFindsATruncatedFile) {
  const std::string dir = MakeTempDir("verify");
  const proto::CheckpointManifest m = MakeCheckpoint(dir, 5);
  const std::string path = dir + "/server-0/000009.sst";
  std::filesystem::resize_file(path, 1000);
  const Status s = VerifyCheckpoint(dir, m);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), path)) << s.ToString();
  EXPECT_TRUE(Contains(s.message(), "1000")) << s.ToString();
}

TEST(CheckpointManifestTest, VerifyFindsAFlippedByteOfTheSameSize) {
  for (const std::string& name : {std::string("server-0/CURRENT"), std::string("server-1/000009.sst")}) {
    const std::string dir = MakeTempDir("verify");
    const proto::CheckpointManifest m = MakeCheckpoint(dir, 5);
    const std::string path = dir + "/" + name;
    const auto size = std::filesystem::file_size(path);
    FlipByte(path, size / 2);
    ASSERT_EQ(std::filesystem::file_size(path), size);
    const Status s = VerifyCheckpoint(dir, m);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
    EXPECT_TRUE(Contains(s.message(), path)) << s.ToString();
  }
}

TEST(CheckpointManifestTest, VerifyRejectsBadPartDirectoriesAndFileNames) {
  const std::string dir = MakeTempDir("verify") + "/checkpoints/step-000000000005";
  ASSERT_OK(MakeDirs(dir));
  const proto::CheckpointManifest good = MakeCheckpoint(dir, 5);
  ASSERT_OK(VerifyCheckpoint(dir, good));
  // A sibling directory ".." would reach, holding the very same files.
  const std::string outside = dir + "/../escape";
  std::filesystem::copy(dir + "/server-0", outside, std::filesystem::copy_options::recursive);

  struct Case {
    std::string what;
    proto::CheckpointManifest m;
    std::string named;  // the message must contain this
  };
  std::vector<Case> cases;
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(0)->set_dir("../escape");
    cases.push_back({"dir with ..", m, "../escape"});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(1)->set_dir("server-1/../server-0");
    cases.push_back({"dir with .. inside", m, "server-1/../server-0"});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(0)->set_dir(dir + "/server-0");
    cases.push_back({"absolute dir", m, dir + "/server-0"});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(0)->set_dir("");
    cases.push_back({"empty dir", m, dir});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(0)->mutable_files(0)->set_name("../server-1/CURRENT");
    cases.push_back({"file name with a slash", m, "../server-1/CURRENT"});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(1)->clear_files();
    cases.push_back({"a part without files", m, "server-1"});
  }
  {
    proto::CheckpointManifest m = good;
    m.clear_servers();
    cases.push_back({"no parts", m, dir});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(1)->mutable_files(1)->set_size(m.servers(1).files(1).size() + 1);
    cases.push_back({"a wrong size in the manifest", m, dir + "/server-1/000009.sst"});
  }
  {
    proto::CheckpointManifest m = good;
    m.mutable_servers(0)->mutable_files(0)->set_sha256(std::string(64, '0'));
    cases.push_back({"a wrong sha256 in the manifest", m, dir + "/server-0/CURRENT"});
  }
  for (const Case& c : cases) {
    const Status s = VerifyCheckpoint(dir, c.m);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << c.what << ": " << s.ToString();
    EXPECT_TRUE(Contains(s.message(), c.named)) << c.what << ": " << s.ToString();
  }
}

// ------------------------------------------------------------ resolution

// RUN/checkpoints with committed checkpoints at `steps`, named by CheckpointName.
std::string MakeRun(const std::vector<int64_t>& steps, int64_t latest) {
  const std::string run = MakeTempDir("run");
  for (int64_t step : steps) {
    const std::string dir = run + "/checkpoints/" + CheckpointName(step);
    EXPECT_OK(MakeDirs(dir));
    MakeCheckpoint(dir, step);
  }
  if (latest >= 0) EXPECT_OK(UpdateLatest(run + "/checkpoints", CheckpointName(latest)));
  return run;
}

std::string CkptDir(const std::string& run, int64_t step) { return run + "/checkpoints/" + CheckpointName(step); }

TEST(CheckpointManifestTest, ResolveTakesACheckpointDirectoryAsItIs) {
  const std::string run = MakeRun({9, 10}, 10);
  std::string note;
  auto got = ResolveCheckpoint(CkptDir(run, 9), &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, CkptDir(run, 9));
  EXPECT_TRUE(Contains(note, "step 9")) << note;
  auto slash = ResolveCheckpoint(CkptDir(run, 9) + "/", &note);
  ASSERT_OK(slash.status());
  EXPECT_EQ(*slash, CkptDir(run, 9));
}

TEST(CheckpointManifestTest, ResolveOfACorruptCheckpointDirectoryIsDataLossNamingTheFile) {
  const std::string run = MakeRun({9, 10}, 10);
  const std::string file = CkptDir(run, 9) + "/server-1/CURRENT";
  FlipByte(file, 0);
  std::string note;
  auto got = ResolveCheckpoint(CkptDir(run, 9), &note);
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(got.status().message(), file)) << got.status().ToString();
}

TEST(CheckpointManifestTest, ResolveOfARunTakesLatest) {
  const std::string run = MakeRun({9, 10, 100}, 100);
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, CkptDir(run, 100));
  EXPECT_TRUE(Contains(note, "step 100")) << note;
  EXPECT_FALSE(Contains(note, "skipped")) << note;
  auto slash = ResolveCheckpoint(run + "/", &note);
  ASSERT_OK(slash.status());
  EXPECT_EQ(*slash, CkptDir(run, 100));
}

TEST(CheckpointManifestTest, ResolveOfCheckpointsOrLatestIsThatOfTheRun) {
  const std::string run = MakeRun({9, 10, 100}, 10);
  for (const std::string& path : {run + "/checkpoints", run + "/checkpoints/", run + "/checkpoints/latest"}) {
    std::string note;
    auto got = ResolveCheckpoint(path, &note);
    ASSERT_OK(got.status());
    EXPECT_EQ(*got, CkptDir(run, 10)) << path;
  }
  // Any other file is not a checkpoint, and neither is a `latest` outside checkpoints/.
  WriteRaw(run + "/latest", "step-000000000010\n");
  std::string note;
  EXPECT_EQ(ResolveCheckpoint(run + "/latest", &note).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolveCheckpoint(CkptDir(run, 10) + "/MANIFEST", &note).status().code(), StatusCode::kNotFound);
}

TEST(CheckpointManifestTest, ResolveTriesLatestBeforeNewer) {
  // latest names step 10 although 100 exists: latest is taken first.
  const std::string run = MakeRun({9, 10, 100}, 10);
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, CkptDir(run, 10));
}

TEST(CheckpointManifestTest, ResolveWithoutLatestTakesTheNewestByStepNumber) {
  // Names without padding: by name "step-9" sorts last, by step 100 is newest.
  const std::string run = MakeTempDir("run");
  for (int64_t step : {9, 10, 100}) {
    const std::string dir = run + "/checkpoints/step-" + std::to_string(step);
    ASSERT_OK(MakeDirs(dir));
    MakeCheckpoint(dir, step);
  }
  // An uncommitted newer one is not a checkpoint.
  ASSERT_OK(MakeDirs(run + "/checkpoints/step-200/server-0"));
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, run + "/checkpoints/step-100");

  // latest naming a checkpoint that is gone: the newest intact one instead.
  ASSERT_OK(UpdateLatest(run + "/checkpoints", "step-500"));
  auto gone = ResolveCheckpoint(run, &note);
  ASSERT_OK(gone.status());
  EXPECT_EQ(*gone, run + "/checkpoints/step-100");
  EXPECT_TRUE(Contains(note, "step-500")) << note;
}

TEST(CheckpointManifestTest, ResolveSkipsACorruptLatestForTheNextOlderIntactOne) {
  const std::string run = MakeRun({9, 10, 100}, 100);
  FlipByte(CkptDir(run, 100) + "/server-0/000009.sst", 17);
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, CkptDir(run, 10));
  EXPECT_TRUE(Contains(note, "step 10")) << note;
  EXPECT_TRUE(Contains(note, CheckpointName(100))) << note;

  // Two corrupt: falls back further; a garbage MANIFEST counts as corrupt.
  WriteRaw(CkptDir(run, 10) + "/MANIFEST", std::string("\x00\x00", 2));
  auto older = ResolveCheckpoint(run, &note);
  ASSERT_OK(older.status());
  EXPECT_EQ(*older, CkptDir(run, 9));
  EXPECT_TRUE(Contains(note, CheckpointName(100))) << note;
  EXPECT_TRUE(Contains(note, CheckpointName(10))) << note;
}

TEST(CheckpointManifestTest, ResolveWithNoCheckpointIsNotFound) {
  std::string note;
  const std::string run = MakeTempDir("run");
  EXPECT_EQ(ResolveCheckpoint(run, &note).status().code(), StatusCode::kNotFound);  // no checkpoints/
  ASSERT_OK(MakeDirs(run + "/checkpoints/step-000000000003/server-0"));           // uncommitted only
  EXPECT_EQ(ResolveCheckpoint(run, &note).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ResolveCheckpoint(run + "/missing", &note).status().code(), StatusCode::kNotFound);
}

TEST(CheckpointManifestTest, ResolveWithEveryCheckpointCorruptIsDataLoss) {
  const std::string run = MakeRun({9, 10}, 10);
  FlipByte(CkptDir(run, 9) + "/server-1/CURRENT", 3);
  std::filesystem::remove(CkptDir(run, 10) + "/server-0/000009.sst");
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  EXPECT_EQ(got.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(got.status().message(), CheckpointName(9))) << got.status().ToString();
  EXPECT_TRUE(Contains(got.status().message(), CheckpointName(10))) << got.status().ToString();
}

// ------------------------------------------------------------ latest and pruning

TEST(CheckpointManifestTest, UpdateLatestWritesTheNameAndReplacesIt) {
  const std::string dir = MakeTempDir("latest");
  ASSERT_OK(UpdateLatest(dir, CheckpointName(9)));
  EXPECT_EQ(ReadRaw(dir + "/latest"), "step-000000000009\n");
  ASSERT_OK(UpdateLatest(dir, CheckpointName(10)));
  EXPECT_EQ(ReadRaw(dir + "/latest"), "step-000000000010\n");
  EXPECT_EQ(Entries(dir), (std::set<std::string>{"latest"}));
}

TEST(CheckpointManifestTest, PruneKeepsTheNewestCommittedByStepNumber) {
  // Unpadded names, so name order (10, 100, 5, 9) differs from step order.
  const std::string checkpoints = MakeTempDir("prune") + "/checkpoints";
  for (int64_t step : {5, 9, 10, 100}) {
    const std::string dir = checkpoints + "/step-" + std::to_string(step);
    ASSERT_OK(MakeDirs(dir));
    MakeCheckpoint(dir, step);
  }
  // Uncommitted: two older than the newest committed, one newer.
  for (int64_t step : {7, 50, 200}) ASSERT_OK(MakeDirs(checkpoints + "/step-" + std::to_string(step) + "/server-0"));
  ASSERT_OK(UpdateLatest(checkpoints, "step-100"));
  ASSERT_OK(MakeDirs(checkpoints + "/notes"));  // not a checkpoint: left alone

  ASSERT_OK(PruneCheckpoints(checkpoints, 2));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{"step-10", "step-100", "step-200", "latest", "notes"}));

  ASSERT_OK(PruneCheckpoints(checkpoints, 1));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{"step-100", "step-200", "latest", "notes"}));
}

TEST(CheckpointManifestTest, PruneWithPaddedNamesAndRoomToSpareDeletesNoCommitted) {
  const std::string run = MakeRun({9, 10, 100}, 100);
  const std::string checkpoints = run + "/checkpoints";
  ASSERT_OK(MakeDirs(checkpoints + "/" + CheckpointName(99)));  // uncommitted leftover
  ASSERT_OK(PruneCheckpoints(checkpoints, 5));
  EXPECT_EQ(Entries(checkpoints),
            (std::set<std::string>{CheckpointName(9), CheckpointName(10), CheckpointName(100), "latest"}));
  ASSERT_OK(PruneCheckpoints(checkpoints, 2));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{CheckpointName(10), CheckpointName(100), "latest"}));
  // The kept ones are intact.
  std::string note;
  auto got = ResolveCheckpoint(run, &note);
  ASSERT_OK(got.status());
  EXPECT_EQ(*got, CkptDir(run, 100));
}

// The best epoch's checkpoint stays whatever its age, beside the newest keep_last.
TEST(CheckpointManifestTest, PruneKeepsTheBestCheckpointBesideTheNewest) {
  const std::string run = MakeRun({9, 10, 100, 110}, 110);
  const std::string checkpoints = run + "/checkpoints";
  ASSERT_OK(MakeDirs(checkpoints + "/" + CheckpointName(105)));  // uncommitted leftover below the newest
  ASSERT_OK(PruneCheckpoints(checkpoints, 1, /*keep_step=*/10));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{CheckpointName(10), CheckpointName(110), "latest"}));
  // The best is among the newest keep_last: nothing more is kept.
  ASSERT_OK(PruneCheckpoints(checkpoints, 1, /*keep_step=*/110));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{CheckpointName(110), "latest"}));
  // Without one (-1), keep_last alone decides, as before.
  const std::string other = MakeRun({9, 10}, 10) + "/checkpoints";
  ASSERT_OK(PruneCheckpoints(other, 1, -1));
  EXPECT_EQ(Entries(other), (std::set<std::string>{CheckpointName(10), "latest"}));
}

TEST(CheckpointManifestTest, PruneWithoutCommittedCheckpointsKeepsUncommittedOnes) {
  const std::string checkpoints = MakeTempDir("prune") + "/checkpoints";
  ASSERT_OK(MakeDirs(checkpoints + "/" + CheckpointName(3) + "/server-0"));
  ASSERT_OK(PruneCheckpoints(checkpoints, 1));
  EXPECT_EQ(Entries(checkpoints), (std::set<std::string>{CheckpointName(3)}));
}

}  // namespace
}  // namespace tessera
