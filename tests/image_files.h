// Writes PNG and JPEG files in memory with libpng and libjpeg-turbo, for the
// image tests: every kind of PNG (bit depths, color types, palettes, alpha,
// interlacing) and baseline or progressive JPEGs, so the decoder is tested
// against the reference encoders rather than against itself.
#ifndef TESSERA_TESTS_IMAGE_FILES_H_
#define TESSERA_TESTS_IMAGE_FILES_H_

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

#include <gtest/gtest.h>

#include "core/image_decode.h"

namespace tessera {
namespace testing_images {

struct PngSpec {
  int width = 0, height = 0;
  int bit_depth = 8;
  int color_type = PNG_COLOR_TYPE_GRAY;
  bool interlaced = false;
  // The samples, row by row, as many per pixel as the color type has (a
  // palette index for palette images); each below 2^bit_depth.
  std::vector<uint16_t> samples;
  std::vector<png_color> palette;
  std::vector<uint8_t> palette_alpha;  // tRNS for a palette image
};

inline void AppendToString(png_structp png, png_bytep data, size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}

inline int PngSamplesPerPixel(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
      return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    default:
      return 4;  // RGBA
  }
}

// The PNG file of `spec`; "" (and a test failure) when libpng refuses it.
inline std::string EncodePng(const PngSpec& spec) {
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  // Rows packed as libpng wants them: big-endian 16-bit samples, low depths
  // packed into bytes (png_set_packing does that from one sample a byte).
  const int per_pixel = PngSamplesPerPixel(spec.color_type);
  const size_t row_samples = static_cast<size_t>(spec.width) * per_pixel;
  const size_t sample_bytes = spec.bit_depth == 16 ? 2 : 1;
  std::vector<uint8_t> data(row_samples * sample_bytes * spec.height);
  for (size_t i = 0; i < spec.samples.size() && i < row_samples * spec.height; ++i) {
    if (sample_bytes == 2) {
      data[2 * i] = static_cast<uint8_t>(spec.samples[i] >> 8);
      data[2 * i + 1] = static_cast<uint8_t>(spec.samples[i]);
    } else {
      data[i] = static_cast<uint8_t>(spec.samples[i]);
    }
  }
  std::vector<png_bytep> rows(spec.height);
  for (int y = 0; y < spec.height; ++y) rows[y] = data.data() + y * row_samples * sample_bytes;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng refused the test image";
    return "";
  }
  png_set_write_fn(png, &out, AppendToString, nullptr);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) {
    png_set_PLTE(png, info, spec.palette.data(), static_cast<int>(spec.palette.size()));
  }
  if (!spec.palette_alpha.empty()) {
    png_set_tRNS(png, info, spec.palette_alpha.data(), static_cast<int>(spec.palette_alpha.size()), nullptr);
  }
  png_write_info(png, info);
  if (spec.bit_depth < 8) png_set_packing(png);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// An 8-bit gray (1 channel) or RGB (3) PNG of `image`.
inline std::string EncodePng(const Image& image) {
  PngSpec spec;
  spec.width = image.width;
  spec.height = image.height;
  spec.color_type = image.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
  spec.samples.assign(image.pixels.begin(), image.pixels.end());
  return EncodePng(spec);
}

struct JpegOptions {
  int quality = 90;
  bool progressive = false;
  // A custom progressive scan script (jpeg_scan_info), instead of libjpeg's
  // simple progression.
  std::vector<jpeg_scan_info> scans = {};
};

struct JpegWriteErrors {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

inline void JpegWriteErrorExit(j_common_ptr cinfo) {
  std::longjmp(reinterpret_cast<JpegWriteErrors*>(cinfo->err)->jump, 1);
}

// A JPEG of an 8-bit gray or RGB image; "" (and a test failure) when
// libjpeg refuses it.
inline std::string EncodeJpeg(const Image& image, const JpegOptions& options = {}) {
  jpeg_compress_struct cinfo;
  JpegWriteErrors errors;
  cinfo.err = jpeg_std_error(&errors.pub);
  errors.pub.error_exit = JpegWriteErrorExit;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (setjmp(errors.jump)) {
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    ADD_FAILURE() << "libjpeg refused the test image";
    return "";
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = image.width;
  cinfo.image_height = image.height;
  cinfo.input_components = image.channels;
  cinfo.in_color_space = image.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, options.quality, TRUE);
  if (!options.scans.empty()) {
    cinfo.scan_info = options.scans.data();
    cinfo.num_scans = static_cast<int>(options.scans.size());
  } else if (options.progressive) {
    jpeg_simple_progression(&cinfo);
  }
  jpeg_start_compress(&cinfo, TRUE);
  const size_t stride = static_cast<size_t>(image.width) * image.channels;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.pixels.data() + cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

// An image whose samples are f(y, x, c).
template <typename F>
Image MakeImage(int width, int height, int channels, F f) {
  Image image;
  image.width = width;
  image.height = height;
  image.channels = channels;
  image.pixels.resize(image.size());
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        image.pixels[(static_cast<size_t>(y) * width + x) * channels + c] = static_cast<uint8_t>(f(y, x, c));
      }
    }
  }
  return image;
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

}  // namespace testing_images
}  // namespace tessera

#endif  // TESSERA_TESTS_IMAGE_FILES_H_
