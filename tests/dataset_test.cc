#include "core/dataset.h"
#include "tests/test_util.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/idx_reader.h"

namespace tessera {
namespace {

using Bytes = std::vector<uint8_t>;

// A fresh directory for the current test, removed on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = base + "tessera_dataset_" + info->name() + "_" + std::to_string(getpid());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Bytes ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Five 3x2 images whose pixel values encode (example, position), labels 0..4.
struct SmallFiles {
  std::string images;
  std::string labels;
  Bytes pixels;
  Bytes label_values = {3, 0, 9, 4, 1};
};

SmallFiles WriteSmallFiles(const ScratchDir& dir, const std::string& suffix) {
  SmallFiles files;
  files.images = dir.File("images" + suffix);
  files.labels = dir.File("labels" + suffix);
  for (int example = 0; example < 5; ++example) {
    for (int i = 0; i < 6; ++i) files.pixels.push_back(static_cast<uint8_t>(example * 10 + i));
  }
  EXPECT_TRUE(WriteIdxFile(files.images, {5, 3, 2}, files.pixels).ok());
  EXPECT_TRUE(WriteIdxFile(files.labels, {5}, files.label_values).ok());
  return files;
}

TEST(DatasetTest, LoadsPlainAndGzipFiles) {
  ScratchDir dir;
  for (const char* suffix : {".idx", ".idx.gz"}) {
    const SmallFiles files = WriteSmallFiles(dir, suffix);
    StatusOr<ImageDataset> dataset = LoadImageDataset(files.images, files.labels, 0);
    ASSERT_TRUE(dataset.ok()) << dataset.status().ToString();
    EXPECT_EQ(dataset->count, 5);
    EXPECT_EQ(dataset->rows, 3);
    EXPECT_EQ(dataset->cols, 2);
    EXPECT_EQ(dataset->example_size(), 6);
    EXPECT_EQ(dataset->num_classes, 10);
    EXPECT_EQ(dataset->pixels, files.pixels);
    EXPECT_EQ(dataset->labels, files.label_values);

    StatusOr<int64_t> count = CountExamples(files.images, files.labels);
    ASSERT_TRUE(count.ok()) << count.status().ToString();
    EXPECT_EQ(*count, 5);
  }
}

TEST(DatasetTest, MaxExamplesKeepsThePrefix) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx.gz");
  StatusOr<ImageDataset> two = LoadImageDataset(files.images, files.labels, 2);
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->count, 2);
  EXPECT_EQ(two->pixels, Bytes(files.pixels.begin(), files.pixels.begin() + 12));
  EXPECT_EQ(two->labels, (Bytes{3, 0}));

  for (int64_t max_examples : {int64_t{5}, int64_t{6}, int64_t{1000}, int64_t{0}, int64_t{-1}}) {
    StatusOr<ImageDataset> all = LoadImageDataset(files.images, files.labels, max_examples);
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_EQ(all->count, 5) << "max_examples " << max_examples;
    EXPECT_EQ(all->pixels.size(), 30u);
    EXPECT_EQ(all->labels.size(), 5u);
  }
}

TEST(DatasetTest, SelectExamplesKeepsThoseExamplesInOrder) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx");
  StatusOr<ImageDataset> all = LoadImageDataset(files.images, files.labels, 0);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  const ImageDataset picked = SelectExamples(*all, {1, 3, 4});
  EXPECT_EQ(picked.count, 3);
  EXPECT_EQ(picked.rows, 3);
  Bytes expected;
  for (int example : {1, 3, 4}) {
    for (int i = 0; i < 6; ++i) expected.push_back(static_cast<uint8_t>(example * 10 + i));
  }
  EXPECT_EQ(picked.pixels, expected);
  EXPECT_EQ(picked.labels, (Bytes{0, 4, 1}));
  EXPECT_EQ(SelectExamples(*all, {0, 1, 2, 3, 4}).pixels, files.pixels) << "all of them: unchanged";
  EXPECT_EQ(SelectExamples(*all, {}).count, 0);

  // Int32 images move their ids.
  ImageDataset ids;
  ids.count = 3;
  ids.rows = 1;
  ids.cols = 2;
  ids.int32_values = true;
  ids.ids = {10, 11, 20, 21, 30, 31};
  ids.labels = {1, 2, 3};
  const ImageDataset last = SelectExamples(ids, {2});
  EXPECT_EQ(last.ids, (std::vector<int32_t>{30, 31}));
  EXPECT_EQ(last.labels, (Bytes{3}));
}

TEST(DatasetTest, Int32ImagesLoadAsIds) {
  ScratchDir dir;
  for (const char* suffix : {".idx", ".idx.gz"}) {
    const std::string images = dir.File(std::string("ids") + suffix), labels = dir.File(std::string("l") + suffix);
    // Beyond a byte, negative, and the int32 extremes: all must come back as they were.
    const std::vector<int32_t> ids = {0, 255, 256, 70000, -1, 2147483647, -2147483647 - 1, 12345};
    ASSERT_OK(WriteIdxInt32File(images, {4, 1, 2}, ids));
    ASSERT_OK(WriteIdxFile(labels, {4}, Bytes{1, 2, 3, 4}));
    StatusOr<ImageDataset> dataset = LoadImageDataset(images, labels, 0);
    ASSERT_TRUE(dataset.ok()) << dataset.status().ToString();
    EXPECT_TRUE(dataset->int32_values);
    EXPECT_EQ(dataset->ids, ids);
    EXPECT_TRUE(dataset->pixels.empty());
    EXPECT_EQ(dataset->example_size(), 2);
    StatusOr<ImageDataset> two = LoadImageDataset(images, labels, 2);
    ASSERT_TRUE(two.ok());
    EXPECT_EQ(two->ids, std::vector<int32_t>(ids.begin(), ids.begin() + 4));
    EXPECT_EQ(CountExamples(images, labels).value(), 4);
    uint8_t type = 0;
    ASSERT_TRUE(ReadIdxDims(images, &type).ok());
    EXPECT_EQ(type, kIdxInt32);
  }
  // Labels must stay bytes.
  const std::string images = dir.File("ids.idx"), labels = dir.File("int32-labels.idx");
  ASSERT_OK(WriteIdxInt32File(labels, {4}, {1, 2, 3, 4}));
  const Status status = LoadImageDataset(images, labels, 0).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_TRUE(Contains(status.message(), "labels must be unsigned bytes")) << status.message();
  EXPECT_FALSE(WriteIdxInt32File(images, {3, 1, 2}, {1, 2}).ok()) << "dims need 6 values";
}

TEST(DatasetTest, LabelCountMismatchIsInvalidArgument) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx");
  ASSERT_TRUE(WriteIdxFile(files.labels, {4}, {1, 2, 3, 4}).ok());
  for (const Status& status : {LoadImageDataset(files.images, files.labels, 0).status(),
                               CountExamples(files.images, files.labels).status()}) {
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), files.labels)) << status.message();
    EXPECT_TRUE(Contains(status.message(), "4 labels")) << status.message();
    EXPECT_TRUE(Contains(status.message(), "5 images")) << status.message();
  }
}

TEST(DatasetTest, LabelOutOfRangeIsInvalidArgument) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx.gz");
  for (uint8_t bad : {10, 255}) {
    ASSERT_TRUE(WriteIdxFile(files.labels, {5}, {1, 2, 3, bad, 4}).ok());
    StatusOr<ImageDataset> dataset = LoadImageDataset(files.images, files.labels, 0);
    ASSERT_FALSE(dataset.ok());
    EXPECT_EQ(dataset.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(dataset.status().message(), files.labels)) << dataset.status().message();
    EXPECT_TRUE(Contains(dataset.status().message(), "index 3")) << dataset.status().message();
    EXPECT_TRUE(Contains(dataset.status().message(), "got " + std::to_string(bad)));
    // Also rejected when the bad label lies beyond max_examples: the file is bad.
    EXPECT_FALSE(LoadImageDataset(files.images, files.labels, 2).ok());
  }
}

TEST(DatasetTest, WrongDimensionCountIsInvalidArgument) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx");
  const std::string flat = dir.File("flat.idx");
  ASSERT_TRUE(WriteIdxFile(flat, {5, 6}, files.pixels).ok());
  Status status = CountExamples(flat, files.labels).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(status.message(), flat)) << status.message();
  EXPECT_EQ(LoadImageDataset(flat, files.labels, 0).status().code(), StatusCode::kInvalidArgument);

  const std::string square_labels = dir.File("square_labels.idx");
  ASSERT_TRUE(WriteIdxFile(square_labels, {5, 1}, files.label_values).ok());
  status = LoadImageDataset(files.images, square_labels, 0).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(status.message(), square_labels)) << status.message();

  // Images and labels swapped.
  EXPECT_EQ(CountExamples(files.labels, files.images).status().code(), StatusCode::kInvalidArgument);
}

TEST(DatasetTest, EmptyImagesAreInvalidArgument) {
  ScratchDir dir;
  const std::string images = dir.File("images.idx");
  const std::string labels = dir.File("labels.idx");
  ASSERT_TRUE(WriteIdxFile(images, {0, 28, 28}, {}).ok());
  ASSERT_TRUE(WriteIdxFile(labels, {0}, {}).ok());
  EXPECT_EQ(CountExamples(images, labels).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteIdxFile(images, {3, 0, 28}, {}).ok());
  ASSERT_TRUE(WriteIdxFile(labels, {3}, {1, 2, 3}).ok());
  EXPECT_EQ(LoadImageDataset(images, labels, 0).status().code(), StatusCode::kInvalidArgument);
}

TEST(DatasetTest, MissingFilesAreNotFound) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx");
  const std::string missing = dir.File("missing.idx.gz");
  for (const Status& status :
       {LoadImageDataset(missing, files.labels, 0).status(), LoadImageDataset(files.images, missing, 0).status(),
        CountExamples(missing, files.labels).status(), CountExamples(files.images, missing).status()}) {
    EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
    EXPECT_TRUE(Contains(status.message(), missing)) << status.message();
  }
}

TEST(DatasetTest, TruncatedImagesAreDataLossButHeadersStillCount) {
  ScratchDir dir;
  const SmallFiles files = WriteSmallFiles(dir, ".idx");
  const Bytes bytes = ReadBytes(files.images);
  ASSERT_EQ(bytes.size(), 4 + 3 * 4 + 30u);
  WriteBytes(files.images, Bytes(bytes.begin(), bytes.end() - 7));

  StatusOr<ImageDataset> dataset = LoadImageDataset(files.images, files.labels, 0);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(dataset.status().message(), files.images)) << dataset.status().message();
  EXPECT_TRUE(Contains(dataset.status().message(), "expected 30")) << dataset.status().message();
  EXPECT_TRUE(Contains(dataset.status().message(), "got 23")) << dataset.status().message();

  // CountExamples reads only headers, which are intact.
  StatusOr<int64_t> count = CountExamples(files.images, files.labels);
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, 5);
}

TEST(DatasetTest, WriteIdxFileRejectsBadShapes) {
  ScratchDir dir;
  const std::string path = dir.File("bad.idx");
  EXPECT_EQ(WriteIdxFile(path, {2, 3}, Bytes(5)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {}, Bytes()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {1, 1, 1, 1, 1}, Bytes(1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteIdxFile(path, {0xffffffffu, 0xffffffffu, 0xffffffffu}, Bytes(1)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(DatasetTest, WriteIdxFileIsAtomicAndOverwrites) {
  ScratchDir dir;
  const std::string path = dir.File("data.idx.gz");
  ASSERT_TRUE(WriteIdxFile(path, {3}, {1, 2, 3}).ok());
  ASSERT_TRUE(WriteIdxFile(path, {2}, {7, 8}).ok());
  StatusOr<IdxArray> array = ReadIdxFile(path);
  ASSERT_TRUE(array.ok()) << array.status().ToString();
  EXPECT_EQ(array->data, (Bytes{7, 8}));

  // No temp files are left behind.
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    ++entries;
    EXPECT_EQ(entry.path().string(), path);
  }
  EXPECT_EQ(entries, 1);

  const Status status = WriteIdxFile(dir.File("no/such/dir/x.idx"), {1}, {0});
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
}

constexpr char kFashionDir[] = "/usr/share/datasets/fashion-mnist/";

void CheckFashionSplit(const std::string& prefix, int64_t expected_count) {
  const std::string images = kFashionDir + prefix + "-images-idx3-ubyte.gz";
  const std::string labels = kFashionDir + prefix + "-labels-idx1-ubyte.gz";
  StatusOr<int64_t> count = CountExamples(images, labels);
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, expected_count);

  const auto start = std::chrono::steady_clock::now();
  StatusOr<ImageDataset> dataset = LoadImageDataset(images, labels, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(dataset.ok()) << dataset.status().ToString();
  std::cout << prefix << " loaded in " << seconds << " s\n";
  EXPECT_EQ(dataset->count, expected_count);
  EXPECT_EQ(dataset->rows, 28);
  EXPECT_EQ(dataset->cols, 28);
  EXPECT_EQ(dataset->pixels.size(), static_cast<size_t>(expected_count * 28 * 28));
  ASSERT_EQ(dataset->labels.size(), static_cast<size_t>(expected_count));

  std::array<int64_t, 10> per_class{};
  for (uint8_t label : dataset->labels) {
    ASSERT_LT(label, 10);
    ++per_class[label];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], expected_count / 10) << "class " << c;
}

TEST(DatasetTest, RealFashionMnist) {
  if (!std::filesystem::exists(std::string(kFashionDir) + "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed under " << kFashionDir;
  }
  CheckFashionSplit("train", 60000);
  CheckFashionSplit("t10k", 10000);
}

}  // namespace
}  // namespace tessera
