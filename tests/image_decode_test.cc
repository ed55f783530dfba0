#include "core/image_decode.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/random.h"
#include "tests/image_files.h"
#include "tests/test_util.h"

namespace tessera {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing_images::EncodeJpeg;
using testing_images::EncodePng;
using testing_images::JpegOptions;
using testing_images::MakeImage;
using testing_images::PngSpec;

std::vector<uint8_t> Bytes(std::initializer_list<int> values) { return std::vector<uint8_t>(values.begin(), values.end()); }

// A gray image of one row (or column) with the given samples.
Image Row(std::initializer_list<int> samples) {
  Image image;
  image.width = static_cast<int>(samples.size());
  image.height = 1;
  image.channels = 1;
  image.pixels.assign(samples.begin(), samples.end());
  return image;
}
Image Column(std::initializer_list<int> samples) {
  Image image = Row(samples);
  std::swap(image.width, image.height);
  return image;
}

// The decoded image, or a failure naming the status.
Image MustDecode(const std::string& bytes, const DecodeOptions& options = {}) {
  StatusOr<Image> image = DecodeImage("test", bytes, options);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  return image.ok() ? *image : Image{};
}

// Checks an error's shape: InvalidArgument, one line, starting with the name.
void ExpectOneLineError(const Status& status, const std::string& name) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(status.message(), StartsWith(name + ": "));
  EXPECT_EQ(status.message().find('\n'), std::string::npos) << status.message();
}

int MaxDifference(const Image& a, const Image& b) {
  EXPECT_EQ(a.size(), b.size());
  int most = 0;
  for (size_t i = 0; i < a.pixels.size() && i < b.pixels.size(); ++i) most = std::max(most, std::abs(a.pixels[i] - b.pixels[i]));
  return most;
}

// A smooth RGB picture, which JPEG keeps close.
Image Gradient(int width, int height) {
  return MakeImage(width, height, 3, [&](int y, int x, int c) { return 40 + (c == 0 ? 8 * x : c == 1 ? 8 * y : 4 * (x + y)); });
}

// ------------------------------------------------------------------ PNG

TEST(ImageDecodeTest, Gray8BitPngIsExact) {
  const Image source = MakeImage(5, 3, 1, [](int y, int x, int) { return 17 * y + 50 * x; });
  const Image decoded = MustDecode(EncodePng(source));
  EXPECT_EQ(decoded.width, 5);
  EXPECT_EQ(decoded.height, 3);
  EXPECT_EQ(decoded.channels, 1);
  EXPECT_EQ(decoded.pixels, source.pixels);
}

TEST(ImageDecodeTest, RgbPngIsExactAndHwc) {
  const Image source = MakeImage(4, 3, 3, [](int y, int x, int c) { return 60 * c + 13 * y + 3 * x; });
  const Image decoded = MustDecode(EncodePng(source));
  EXPECT_EQ(decoded.channels, 3);
  EXPECT_EQ(decoded.pixels, source.pixels);
  EXPECT_EQ(decoded.at(2, 1, 2), 120 + 26 + 3);  // HWC: (y * width + x) * channels + c
}

TEST(ImageDecodeTest, PalettePngBecomesRgbAndItsTransparencyIsDropped) {
  PngSpec spec;
  spec.width = 3;
  spec.height = 2;
  spec.bit_depth = 4;
  spec.color_type = PNG_COLOR_TYPE_PALETTE;
  spec.palette = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
  spec.samples = {0, 1, 2, 2, 1, 0};
  const std::vector<uint8_t> expected = Bytes({10, 20, 30, 200, 100, 0, 1, 2, 3, 1, 2, 3, 200, 100, 0, 10, 20, 30});
  EXPECT_EQ(MustDecode(EncodePng(spec)).pixels, expected);
  spec.palette_alpha = {0, 128, 255};
  const Image with_alpha = MustDecode(EncodePng(spec));
  EXPECT_EQ(with_alpha.channels, 3);
  EXPECT_EQ(with_alpha.pixels, expected);
}

TEST(ImageDecodeTest, SixteenBitPngIsScaledWithRounding) {
  PngSpec spec;
  spec.bit_depth = 16;
  spec.samples = {0, 1, 128, 129, 257, 32767, 32768, 65407, 65408, 65535, 12345, 54321};
  spec.width = static_cast<int>(spec.samples.size());
  spec.height = 1;
  std::vector<uint8_t> expected;
  // round(v * 255 / 65535) = round(v / 257); v / 257 is never a half.
  for (const uint16_t v : spec.samples) expected.push_back(static_cast<uint8_t>((2 * v + 257) / (2 * 257)));
  EXPECT_EQ(expected[3], 1);  // 129 / 257 is just over a half
  EXPECT_EQ(MustDecode(EncodePng(spec)).pixels, expected);

  spec.color_type = PNG_COLOR_TYPE_RGB;
  spec.width = 4;  // the same 12 samples as 4 RGB pixels
  const Image rgb = MustDecode(EncodePng(spec));
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.pixels, expected);
}

TEST(ImageDecodeTest, AlphaIsDroppedNotComposited) {
  PngSpec rgba;
  rgba.width = 2;
  rgba.height = 1;
  rgba.color_type = PNG_COLOR_TYPE_RGB_ALPHA;
  rgba.samples = {10, 20, 30, 0, 200, 210, 220, 77};
  const Image rgb = MustDecode(EncodePng(rgba));
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.pixels, Bytes({10, 20, 30, 200, 210, 220}));

  PngSpec gray_alpha;
  gray_alpha.width = 3;
  gray_alpha.height = 1;
  gray_alpha.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  gray_alpha.samples = {5, 0, 6, 128, 7, 255};
  const Image gray = MustDecode(EncodePng(gray_alpha));
  EXPECT_EQ(gray.channels, 1);
  EXPECT_EQ(gray.pixels, Bytes({5, 6, 7}));
}

TEST(ImageDecodeTest, LowBitDepthGrayExpandsToFullRange) {
  PngSpec one_bit;
  one_bit.width = 9;  // more than one byte a row
  one_bit.height = 2;
  one_bit.bit_depth = 1;
  one_bit.samples = {1, 0, 1, 1, 0, 0, 0, 1, 1, /**/ 0, 1, 0, 0, 1, 1, 1, 0, 0};
  std::vector<uint8_t> expected;
  for (const uint16_t s : one_bit.samples) expected.push_back(s ? 255 : 0);
  EXPECT_EQ(MustDecode(EncodePng(one_bit)).pixels, expected);

  PngSpec two_bit;
  two_bit.width = 4;
  two_bit.height = 1;
  two_bit.bit_depth = 2;
  two_bit.samples = {0, 1, 2, 3};
  EXPECT_EQ(MustDecode(EncodePng(two_bit)).pixels, Bytes({0, 85, 170, 255}));
}

TEST(ImageDecodeTest, InterlacedPngIsExact) {
  for (const int channels : {1, 3}) {
    const Image source = MakeImage(11, 9, channels, [](int y, int x, int c) { return (31 * y + 7 * x + 90 * c) % 256; });
    PngSpec spec;
    spec.width = source.width;
    spec.height = source.height;
    spec.color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
    spec.interlaced = true;
    spec.samples.assign(source.pixels.begin(), source.pixels.end());
    EXPECT_EQ(MustDecode(EncodePng(spec)).pixels, source.pixels) << channels << " channels";
  }
}

TEST(ImageDecodeTest, HeaderOfPng) {
  PngSpec spec;
  spec.width = 7;
  spec.height = 4;
  spec.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  spec.samples.assign(7 * 4 * 2, 9);
  StatusOr<ImageHeader> header = ReadImageHeader("a.png", EncodePng(spec));
  ASSERT_OK(header.status());
  EXPECT_EQ(header->format, ImageFormat::kPng);
  EXPECT_EQ(header->width, 7);
  EXPECT_EQ(header->height, 4);
  EXPECT_EQ(header->channels, 1);
}

// ------------------------------------------------------------------ JPEG

TEST(ImageDecodeTest, FlatGrayJpegAtQuality100IsExact) {
  const Image source = MakeImage(16, 8, 1, [](int, int, int) { return 201; });
  const Image decoded = MustDecode(EncodeJpeg(source, {.quality = 100}));
  EXPECT_EQ(decoded.channels, 1);
  EXPECT_EQ(decoded.pixels, source.pixels);
}

TEST(ImageDecodeTest, RgbJpegIsClose) {
  const Image source = Gradient(24, 16);
  const Image decoded = MustDecode(EncodeJpeg(source, {.quality = 95}));
  EXPECT_EQ(decoded.width, 24);
  EXPECT_EQ(decoded.height, 16);
  EXPECT_EQ(decoded.channels, 3);
  EXPECT_LE(MaxDifference(decoded, source), 12);
}

TEST(ImageDecodeTest, ProgressiveJpegDecodesAsTheBaselineOne) {
  // Progressive coding reorders the same quantized coefficients, so both
  // files decode to the same bytes.
  for (const int channels : {1, 3}) {
    const Image source = channels == 3 ? Gradient(20, 12) : MakeImage(20, 12, 1, [](int y, int x, int) { return 9 * x + 5 * y; });
    const Image baseline = MustDecode(EncodeJpeg(source, {.quality = 80}));
    const Image progressive = MustDecode(EncodeJpeg(source, {.quality = 80, .progressive = true}));
    EXPECT_EQ(progressive.pixels, baseline.pixels) << channels << " channels";
    EXPECT_LE(MaxDifference(progressive, source), 16);
  }
}

TEST(ImageDecodeTest, HeaderOfJpeg) {
  StatusOr<ImageHeader> header = ReadImageHeader("b.jpg", EncodeJpeg(Gradient(40, 30)));
  ASSERT_OK(header.status());
  EXPECT_EQ(header->format, ImageFormat::kJpeg);
  EXPECT_EQ(header->width, 40);
  EXPECT_EQ(header->height, 30);
  EXPECT_EQ(header->channels, 3);
}

TEST(ImageDecodeTest, JpegMayBeDecodedSmallerWhileItStillCoversTheTarget) {
  const std::string jpeg = EncodeJpeg(Gradient(64, 48));
  EXPECT_EQ(MustDecode(jpeg).width, 64);  // no target: full size
  struct Case {
    int min_width, min_height, width, height;
  };
  for (const Case& c : {Case{16, 12, 16, 12},    // 1/4: 16x12 holds 16x12
                        Case{17, 12, 32, 24},    // 1/4 is a pixel short: 1/2
                        Case{12, 12, 16, 12},    // a square of 12 fits 16x12 (its center crop is 12x12)
                        Case{40, 10, 64, 48},    // 4:1 needs 40 wide at 1/2: 32x24 holds 32x8 only
                        Case{8, 6, 8, 6}}) {     // 1/8
    const Image decoded = MustDecode(jpeg, {.min_width = c.min_width, .min_height = c.min_height});
    EXPECT_EQ(decoded.width, c.width) << c.min_width << "x" << c.min_height;
    EXPECT_EQ(decoded.height, c.height) << c.min_width << "x" << c.min_height;
  }
  // PNGs are not scaled.
  EXPECT_EQ(MustDecode(EncodePng(Gradient(64, 48)), {.min_width = 8, .min_height = 6}).width, 64);
}

// ------------------------------------------------------------------ errors

TEST(ImageDecodeTest, OtherFormatsAreNamedByTheirFirstBytes) {
  const Status gif = DecodeImage("cat/001.png", std::string("GIF89a\x01\x00\x01\x00", 10)).status();
  ExpectOneLineError(gif, "cat/001.png");
  EXPECT_EQ(gif.message(), "cat/001.png: not a PNG or JPEG file (starts with bytes 47 49 46 38)");
  EXPECT_EQ(DecodeImage("x.png", "BM").status().message(), "x.png: not a PNG or JPEG file (starts with bytes 42 4d)");
  EXPECT_EQ(DecodeImage("e.jpg", "").status().message(), "e.jpg: empty file, not a PNG or JPEG image");
  EXPECT_EQ(ReadImageHeader("h.png", "\x89PNG").status().message(), "h.png: truncated PNG file");
  EXPECT_EQ(ReadImageHeader("h.jpg", "\xff\xd8").status().message(), "h.jpg: truncated JPEG file");
  // The format comes from the bytes: a JPEG named .png decodes.
  EXPECT_OK(DecodeImage("really-a-jpeg.png", EncodeJpeg(Gradient(8, 8))).status());
}

// Every proper prefix of `file` fails to decode with one line naming it.
void ExpectEveryPrefixFails(const std::string& file, const std::string& name) {
  ASSERT_OK(DecodeImage(name, file).status());
  for (size_t length = 0; length < file.size(); ++length) {
    SCOPED_TRACE(name + " cut to " + std::to_string(length) + " of " + std::to_string(file.size()) + " bytes");
    const StatusOr<Image> image = DecodeImage(name, std::string_view(file).substr(0, length));
    ASSERT_FALSE(image.ok());
    ExpectOneLineError(image.status(), name);
  }
}

TEST(ImageDecodeTest, EveryTruncationOfAPngFails) {
  ExpectEveryPrefixFails(EncodePng(Gradient(6, 5)), "t.png");
  PngSpec interlaced;
  interlaced.width = interlaced.height = 9;
  interlaced.interlaced = true;
  interlaced.samples.assign(81, 0);
  for (size_t i = 0; i < 81; ++i) interlaced.samples[i] = static_cast<uint16_t>(i * 3);
  ExpectEveryPrefixFails(EncodePng(interlaced), "i.png");
  const std::string png = EncodePng(Gradient(6, 5));
  EXPECT_EQ(DecodeImage("t.png", std::string_view(png).substr(0, png.size() - 1)).status().message(),
            "t.png: truncated PNG file");
}

TEST(ImageDecodeTest, EveryTruncationOfAJpegFails) {
  ExpectEveryPrefixFails(EncodeJpeg(Gradient(16, 16), {.quality = 50}), "t.jpg");
  ExpectEveryPrefixFails(EncodeJpeg(Gradient(16, 16), {.quality = 50, .progressive = true}), "p.jpg");
  const std::string jpeg = EncodeJpeg(Gradient(16, 16));
  EXPECT_THAT(DecodeImage("t.jpg", std::string_view(jpeg).substr(0, jpeg.size() / 2)).status().message(),
              StartsWith("t.jpg: corrupt JPEG data: Premature end of JPEG file"));
}

TEST(ImageDecodeTest, DamagedPngChunksAreRefused) {
  const std::string png = EncodePng(Gradient(6, 5));
  std::string header = png;
  header[28] ^= 1;  // IHDR's interlace byte: its CRC no longer matches
  Status status = DecodeImage("h.png", header).status();
  ExpectOneLineError(status, "h.png");
  EXPECT_EQ(status.message(), "h.png: corrupt PNG data: IHDR: CRC error");
  // In the image data, zlib finds the damage before the chunk's CRC is read.
  std::string data = png;
  const size_t idat = data.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  data[idat + 6] ^= 0x55;
  status = DecodeImage("d.png", data).status();
  ExpectOneLineError(status, "d.png");
  EXPECT_THAT(status.message(), StartsWith("d.png: corrupt PNG data: IDAT: "));
}

// Random bytes after a valid signature, and valid files with random bytes
// changed: never a crash; either an image or one line naming the file.
TEST(ImageDecodeTest, RandomAndDamagedBytesNeverCrash) {
  SplitMix64 random(2024);
  const std::vector<std::string> valid = {EncodePng(Gradient(7, 6)), EncodeJpeg(Gradient(16, 8)),
                                          EncodeJpeg(Gradient(16, 8), {.progressive = true}),
                                          EncodeJpeg(MakeImage(9, 9, 1, [](int y, int x, int) { return x * y; }))};
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes;
    if (trial % 3 == 0) {  // a signature, then noise
      bytes = trial % 2 ? std::string("\x89PNG\r\n\x1a\n", 8) : std::string("\xff\xd8\xff", 3);
      const uint64_t length = random.NextBelow(300);
      for (uint64_t i = 0; i < length; ++i) bytes.push_back(static_cast<char>(random.Next()));
    } else {  // a valid file with a few bytes changed
      bytes = valid[random.NextBelow(valid.size())];
      const uint64_t changes = 1 + random.NextBelow(4);
      for (uint64_t i = 0; i < changes; ++i) bytes[random.NextBelow(bytes.size())] = static_cast<char>(random.Next());
    }
    const StatusOr<Image> image = DecodeImage("r", bytes);
    if (image.ok()) {
      EXPECT_EQ(image->pixels.size(), image->size());
      EXPECT_TRUE(image->channels == 1 || image->channels == 3);
    } else {
      ++errors;
      ExpectOneLineError(image.status(), "r");
    }
  }
  EXPECT_GT(errors, 1000);  // the noise is refused (some damaged files still decode)
}

// Sets a JPEG's frame size (the SOF0 marker's height and width).
std::string WithJpegSize(std::string jpeg, int width, int height) {
  const size_t sof = jpeg.find("\xff\xc0");
  EXPECT_NE(sof, std::string::npos);
  jpeg[sof + 5] = static_cast<char>(height >> 8);
  jpeg[sof + 6] = static_cast<char>(height & 0xff);
  jpeg[sof + 7] = static_cast<char>(width >> 8);
  jpeg[sof + 8] = static_cast<char>(width & 0xff);
  return jpeg;
}

// A PNG signature and an IHDR chunk (with its CRC) of the given size, and no
// image data: decoding must stop at the size, before allocating.
std::string PngHeaderOnly(uint32_t width, uint32_t height) {
  std::string ihdr = "IHDR";
  for (const uint32_t v : {width, height}) {
    for (int shift = 24; shift >= 0; shift -= 8) ihdr.push_back(static_cast<char>(v >> shift));
  }
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
  const uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(ihdr.data()), static_cast<uInt>(ihdr.size())));
  std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", 12);
  png += ihdr;
  for (int shift = 24; shift >= 0; shift -= 8) png.push_back(static_cast<char>(crc >> shift));
  return png;
}

TEST(ImageDecodeTest, OversizeImagesAreRefusedFromTheHeader) {
  // 40000 x 30000 RGB would need 3.6 GB: refused after the header, and a
  // decoder that allocated first would fail on the missing data instead.
  const std::string big_png = PngHeaderOnly(40000, 30000);
  EXPECT_EQ(ReadImageHeader("big.png", big_png).status().message(),
            "big.png: image of 40000x30000 pixels, more than 67108864 (DecodeOptions::max_pixels)");
  EXPECT_EQ(DecodeImage("big.png", big_png).status().message(),
            "big.png: image of 40000x30000 pixels, more than 67108864 (DecodeOptions::max_pixels)");
  EXPECT_EQ(DecodeImage("big.png", PngHeaderOnly(40, 30)).status().message(), "big.png: truncated PNG file");

  const std::string big_jpeg = WithJpegSize(EncodeJpeg(Gradient(16, 16)), 60000, 50000);
  EXPECT_EQ(DecodeImage("big.jpg", big_jpeg).status().message(),
            "big.jpg: image of 60000x50000 pixels, more than 67108864 (DecodeOptions::max_pixels)");

  // The limit is inclusive.
  const std::string png = EncodePng(Gradient(8, 8)), jpeg = EncodeJpeg(Gradient(8, 8));
  EXPECT_OK(DecodeImage("ok.png", png, {.max_pixels = 64}).status());
  EXPECT_OK(DecodeImage("ok.jpg", jpeg, {.max_pixels = 64}).status());
  ExpectOneLineError(DecodeImage("no.png", png, {.max_pixels = 63}).status(), "no.png");
  ExpectOneLineError(ReadImageHeader("no.jpg", jpeg, {.max_pixels = 63}).status(), "no.jpg");
}

TEST(ImageDecodeTest, AProgressiveJpegOfTooManyScansIsRefused) {
  // A valid progressive script for one component: the DC scan, then every
  // AC coefficient alone, first at Al = levels - 1 and refined bit by bit.
  auto script = [](int levels) {
    std::vector<jpeg_scan_info> scans;
    scans.push_back({1, {0}, 0, 0, 0, 0});
    for (int k = 1; k < 64; ++k) {
      scans.push_back({1, {0}, k, k, 0, levels - 1});
      for (int al = levels - 2; al >= 0; --al) scans.push_back({1, {0}, k, k, al + 1, al});
    }
    return scans;
  };
  const Image source = MakeImage(16, 16, 1, [](int y, int x, int) { return (x * 37 + y * 11) % 256; });
  const std::vector<jpeg_scan_info> many = script(8), fewer = script(7);
  ASSERT_EQ(many.size(), 1u + 63 * 8);  // 505 > kMaxJpegScans
  ASSERT_EQ(fewer.size(), 1u + 63 * 7);
  JpegOptions options;
  options.scans = fewer;
  EXPECT_OK(DecodeImage("fewer.jpg", EncodeJpeg(source, options)).status());
  options.scans = many;
  EXPECT_EQ(DecodeImage("many.jpg", EncodeJpeg(source, options)).status().message(),
            "many.jpg: corrupt JPEG data: more than 500 scans");
}

TEST(ImageDecodeTest, ReadImageFileNamesAMissingFile) {
  const std::string dir = MakeTempDir("image_decode");
  EXPECT_EQ(ReadImageFile(dir + "/none.png").status().code(), StatusCode::kNotFound);
  const Image source = Gradient(5, 4);
  testing_images::WriteBytes(dir + "/a.png", EncodePng(source));
  StatusOr<Image> image = ReadImageFile(dir + "/a.png");
  ASSERT_OK(image.status());
  EXPECT_EQ(image->pixels, source.pixels);
  testing_images::WriteBytes(dir + "/b.png", "GIF89a");
  EXPECT_EQ(ReadImageFile(dir + "/b.png").status().message(),
            dir + "/b.png: not a PNG or JPEG file (starts with bytes 47 49 46 38)");
  std::filesystem::remove_all(dir);
}

// ------------------------------------------------------------------ resizing

TEST(ImageResizeTest, CenterCropBoxKeepsTheTargetAspectRatio) {
  EXPECT_EQ(CenterCropBox(10, 4, 1, 1), (CropBox{3, 0, 4, 4}));
  EXPECT_EQ(CenterCropBox(4, 10, 2, 1), (CropBox{0, 4, 4, 2}));
  EXPECT_EQ(CenterCropBox(5, 3, 3, 3), (CropBox{1, 0, 3, 3}));
  EXPECT_EQ(CenterCropBox(6, 4, 3, 2), (CropBox{0, 0, 6, 4}));     // the same ratio: all of it
  EXPECT_EQ(CenterCropBox(10, 3, 1, 2), (CropBox{4, 0, 2, 3}));    // 1.5 wide rounds up to 2; (10 - 2) / 2
  EXPECT_EQ(CenterCropBox(11, 3, 1, 1), (CropBox{4, 0, 3, 3}));    // (11 - 3) / 2
  EXPECT_EQ(CenterCropBox(12, 3, 1, 1), (CropBox{4, 0, 3, 3}));    // 4.5 rounds down
  EXPECT_EQ(CenterCropBox(1, 100, 100, 1), (CropBox{0, 49, 1, 1}));  // at least one pixel; (100 - 1) / 2
}

TEST(ImageResizeTest, ChannelsConvertByRoundedBt601Luma) {
  const Image rgb = MakeImage(5, 1, 3, [](int, int x, int c) {
    const int colors[5][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {10, 20, 30}};
    return colors[x][c];
  });
  // (299 R + 587 G + 114 B + 500) / 1000: 76.245, 149.685, 29.07, 255, 18.15.
  EXPECT_EQ(ConvertChannels(rgb, 1).pixels, Bytes({76, 150, 29, 255, 18}));
  EXPECT_EQ(ConvertChannels(Row({7, 200}), 3).pixels, Bytes({7, 7, 7, 200, 200, 200}));
  EXPECT_EQ(ConvertChannels(rgb, 3).pixels, rgb.pixels);
}

TEST(ImageResizeTest, EnlargingIsBilinearWithHalfPixelCenters) {
  // Centers of 4 outputs over 2 inputs: -0.25, 0.25, 0.75, 1.25, clamped.
  EXPECT_EQ(ResizeRegion(Row({0, 100}), {0, 0, 2, 1}, 4, 1, 1).pixels, Bytes({0, 25, 75, 100}));
  EXPECT_EQ(ResizeRegion(Column({0, 100}), {0, 0, 1, 2}, 1, 4, 1).pixels, Bytes({0, 25, 75, 100}));
  // 2 -> 3: centers -1/6, 1/2, 7/6: 0, 60, 120 between 0 and 120.
  EXPECT_EQ(ResizeRegion(Row({0, 120}), {0, 0, 2, 1}, 3, 1, 1).pixels, Bytes({0, 60, 120}));
  // Rounded to the nearest: 0.25 -> 0, 0.75 -> 1.
  EXPECT_EQ(ResizeRegion(Row({0, 1}), {0, 0, 2, 1}, 4, 1, 1).pixels, Bytes({0, 0, 1, 1}));
  // The same size is a copy.
  const Image image = MakeImage(3, 2, 3, [](int y, int x, int c) { return 50 * y + 10 * x + c; });
  EXPECT_EQ(ResizeRegion(image, {0, 0, 3, 2}, 3, 2, 3).pixels, image.pixels);
}

TEST(ImageResizeTest, ShrinkingAveragesAreas) {
  // 3 -> 2: [0, 1.5) and [1.5, 3): (2a + b) / 3 and (b + 2c) / 3.
  EXPECT_EQ(ResizeRegion(Row({0, 30, 90}), {0, 0, 3, 1}, 2, 1, 1).pixels, Bytes({10, 70}));
  // 4 -> 2: pairs averaged; a half rounds up.
  EXPECT_EQ(ResizeRegion(Row({1, 2, 10, 20}), {0, 0, 4, 1}, 2, 1, 1).pixels, Bytes({2, 15}));
  // In two dimensions: p = 9 (3y + x) on 3x3 -> 2x2, weights (2, 1, 0) and (0, 1, 2) over 3 each way.
  const Image grid = MakeImage(3, 3, 1, [](int y, int x, int) { return 9 * (3 * y + x); });
  EXPECT_EQ(ResizeRegion(grid, {0, 0, 3, 3}, 2, 2, 1).pixels, Bytes({12, 24, 48, 60}));
  // One axis shrinks (area), the other grows (bilinear): 4x1 -> 2x2.
  EXPECT_EQ(ResizeRegion(Row({10, 30, 50, 70}), {0, 0, 4, 1}, 2, 2, 1).pixels, Bytes({20, 60, 20, 60}));
}

TEST(ImageResizeTest, RegionsAreCutFromTheirPlace) {
  const Image image = MakeImage(6, 4, 1, [](int y, int x, int) { return 10 * y + x; });
  EXPECT_EQ(ResizeRegion(image, {2, 1, 2, 2}, 2, 2, 1).pixels, Bytes({12, 13, 22, 23}));
  EXPECT_EQ(ResizeRegion(image, {2, 1, 2, 2}, 1, 1, 1).pixels, Bytes({18}));  // (12 + 13 + 22 + 23) / 4 = 17.5
}

TEST(ImageResizeTest, ResizeToCropsTheCenterThenResizesAndConverts) {
  // 6x2 RGB -> 1x1 gray: the centered 2x2 box, columns 2 and 3, averaged after conversion.
  const Image image = MakeImage(6, 2, 3, [](int y, int x, int) { return x == 2 || x == 3 ? 100 + 10 * y : 255 * (x % 2); });
  const Image out = ResizeTo(image, 1, 1, 1);
  EXPECT_EQ(out.width, 1);
  EXPECT_EQ(out.channels, 1);
  EXPECT_EQ(out.pixels, Bytes({105}));
  // Gray to RGB: each channel the same.
  EXPECT_EQ(ResizeTo(Row({0, 100}), 4, 1, 3).pixels, Bytes({0, 0, 0, 25, 25, 25, 75, 75, 75, 100, 100, 100}));
}

TEST(ImageResizeTest, FlipMirrorsPixelsNotChannels) {
  Image image = MakeImage(3, 2, 3, [](int y, int x, int c) { return 100 * y + 10 * x + c; });
  FlipHorizontal(&image);
  EXPECT_EQ(image.pixels, Bytes({20, 21, 22, 10, 11, 12, 0, 1, 2, 120, 121, 122, 110, 111, 112, 100, 101, 102}));
}

TEST(ImageResizeTest, ChwFloatsArePlanesNormalizedAsIdxPixels) {
  const Image image = MakeImage(2, 1, 3, [](int, int x, int c) { return 100 * c + x; });
  std::vector<float> out(6, -1.0f);
  WriteChwFloats(image, 0.25f, 0.5f, out.data());
  const float a = 1.0f / (255.0f * 0.5f), b = -0.25f / 0.5f;
  const std::vector<float> expected = {0 * a + b, 1 * a + b, 100 * a + b, 101 * a + b, 200 * a + b, 201 * a + b};
  EXPECT_EQ(out, expected);
}

// ------------------------------------------------------------------ augmentation

TEST(ImageAugmentTest, OffItIsTheCenterCrop) {
  const Image image = Gradient(10, 6);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const Augmentation chosen = ChooseAugmentation(10, 6, 4, 4, {}, seed);
    EXPECT_EQ(chosen.box, CenterCropBox(10, 6, 4, 4));
    EXPECT_FALSE(chosen.flip);
    EXPECT_EQ(AugmentAndResize(image, 4, 4, 3, {}, seed).pixels, ResizeTo(image, 4, 4, 3).pixels);
  }
}

TEST(ImageAugmentTest, TheDrawsAreSpecifiedAndPortable) {
  // The documented draws from SplitMix64(seed): scale, x, y, flip.
  const AugmentOptions options{.random_crop = true, .min_crop_scale = 0.5f, .horizontal_flip = true};
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SplitMix64 random(seed);
    const double scale = 0.5 + 0.5 * random.NextFloat();
    const int width = std::lround(scale * 30), height = std::lround(scale * 20);  // the center box is 30x20
    const int x = static_cast<int>(random.NextBelow(40 - width + 1)), y = static_cast<int>(random.NextBelow(20 - height + 1));
    const bool flip = (random.Next() >> 63) != 0;
    const Augmentation chosen = ChooseAugmentation(40, 20, 3, 2, options, seed);
    EXPECT_EQ(chosen.box, (CropBox{x, y, width, height})) << seed;
    EXPECT_EQ(chosen.flip, flip) << seed;
  }
  // And values recorded from this implementation, so that a change to
  // SplitMix64 itself (which the loop above would follow) shows too.
  EXPECT_EQ(ChooseAugmentation(40, 20, 3, 2, options, 7).box, (CropBox{4, 0, 21, 14}));
  EXPECT_TRUE(ChooseAugmentation(40, 20, 3, 2, options, 7).flip);
  EXPECT_EQ(ChooseAugmentation(40, 20, 3, 2, options, 13).box, (CropBox{13, 0, 27, 18}));
  EXPECT_FALSE(ChooseAugmentation(40, 20, 3, 2, options, 13).flip);
}

TEST(ImageAugmentTest, CropsStayInsideAndBothFlipsHappen) {
  const AugmentOptions options{.random_crop = true, .min_crop_scale = 0.6f, .horizontal_flip = true};
  int flips = 0;
  std::set<std::pair<int, int>> corners;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    const Augmentation chosen = ChooseAugmentation(50, 30, 8, 8, options, MixSeed(1, 2, seed));
    EXPECT_GE(chosen.box.x, 0);
    EXPECT_GE(chosen.box.y, 0);
    EXPECT_LE(chosen.box.x + chosen.box.width, 50);
    EXPECT_LE(chosen.box.y + chosen.box.height, 30);
    EXPECT_EQ(chosen.box.width, chosen.box.height);  // the target is square
    EXPECT_GE(chosen.box.width, 18);                 // 0.6 of the 30x30 center box
    flips += chosen.flip;
    corners.insert({chosen.box.x, chosen.box.y});
  }
  EXPECT_GT(flips, 150);
  EXPECT_LT(flips, 250);
  EXPECT_GT(corners.size(), 100u);
}

TEST(ImageAugmentTest, TheFlipDoesNotDependOnTheCropOption) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    const bool alone = ChooseAugmentation(9, 9, 3, 3, {.horizontal_flip = true}, seed).flip;
    const bool with_crop = ChooseAugmentation(9, 9, 3, 3, {.random_crop = true, .horizontal_flip = true}, seed).flip;
    EXPECT_EQ(alone, with_crop) << seed;
  }
}

TEST(ImageAugmentTest, AugmentAndResizeAppliesTheChoice) {
  const Image image = Gradient(12, 9);
  const AugmentOptions options{.random_crop = true, .min_crop_scale = 0.5f, .horizontal_flip = true};
  int flipped = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const Augmentation chosen = ChooseAugmentation(12, 9, 5, 5, options, seed);
    Image expected = ResizeRegion(image, chosen.box, 5, 5, 1);
    if (chosen.flip) FlipHorizontal(&expected), ++flipped;
    const Image out = AugmentAndResize(image, 5, 5, 1, options, seed);
    EXPECT_EQ(out.pixels, expected.pixels) << seed;
    EXPECT_EQ(AugmentAndResize(image, 5, 5, 1, options, seed).pixels, out.pixels);  // the same seed, the same input
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 20);
}

}  // namespace
}  // namespace tessera
