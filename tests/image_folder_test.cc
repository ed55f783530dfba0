#include "core/image_folder.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/dataset.h"
#include "core/file_util.h"
#include "tests/image_files.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_images::EncodeJpeg;
using testing_images::EncodePng;
using testing_images::MakeImage;
using testing_images::WriteBytes;

const char kFashionMnist[] = "/usr/share/datasets/fashion-mnist";
// Fashion-MNIST's label order, as scripts/make_fmnist_images.py names the classes.
const std::vector<std::string> kFashionNames = {"T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                                "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle_boot"};

// A fresh directory for the current test, removed on destruction.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = MakeTempDir(std::string("image_folder_") + info->name());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes `bytes` at `name`, making its folders.
  void Write(const std::string& name, const std::string& bytes = "x") const {
    std::filesystem::create_directories(std::filesystem::path(File(name)).parent_path());
    WriteBytes(File(name), bytes);
  }
  void MakeDir(const std::string& name) const { std::filesystem::create_directories(File(name)); }

 private:
  std::string path_;
};

std::vector<std::string> Names(const ImageFolderListing& listing) {
  std::vector<std::string> names;
  for (const ImageFolderEntry& image : listing.images) names.push_back(image.name);
  return names;
}

std::vector<int> Labels(const ImageFolderListing& listing) {
  std::vector<int> labels;
  for (const ImageFolderEntry& image : listing.images) labels.push_back(image.label);
  return labels;
}

Image SmallImage(int seed, int channels = 1) {
  return MakeImage(6, 4, channels, [seed](int y, int x, int c) { return (seed * 31 + y * 7 + x * 3 + c * 50) % 256; });
}

// ------------------------------------------------------------------ listing

TEST(ImageFolderTest, ClassesAndFilesAreSortedBytewise) {
  TempDir dir;
  for (const char* name : {"b/10.png", "b/2.png", "b/A.JPG", "b/x.jpeg", "a/only.Png", "Z/z.jpg", "\xc3\xa9t\xc3\xa9/1.png"}) {
    dir.Write(name);
  }
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.path());
  ASSERT_OK(listing.status());
  // Upper case before lower case, and UTF-8 (bytes >= 0x80) after both.
  EXPECT_THAT(listing->class_names, ElementsAre("Z", "a", "b", "\xc3\xa9t\xc3\xa9"));
  EXPECT_THAT(Names(*listing), ElementsAre("Z/z.jpg", "a/only.Png", "b/10.png", "b/2.png", "b/A.JPG", "b/x.jpeg",
                                           "\xc3\xa9t\xc3\xa9/1.png"));
  EXPECT_THAT(Labels(*listing), ElementsAre(0, 1, 2, 2, 2, 2, 3));
  EXPECT_THAT(listing->ClassCounts(), ElementsAre(1, 1, 4, 1));
  EXPECT_EQ(listing->dir, dir.path());
  EXPECT_EQ(listing->Path(3), dir.path() + "/b/2.png");
  EXPECT_EQ(listing->ignored, 0);
  EXPECT_EQ(listing->first_ignored, "");
}

TEST(ImageFolderTest, HiddenEntriesAreSkippedAndOthersCounted) {
  TempDir dir;
  dir.Write("cat/1.png");
  dir.Write("cat/.2.png.tmp");     // hidden: a temp file of the conversion script
  dir.Write("cat/.DS_Store");      // hidden
  dir.Write("cat/notes.txt");      // ignored, counted
  dir.Write("cat/old/3.png");      // a folder inside a class folder: ignored, counted
  dir.Write(".cache/4.png");       // a hidden folder is no class
  dir.Write("README.md");          // loose in dir: ignored, counted
  dir.Write("dog/5.jpeg");
  dir.Write("dog/Thumbs.db");      // ignored, counted
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.path() + "//");
  ASSERT_OK(listing.status());
  EXPECT_EQ(listing->dir, dir.path());  // trailing slashes dropped
  EXPECT_THAT(listing->class_names, ElementsAre("cat", "dog"));
  EXPECT_THAT(Names(*listing), ElementsAre("cat/1.png", "dog/5.jpeg"));
  EXPECT_EQ(listing->Path(1), dir.path() + "/dog/5.jpeg");
  EXPECT_EQ(listing->ignored, 4);
  EXPECT_EQ(listing->first_ignored, "README.md");
}

TEST(ImageFolderTest, LinksAreFollowed) {
  TempDir dir;
  dir.Write("elsewhere/a.png");
  dir.Write("data/cat/real.png");
  dir.MakeDir("data/dog");
  std::filesystem::create_directory_symlink(dir.File("elsewhere"), dir.File("data/bird"));
  std::filesystem::create_symlink(dir.File("elsewhere/a.png"), dir.File("data/dog/linked.png"));
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  EXPECT_THAT(Names(*listing), ElementsAre("bird/a.png", "cat/real.png", "dog/linked.png"));
}

TEST(ImageFolderTest, EachListingErrorIsOneLineNamingTheFolder) {
  TempDir dir;
  Status status = ListImageFolder(dir.File("missing")).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(), dir.File("missing") + ": no such directory");

  dir.Write("plain-file");
  status = ListImageFolder(dir.File("plain-file")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("plain-file") + ": not a directory");
  EXPECT_EQ(ListImageFolder(dir.File("plain-file/below")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ListImageFolder("").status().message(), "image folder: the path is empty");

  dir.MakeDir("empty");
  dir.Write("empty/loose.png");
  dir.Write("empty/.hidden/a.png");
  status = ListImageFolder(dir.File("empty")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("empty") + ": no class folders (expected " + dir.File("empty") +
                                  "/CLASS_NAME/ folders of .png, .jpg or .jpeg files)");

  dir.Write("one-empty/cat/1.png");
  dir.Write("one-empty/dog/readme.txt");
  dir.Write("one-empty/dog/.hidden.png");
  status = ListImageFolder(dir.File("one-empty")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("one-empty/dog") + ": class folder 'dog' has no .png, .jpg or .jpeg files");

  dir.Write("control/ca\nt/1.png");
  status = ListImageFolder(dir.File("control")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("control") + ": class folder 'ca\\x0at': a control character in a class name");

  dir.Write("broken/cat/1.png");
  std::filesystem::create_symlink(dir.File("nowhere.png"), dir.File("broken/cat/2.png"));
  status = ListImageFolder(dir.File("broken")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("broken/cat/2.png") + ": not a regular file (a folder, or a broken link?)");

  dir.MakeDir("folder-named-png/cat/3.png");
  status = ListImageFolder(dir.File("folder-named-png")).status();
  EXPECT_EQ(status.message(), dir.File("folder-named-png/cat/3.png") + ": not a regular file (a folder, or a broken link?)");
}

TEST(ImageFolderTest, AnUnreadableClassFolderIsNamed) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads every folder";
  TempDir dir;
  dir.Write("data/cat/1.png");
  ASSERT_EQ(chmod(dir.File("data/cat").c_str(), 0), 0);
  const Status status = ListImageFolder(dir.File("data")).status();
  chmod(dir.File("data/cat").c_str(), 0755);
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), StartsWith("cannot list " + dir.File("data/cat") + ": "));
}

TEST(ImageFolderTest, AtMost256Classes) {
  TempDir dir;
  for (int i = 0; i < 256; ++i) dir.Write("data/c" + std::to_string(1000 + i) + "/a.png");
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  EXPECT_EQ(listing->class_names.size(), 256u);
  EXPECT_EQ(listing->images.back().label, 255);
  dir.Write("data/c9999/a.png");
  const Status status = ListImageFolder(dir.File("data")).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("data") + ": 257 class folders, at most 256");
}

TEST(ImageFolderTest, AFolderListedWithGivenClassNames) {
  TempDir dir;
  dir.Write("test/dog/1.png");
  dir.Write("test/bird/2.png");
  dir.Write("test/bird/1.png");
  // The training folder's names, in its (sorted) order; "cat" has no test folder.
  ImageFolderOptions options;
  options.class_names = {"bird", "cat", "dog"};
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("test"), options);
  ASSERT_OK(listing.status());
  EXPECT_THAT(listing->class_names, ElementsAre("bird", "cat", "dog"));
  EXPECT_THAT(Names(*listing), ElementsAre("bird/1.png", "bird/2.png", "dog/1.png"));
  EXPECT_THAT(Labels(*listing), ElementsAre(0, 0, 2));
  EXPECT_THAT(listing->ClassCounts(), ElementsAre(2, 0, 1));

  // Labels are indexes into the given list, whatever its order.
  options.class_names = {"dog", "bird"};
  listing = ListImageFolder(dir.File("test"), options);
  ASSERT_OK(listing.status());
  EXPECT_THAT(Names(*listing), ElementsAre("dog/1.png", "bird/1.png", "bird/2.png"));
  EXPECT_THAT(Labels(*listing), ElementsAre(0, 1, 1));

  dir.Write("test/zebra/1.png");
  const Status status = ListImageFolder(dir.File("test"), options).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("test/zebra") + ": class folder 'zebra' is not one of the 2 classes given");
}

TEST(ImageFolderTest, TheDigestFollowsWhatTheListingSays) {
  TempDir dir;
  dir.Write("data/cat/1.png");
  dir.Write("data/dog/2.png");
  auto digest = [&] {
    StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
    EXPECT_OK(listing.status());
    return listing.ok() ? ImageFolderDigest(*listing) : "";
  };
  const std::string first = digest();
  EXPECT_EQ(first.size(), 64u);
  EXPECT_EQ(digest(), first);
  dir.Write("data/dog/notes.txt");  // ignored: the examples are the same
  EXPECT_EQ(digest(), first);
  dir.Write("data/dog/3.png");
  const std::string added = digest();
  EXPECT_NE(added, first);
  std::filesystem::rename(dir.File("data/dog/3.png"), dir.File("data/dog/4.png"));
  EXPECT_NE(digest(), added);
  // The same files under other labels.
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  ImageFolderListing relabeled = *listing;
  relabeled.images[0].label = 1;
  EXPECT_NE(ImageFolderDigest(relabeled), ImageFolderDigest(*listing));
}

// ------------------------------------------------------------------ checking and reading

TEST(ImageFolderTest, CheckDecodesEveryImageAndSumsUp) {
  TempDir dir;
  dir.Write("data/cat/1.png", EncodePng(SmallImage(1)));
  dir.Write("data/cat/2.jpg", EncodeJpeg(MakeImage(16, 9, 3, [](int y, int x, int c) { return 10 * x + y + c; })));
  dir.Write("data/dog/3.jpeg", EncodeJpeg(MakeImage(5, 20, 1, [](int y, int, int) { return 12 * y; })));
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  for (const bool decode_pixels : {true, false}) {
    StatusOr<ImageFolderStats> stats = CheckImageFolder(*listing, {.decode_pixels = decode_pixels});
    ASSERT_OK(stats.status());
    EXPECT_EQ(stats->images, 3);
    EXPECT_EQ(stats->gray_images, 2);
    EXPECT_EQ(stats->color_images, 1);
    EXPECT_EQ(stats->min_width, 5);
    EXPECT_EQ(stats->max_width, 16);
    EXPECT_EQ(stats->min_height, 4);
    EXPECT_EQ(stats->max_height, 20);
    int64_t bytes = 0;
    for (int64_t i = 0; i < 3; ++i) bytes += static_cast<int64_t>(std::filesystem::file_size(listing->Path(i)));
    EXPECT_EQ(stats->file_bytes, bytes);
  }
}

TEST(ImageFolderTest, CheckNamesTheFirstBadFile) {
  TempDir dir;
  const std::string png = EncodePng(SmallImage(2));
  dir.Write("data/cat/1.png", png);
  dir.Write("data/cat/2.png", png.substr(0, png.size() - 20));  // cut inside the image data
  dir.Write("data/dog/3.png", "GIF89a");
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  Status status = CheckImageFolder(*listing).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), dir.File("data/cat/2.png") + ": truncated PNG file");
  // Headers only: the cut data goes unseen, the GIF does not.
  status = CheckImageFolder(*listing, {.decode_pixels = false}).status();
  EXPECT_EQ(status.message(), dir.File("data/dog/3.png") + ": not a PNG or JPEG file (starts with bytes 47 49 46 38)");
  // Too big for the options.
  status = CheckImageFolder(*listing, {.decode = {.max_pixels = 23}}).status();
  EXPECT_EQ(status.message(),
            dir.File("data/cat/1.png") + ": image of 6x4 pixels, more than 23 (DecodeOptions::max_pixels)");
  // A file gone since the listing.
  std::filesystem::remove(dir.File("data/cat/1.png"));
  EXPECT_EQ(CheckImageFolder(*listing).status().code(), StatusCode::kNotFound);
}

TEST(ImageFolderTest, ReadFolderImageByIndex) {
  TempDir dir;
  const Image gray = SmallImage(3), rgb = SmallImage(4, 3);
  dir.Write("data/a/1.png", EncodePng(gray));
  dir.Write("data/b/1.png", EncodePng(rgb));
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("data"));
  ASSERT_OK(listing.status());
  StatusOr<Image> image = ReadFolderImage(*listing, 1);
  ASSERT_OK(image.status());
  EXPECT_EQ(image->channels, 3);
  EXPECT_EQ(image->pixels, rgb.pixels);
  EXPECT_EQ(listing->images[1].label, 1);
  image = ReadFolderImage(*listing, 0);
  ASSERT_OK(image.status());
  EXPECT_EQ(image->pixels, gray.pixels);
  const Status status = ReadFolderImage(*listing, 2).status();
  EXPECT_EQ(status.code(), StatusCode::kOutOfRange);
  EXPECT_EQ(status.message(), "image 2 of " + dir.File("data") + ": the folder lists 2 images");
  EXPECT_EQ(ReadFolderImage(*listing, -1).status().code(), StatusCode::kOutOfRange);
}

// ------------------------------------------------------------------ Fashion-MNIST

// The first examples of the Fashion-MNIST split, or a skip.
StatusOr<ImageDataset> LoadFashion(const std::string& prefix, int64_t count) {
  return LoadImageDataset(std::string(kFashionMnist) + "/" + prefix + "-images-idx3-ubyte.gz",
                          std::string(kFashionMnist) + "/" + prefix + "-labels-idx1-ubyte.gz", count);
}

Image DatasetImage(const ImageDataset& data, int64_t index) {
  Image image;
  image.width = data.cols;
  image.height = data.rows;
  image.channels = 1;
  const auto first = data.pixels.begin() + index * data.example_size();
  image.pixels.assign(first, first + data.example_size());
  return image;
}

TEST(ImageFolderTest, FashionMnistImagesRoundTripThroughPngExactly) {
  if (!FileExists(std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  StatusOr<ImageDataset> data = LoadFashion("train", 100);
  ASSERT_OK(data.status());
  TempDir dir;
  for (int64_t i = 0; i < 40; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "/%05lld.png", static_cast<long long>(i));
    dir.Write("fmnist/" + kFashionNames[data->labels[i]] + name, EncodePng(DatasetImage(*data, i)));
  }
  StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("fmnist"));
  ASSERT_OK(listing.status());
  ASSERT_OK(CheckImageFolder(*listing).status());
  EXPECT_EQ(listing->images.size(), 40u);
  for (int64_t i = 0; i < static_cast<int64_t>(listing->images.size()); ++i) {
    const ImageFolderEntry& entry = listing->images[i];
    const int64_t example = std::stoll(entry.name.substr(entry.name.find('/') + 1));
    EXPECT_EQ(listing->class_names[entry.label], kFashionNames[data->labels[example]]) << entry.name;
    StatusOr<Image> image = ReadFolderImage(*listing, i);
    ASSERT_OK(image.status());
    EXPECT_EQ(image->width, 28);
    EXPECT_EQ(image->height, 28);
    EXPECT_EQ(image->pixels, DatasetImage(*data, example).pixels) << entry.name;
  }
}

// scripts/make_fmnist_images.py writes what the IDX files hold, under the
// class names, and the folders list and decode.
TEST(ImageFolderTest, TheConversionScriptWritesFashionMnistFolders) {
  if (!FileExists(std::string(kFashionMnist) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  }
  if (!FileExists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  TempDir dir;
  const std::string command = "/usr/bin/python3 " + SourceDir() + "/scripts/make_fmnist_images.py " + dir.File("out") +
                              " --per-class 3 > " + dir.File("log") + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << FileText(dir.File("log"));
  for (const auto& [folder, prefix] : std::vector<std::pair<std::string, std::string>>{{"train", "train"}, {"test", "t10k"}}) {
    SCOPED_TRACE(folder);
    StatusOr<ImageDataset> data = LoadFashion(prefix, 0);
    ASSERT_OK(data.status());
    StatusOr<ImageFolderListing> listing = ListImageFolder(dir.File("out/" + folder));
    ASSERT_OK(listing.status());
    std::vector<std::string> sorted = kFashionNames;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(listing->class_names, sorted);
    EXPECT_EQ(listing->class_names[0], "Ankle_boot");
    EXPECT_THAT(listing->ClassCounts(), ::testing::Each(3));
    EXPECT_EQ(listing->ignored, 0);
    ASSERT_OK(CheckImageFolder(*listing).status());
    // Each class holds the first 3 of its examples in file order.
    std::map<std::string, std::vector<int64_t>> expected;
    for (int64_t i = 0; i < data->count; ++i) {
      std::vector<int64_t>& first = expected[kFashionNames[data->labels[i]]];
      if (first.size() < 3) first.push_back(i);
    }
    for (int64_t i = 0; i < static_cast<int64_t>(listing->images.size()); ++i) {
      const ImageFolderEntry& entry = listing->images[i];
      const std::string& name = listing->class_names[entry.label];
      const int64_t example = std::stoll(entry.name.substr(name.size() + 1));
      EXPECT_THAT(expected[name], ::testing::Contains(example)) << entry.name;
      StatusOr<Image> image = ReadFolderImage(*listing, i);
      ASSERT_OK(image.status());
      EXPECT_EQ(image->pixels, DatasetImage(*data, example).pixels) << entry.name;
    }
  }
}

}  // namespace
}  // namespace tessera
