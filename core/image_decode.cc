#include "core/image_decode.h"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <cmath>

// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <png.h>

#include "core/file_util.h"
#include "core/random.h"

namespace tessera {
namespace {

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr unsigned char kJpegSignature[3] = {0xff, 0xd8, 0xff};

std::string Hex(std::string_view bytes) {
  std::string out;
  char buffer[4];
  for (const char c : bytes) {
    std::snprintf(buffer, sizeof(buffer), "%s%02x", out.empty() ? "" : " ", static_cast<unsigned char>(c));
    out += buffer;
  }
  return out;
}

// True when `bytes` is a proper, non-empty prefix of `signature`.
bool IsTruncatedSignature(std::string_view bytes, const unsigned char* signature, size_t length) {
  return !bytes.empty() && bytes.size() < length && std::memcmp(bytes.data(), signature, bytes.size()) == 0;
}

bool StartsWith(std::string_view bytes, const unsigned char* signature, size_t length) {
  return bytes.size() >= length && std::memcmp(bytes.data(), signature, length) == 0;
}

// A library's message as one line.
std::string OneLine(const char* message) {
  std::string line(message);
  std::replace(line.begin(), line.end(), '\n', ' ');
  return line;
}

Status ImageError(std::string_view name, const std::string& what) {
  return InvalidArgumentError(std::string(name) + ": " + what);
}

Status CheckPixelCount(std::string_view name, int64_t width, int64_t height, const DecodeOptions& options) {
  if (width <= 0 || height <= 0) {
    return ImageError(name, "image size " + std::to_string(width) + "x" + std::to_string(height) + " is empty");
  }
  if (width * height > options.max_pixels) {
    return ImageError(name, "image of " + std::to_string(width) + "x" + std::to_string(height) + " pixels, more than " +
                                std::to_string(options.max_pixels) + " (DecodeOptions::max_pixels)");
  }
  return OkStatus();
}

// ---------------------------------------------------------------- PNG
//
// libpng reports errors by calling our error function, which must not
// return: it longjmps back to the setjmp of the step running (ReadPngInfo,
// SetPngTransforms or ReadPngRows). Those steps touch nothing but the state below (which lives
// in the caller's frame) and hold no C++ object with a destructor, so the
// jump skips nothing that needs cleaning up.

struct PngState {
  std::string_view bytes;
  size_t offset = 0;
  bool truncated = false;  // the read function ran out of bytes
  char error[256] = {};    // libpng's message
  png_structp png = nullptr;
  png_infop info = nullptr;
  // After ReadPngInfo: the header.
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  // For ReadPngRows: one pointer per output row.
  std::vector<png_bytep> rows;
  size_t row_bytes = 0;  // what libpng says a transformed row holds
};

void PngError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof(state->error), "%s", message);
  png_longjmp(png, 1);
}

void PngWarning(png_structp, png_const_charp) {}  // benign: an ancillary chunk's CRC, say

void PngRead(png_structp png, png_bytep out, size_t length) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (state->bytes.size() - state->offset < length) {
    state->truncated = true;
    png_error(png, "truncated PNG file");
  }
  std::memcpy(out, state->bytes.data() + state->offset, length);
  state->offset += length;
}

// Reads the chunks up to the image data; fills the header fields.
bool ReadPngInfo(PngState* s) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_read_info(s->png, s->info);
  png_get_IHDR(s->png, s->info, &s->width, &s->height, &s->bit_depth, &s->color_type, nullptr, nullptr, nullptr);
  return true;
}

// Sets the transforms to 8-bit gray or RGB; then libpng tells the row size
// and the channels it will write.
bool SetPngTransforms(PngState* s) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_set_scale_16(s->png);                // 16 bits -> 8, rounded; no-op otherwise
  png_set_expand_gray_1_2_4_to_8(s->png);  // 1, 2, 4-bit gray -> 0..255
  png_set_palette_to_rgb(s->png);          // palette -> RGB (RGBA with tRNS)
  png_set_strip_alpha(s->png);             // alpha (and expanded tRNS) dropped
  png_set_interlace_handling(s->png);      // Adam7 passes combined by png_read_image
  png_read_update_info(s->png, s->info);
  s->row_bytes = png_get_rowbytes(s->png, s->info);
  return true;
}

// Reads the pixels into s->rows, then the rest of the file through IEND.
bool ReadPngRows(PngState* s) {
  if (setjmp(png_jmpbuf(s->png))) return false;
  png_read_image(s->png, s->rows.data());
  png_read_end(s->png, nullptr);
  return true;
}

int PngChannels(int color_type) {
  return (color_type & PNG_COLOR_MASK_COLOR) || color_type == PNG_COLOR_TYPE_PALETTE ? 3 : 1;
}

Status PngFailure(std::string_view name, const PngState& state) {
  if (state.truncated) return ImageError(name, "truncated PNG file");
  return ImageError(name, "corrupt PNG data: " + OneLine(state.error));
}

uint32_t BigEndian32(std::string_view bytes, size_t offset) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = value << 8 | static_cast<unsigned char>(bytes[offset + i]);
  return value;
}

// libpng reads every chunk up to the image data before it tells the size,
// so the size is checked here first, from the IHDR chunk every PNG starts
// with (signature, length, "IHDR", width, height): a file that claims to be
// huge is refused whatever follows. libpng checks the chunk itself later.
Status CheckPngIhdrSize(std::string_view name, std::string_view bytes, const DecodeOptions& options) {
  if (bytes.size() < 24 || bytes.substr(12, 4) != "IHDR") return OkStatus();
  const uint32_t width = BigEndian32(bytes, 16), height = BigEndian32(bytes, 20);
  if (width == 0 || height == 0 || width > 0x7fffffff || height > 0x7fffffff) return OkStatus();  // libpng's to refuse
  return CheckPixelCount(name, width, height, options);
}

// Decodes a PNG; only its header when `image` is null.
StatusOr<ImageHeader> DecodePng(std::string_view name, std::string_view bytes, const DecodeOptions& options,
                                Image* image) {
  PngState state;
  state.bytes = bytes;
  state.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, PngError, PngWarning);
  if (state.png != nullptr) state.info = png_create_info_struct(state.png);
  if (state.info == nullptr) {
    png_destroy_read_struct(&state.png, nullptr, nullptr);
    return ResourceExhaustedError(std::string(name) + ": cannot allocate libpng's structures");
  }
  struct Cleanup {
    PngState* s;
    ~Cleanup() { png_destroy_read_struct(&s->png, &s->info, nullptr); }
  } cleanup{&state};
  png_set_read_fn(state.png, &state, PngRead);

  RETURN_IF_ERROR(CheckPngIhdrSize(name, bytes, options));
  if (!ReadPngInfo(&state)) return PngFailure(name, state);
  RETURN_IF_ERROR(CheckPixelCount(name, state.width, state.height, options));
  const ImageHeader header{ImageFormat::kPng, static_cast<int>(state.width), static_cast<int>(state.height),
                           PngChannels(state.color_type)};
  if (image == nullptr) return header;

  if (!SetPngTransforms(&state)) return PngFailure(name, state);
  const size_t stride = static_cast<size_t>(header.width) * header.channels;
  if (state.row_bytes != stride) {  // the transforms above rule this out
    return InternalError(std::string(name) + ": libpng gives rows of " + std::to_string(state.row_bytes) +
                         " bytes, expected " + std::to_string(stride));
  }
  image->width = header.width;
  image->height = header.height;
  image->channels = header.channels;
  image->pixels.assign(image->size(), 0);
  state.rows.resize(header.height);
  for (int y = 0; y < header.height; ++y) state.rows[y] = image->pixels.data() + y * stride;
  if (!ReadPngRows(&state)) return PngFailure(name, state);
  return header;
}

// ---------------------------------------------------------------- JPEG
//
// libjpeg's default error_exit calls exit(); ours formats the message and
// longjmps to the setjmp of the step running, as for PNG above. Warnings
// (level -1: premature end of data, corrupt data) are errors too.

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first, so a j_common_ptr's err converts to this
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64] = {};
};

[[noreturn]] void JpegErrorExit(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

void JpegEmitMessage(j_common_ptr cinfo, int level) {
  if (level < 0) JpegErrorExit(cinfo);  // level >= 0: trace messages, ignored
}

// Stops a progressive JPEG whose scans only make decoding slow.
void JpegProgress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const auto* decompress = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (decompress->input_scan_number > kMaxJpegScans) {
    auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    std::snprintf(errors->message, sizeof(errors->message), "more than %d scans", kMaxJpegScans);
    std::longjmp(errors->jump, 1);
  }
}

struct JpegState {
  jpeg_decompress_struct cinfo;
  JpegErrorManager errors;
  jpeg_progress_mgr progress;
  bool created = false;
  std::string_view bytes;
  unsigned char* pixels = nullptr;  // ReadJpegPixels' destination
  size_t stride = 0;
};

bool ReadJpegHeader(JpegState* s) {
  if (setjmp(s->errors.jump)) return false;
  jpeg_create_decompress(&s->cinfo);
  s->created = true;
  s->progress.progress_monitor = JpegProgress;
  s->cinfo.progress = &s->progress;
  jpeg_mem_src(&s->cinfo, reinterpret_cast<const unsigned char*>(s->bytes.data()),
               static_cast<unsigned long>(s->bytes.size()));
  jpeg_read_header(&s->cinfo, TRUE);
  return true;
}

// The output's size for the color space and scale set on s->cinfo.
bool CalcJpegOutput(JpegState* s) {
  if (setjmp(s->errors.jump)) return false;
  jpeg_calc_output_dimensions(&s->cinfo);
  return true;
}

bool ReadJpegPixels(JpegState* s) {
  if (setjmp(s->errors.jump)) return false;
  jpeg_start_decompress(&s->cinfo);
  while (s->cinfo.output_scanline < s->cinfo.output_height) {
    JSAMPROW row = s->pixels + s->cinfo.output_scanline * s->stride;
    jpeg_read_scanlines(&s->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&s->cinfo);  // reads through EOI: a cut file fails here
  return true;
}

Status JpegFailure(std::string_view name, const JpegState& state) {
  std::string message = OneLine(state.errors.message);
  const std::string prefix = "Corrupt JPEG data: ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  return ImageError(name, "corrupt JPEG data: " + message);
}

// The 1/denominator (1, 2, 4 or 8) a JPEG is decoded at: the smallest scale
// whose image still holds a min_width x min_height box of that aspect ratio.
int JpegScaleDenominator(int width, int height, const DecodeOptions& options) {
  if (options.min_width <= 0 || options.min_height <= 0) return 1;
  for (const int denominator : {8, 4, 2}) {
    // libjpeg rounds a scaled side up.
    const int scaled_width = (width + denominator - 1) / denominator;
    const int scaled_height = (height + denominator - 1) / denominator;
    const CropBox box = CenterCropBox(scaled_width, scaled_height, options.min_width, options.min_height);
    if (box.width >= options.min_width && box.height >= options.min_height) return denominator;
  }
  return 1;
}

StatusOr<ImageHeader> DecodeJpeg(std::string_view name, std::string_view bytes, const DecodeOptions& options,
                                 Image* image) {
  JpegState state;
  state.bytes = bytes;
  state.cinfo.err = jpeg_std_error(&state.errors.pub);
  state.errors.pub.error_exit = JpegErrorExit;
  state.errors.pub.emit_message = JpegEmitMessage;
  struct Cleanup {
    JpegState* s;
    ~Cleanup() {
      if (s->created) jpeg_destroy_decompress(&s->cinfo);
    }
  } cleanup{&state};

  if (!ReadJpegHeader(&state)) return JpegFailure(name, state);
  jpeg_decompress_struct& cinfo = state.cinfo;
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_YCbCr:
    case JCS_RGB:
      cinfo.out_color_space = JCS_RGB;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      return ImageError(name, "CMYK JPEG images are not supported (convert it to RGB)");
    default:
      return ImageError(name, "JPEG of " + std::to_string(cinfo.num_components) +
                                  " components in an unknown color space (expected gray or YCbCr)");
  }
  RETURN_IF_ERROR(CheckPixelCount(name, cinfo.image_width, cinfo.image_height, options));
  const int channels = cinfo.out_color_space == JCS_GRAYSCALE ? 1 : 3;
  if (image == nullptr) {
    return ImageHeader{ImageFormat::kJpeg, static_cast<int>(cinfo.image_width), static_cast<int>(cinfo.image_height),
                       channels};
  }

  cinfo.dct_method = JDCT_ISLOW;  // the accurate integer IDCT: the same bytes everywhere
  cinfo.scale_num = 1;
  cinfo.scale_denom = JpegScaleDenominator(cinfo.image_width, cinfo.image_height, options);
  if (!CalcJpegOutput(&state)) return JpegFailure(name, state);
  if (cinfo.output_components != channels) {
    return InternalError(std::string(name) + ": libjpeg gives " + std::to_string(cinfo.output_components) +
                         " components, expected " + std::to_string(channels));
  }
  image->width = static_cast<int>(cinfo.output_width);
  image->height = static_cast<int>(cinfo.output_height);
  image->channels = channels;
  image->pixels.assign(image->size(), 0);
  state.pixels = image->pixels.data();
  state.stride = static_cast<size_t>(image->width) * channels;
  if (!ReadJpegPixels(&state)) return JpegFailure(name, state);
  return ImageHeader{ImageFormat::kJpeg, image->width, image->height, channels};
}

StatusOr<ImageHeader> Decode(std::string_view name, std::string_view bytes, const DecodeOptions& options,
                             Image* image) {
  ASSIGN_OR_RETURN(const ImageFormat format, DetectImageFormat(name, bytes));
  if (format == ImageFormat::kPng) return DecodePng(name, bytes, options, image);
  return DecodeJpeg(name, bytes, options, image);
}

// ---------------------------------------------------------------- resizing

// One output sample of an axis: source samples [first, first + weights.size())
// weighted by integers over the axis' common denominator.
struct Taps {
  int first = 0;
  std::vector<int64_t> weights;
};

struct AxisFilter {
  std::vector<Taps> taps;  // one per output sample
  int64_t denominator = 1;
};

// Area averaging, for length > target: output i covers [i L / T, (i+1) L / T)
// of the source. In units of 1/T, source sample j covers [j T, (j+1) T), so
// every overlap is an integer and the weights sum to L, the denominator.
AxisFilter AreaFilter(int start, int length, int target) {
  AxisFilter filter;
  filter.denominator = length;
  filter.taps.resize(target);
  for (int i = 0; i < target; ++i) {
    const int64_t lo = int64_t{i} * length, hi = int64_t{i + 1} * length;
    const int64_t first = lo / target, last = (hi - 1) / target;  // the samples it touches
    Taps& taps = filter.taps[i];
    taps.first = start + static_cast<int>(first);
    for (int64_t j = first; j <= last; ++j) {
      taps.weights.push_back(std::min(hi, (j + 1) * target) - std::max(lo, j * target));
    }
  }
  return filter;
}

// Bilinear, for length <= target: output i's center maps to source position
// (i + 1/2) L / T - 1/2 = ((2i + 1) L - T) / 2T, clamped to [0, L - 1]; the
// two nearest samples are weighted by the distance, in units of 1/2T.
AxisFilter BilinearFilter(int start, int length, int target) {
  AxisFilter filter;
  filter.denominator = 2 * int64_t{target};
  filter.taps.resize(target);
  for (int i = 0; i < target; ++i) {
    const int64_t position = std::max<int64_t>(0, (2 * int64_t{i} + 1) * length - target);
    int64_t left = position / filter.denominator, fraction = position % filter.denominator;
    if (left >= length - 1) left = length - 1, fraction = 0;
    Taps& taps = filter.taps[i];
    taps.first = start + static_cast<int>(left);
    taps.weights.push_back(filter.denominator - fraction);
    if (fraction != 0) taps.weights.push_back(fraction);
  }
  return filter;
}

AxisFilter MakeFilter(int start, int length, int target) {
  return length > target ? AreaFilter(start, length, target) : BilinearFilter(start, length, target);
}

}  // namespace

const char* ImageFormatName(ImageFormat format) { return format == ImageFormat::kPng ? "PNG" : "JPEG"; }

StatusOr<ImageFormat> DetectImageFormat(std::string_view name, std::string_view bytes) {
  if (StartsWith(bytes, kPngSignature, sizeof(kPngSignature))) return ImageFormat::kPng;
  if (StartsWith(bytes, kJpegSignature, sizeof(kJpegSignature))) return ImageFormat::kJpeg;
  if (bytes.empty()) return ImageError(name, "empty file, not a PNG or JPEG image");
  if (IsTruncatedSignature(bytes, kPngSignature, sizeof(kPngSignature))) return ImageError(name, "truncated PNG file");
  if (IsTruncatedSignature(bytes, kJpegSignature, sizeof(kJpegSignature))) {
    return ImageError(name, "truncated JPEG file");
  }
  return ImageError(name, "not a PNG or JPEG file (starts with bytes " + Hex(bytes.substr(0, 4)) + ")");
}

StatusOr<ImageHeader> ReadImageHeader(std::string_view name, std::string_view bytes, const DecodeOptions& options) {
  return Decode(name, bytes, options, nullptr);
}

StatusOr<Image> DecodeImage(std::string_view name, std::string_view bytes, const DecodeOptions& options) {
  Image image;
  RETURN_IF_ERROR(Decode(name, bytes, options, &image).status());
  return image;
}

StatusOr<Image> ReadImageFile(const std::string& path, const DecodeOptions& options) {
  ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
  return DecodeImage(path, bytes, options);
}

CropBox CenterCropBox(int source_width, int source_height, int width, int height) {
  CropBox box{0, 0, source_width, source_height};
  // Compare the aspect ratios as source_width / source_height vs width / height.
  const int64_t wide = int64_t{source_width} * height, tall = int64_t{source_height} * width;
  if (wide > tall) {  // too wide: cut the sides; the box's width is source_height * width / height
    box.width = static_cast<int>(std::max<int64_t>(1, (2 * tall + height) / (2 * int64_t{height})));
    box.width = std::min(box.width, source_width);
    box.x = (source_width - box.width) / 2;
  } else if (tall > wide) {  // too tall: cut top and bottom
    box.height = static_cast<int>(std::max<int64_t>(1, (2 * wide + width) / (2 * int64_t{width})));
    box.height = std::min(box.height, source_height);
    box.y = (source_height - box.height) / 2;
  }
  return box;
}

Image ConvertChannels(const Image& image, int channels) {
  CHECK(channels == 1 || channels == 3) << channels;
  if (image.channels == channels) return image;
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.channels = channels;
  out.pixels.resize(out.size());
  const size_t count = static_cast<size_t>(image.width) * image.height;
  const uint8_t* in = image.pixels.data();
  if (channels == 1) {  // BT.601 luma, rounded
    for (size_t i = 0; i < count; ++i, in += 3) {
      out.pixels[i] = static_cast<uint8_t>((299 * in[0] + 587 * in[1] + 114 * in[2] + 500) / 1000);
    }
  } else {
    for (size_t i = 0; i < count; ++i) std::fill_n(out.pixels.data() + 3 * i, 3, in[i]);
  }
  return out;
}

Image ResizeRegion(const Image& source, const CropBox& box, int width, int height, int channels) {
  CHECK(box.x >= 0 && box.y >= 0 && box.width > 0 && box.height > 0 && box.x + box.width <= source.width &&
        box.y + box.height <= source.height)
      << "crop box " << box.x << "," << box.y << " " << box.width << "x" << box.height << " outside a "
      << source.width << "x" << source.height << " image";
  CHECK(width > 0 && height > 0) << width << "x" << height;
  const Image converted = ConvertChannels(source, channels);
  const AxisFilter horizontal = MakeFilter(box.x, box.width, width);
  const AxisFilter vertical = MakeFilter(box.y, box.height, height);

  // Rows of the box filtered horizontally: exact sums over horizontal.denominator.
  std::vector<int64_t> rows(static_cast<size_t>(box.height) * width * channels);
  for (int y = 0; y < box.height; ++y) {
    const uint8_t* in = converted.pixels.data() + static_cast<size_t>(box.y + y) * converted.width * channels;
    int64_t* out = rows.data() + static_cast<size_t>(y) * width * channels;
    for (int x = 0; x < width; ++x) {
      const Taps& taps = horizontal.taps[x];
      for (int c = 0; c < channels; ++c) {
        int64_t sum = 0;
        for (size_t k = 0; k < taps.weights.size(); ++k) sum += taps.weights[k] * in[(taps.first + k) * channels + c];
        out[x * channels + c] = sum;
      }
    }
  }

  Image out;
  out.width = width;
  out.height = height;
  out.channels = channels;
  out.pixels.resize(out.size());
  const int64_t denominator = horizontal.denominator * vertical.denominator;
  const size_t row_size = static_cast<size_t>(width) * channels;
  for (int y = 0; y < height; ++y) {
    const Taps& taps = vertical.taps[y];
    for (size_t i = 0; i < row_size; ++i) {
      int64_t sum = 0;
      for (size_t k = 0; k < taps.weights.size(); ++k) {
        sum += taps.weights[k] * rows[(taps.first - box.y + k) * row_size + i];
      }
      // Nearest, halves up: floor((2 sum + d) / 2d).
      out.pixels[y * row_size + i] = static_cast<uint8_t>((2 * sum + denominator) / (2 * denominator));
    }
  }
  return out;
}

Image ResizeTo(const Image& image, int width, int height, int channels) {
  return ResizeRegion(image, CenterCropBox(image.width, image.height, width, height), width, height, channels);
}

void FlipHorizontal(Image* image) {
  const int channels = image->channels;
  for (int y = 0; y < image->height; ++y) {
    uint8_t* row = image->pixels.data() + static_cast<size_t>(y) * image->width * channels;
    for (int left = 0, right = image->width - 1; left < right; ++left, --right) {
      std::swap_ranges(row + left * channels, row + (left + 1) * channels, row + right * channels);
    }
  }
}

Augmentation ChooseAugmentation(int source_width, int source_height, int width, int height,
                                const AugmentOptions& options, uint64_t seed) {
  CHECK(options.min_crop_scale > 0 && options.min_crop_scale <= 1) << options.min_crop_scale;
  const CropBox center = CenterCropBox(source_width, source_height, width, height);
  SplitMix64 random(seed);
  const double scale = options.min_crop_scale + (1.0 - options.min_crop_scale) * random.NextFloat();
  Augmentation chosen;
  chosen.box = center;
  if (options.random_crop) {
    chosen.box.width = std::clamp(static_cast<int>(std::lround(scale * center.width)), 1, center.width);
    chosen.box.height = std::clamp(static_cast<int>(std::lround(scale * center.height)), 1, center.height);
  }
  const uint64_t x = random.NextBelow(static_cast<uint64_t>(source_width - chosen.box.width) + 1);
  const uint64_t y = random.NextBelow(static_cast<uint64_t>(source_height - chosen.box.height) + 1);
  if (options.random_crop) {
    chosen.box.x = static_cast<int>(x);
    chosen.box.y = static_cast<int>(y);
  }
  chosen.flip = options.horizontal_flip && (random.Next() >> 63) != 0;
  return chosen;
}

Image AugmentAndResize(const Image& image, int width, int height, int channels, const AugmentOptions& options,
                       uint64_t seed) {
  const Augmentation chosen = ChooseAugmentation(image.width, image.height, width, height, options, seed);
  Image out = ResizeRegion(image, chosen.box, width, height, channels);
  if (chosen.flip) FlipHorizontal(&out);
  return out;
}

void WriteChwFloats(const Image& image, float mean, float std, float* out) {
  const float means[3] = {mean, mean, mean}, stds[3] = {std, std, std};
  WriteChwFloats(image, means, stds, out);
}

void WriteChwFloats(const Image& image, const float* mean, const float* std, float* out) {
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  for (int c = 0; c < image.channels; ++c) {
    CHECK_GT(std[c], 0.0f);
    const float a = 1.0f / (255.0f * std[c]), b = -mean[c] / std[c];
    for (size_t i = 0; i < plane; ++i) out[c * plane + i] = static_cast<float>(image.pixels[i * image.channels + c]) * a + b;
  }
}

}  // namespace tessera
