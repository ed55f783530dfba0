// Decoding PNG and JPEG files into 8-bit images, and turning an image into a
// model's input: channels converted, cropped, resized, optionally augmented.
//
// Decoding (DecodeImage) takes the file's bytes in memory and gives an Image:
// 8-bit samples, 1 channel (gray) or 3 (RGB), stored HWC (row by row, the
// channels of a pixel side by side). The format is found from the first bytes,
// not the file name. Whatever the PNG (bit depth 1-16, gray, RGB, palette,
// alpha, interlaced) it comes out as 8-bit gray or RGB through libpng's
// transforms: 16-bit samples scaled to 8 bits with rounding (v * 255 / 65535),
// palettes expanded to RGB, low bit depths expanded to 0-255, alpha and
// transparency dropped (not composited: the color samples as stored, as PIL's
// convert("RGB") does). No gamma correction. A gray JPEG gives 1 channel, a
// YCbCr one 3 (libjpeg-turbo's own conversion); CMYK JPEGs are refused, and
// EXIF orientation is ignored.
//
// Decoding never crashes and never exits on bad bytes: libpng's and
// libjpeg's error exits are redirected (setjmp/longjmp) into a Status, one
// line naming the file: "cat/001.png: not a PNG or JPEG file (starts with
// bytes 47 49 46 38)". Any libjpeg warning (premature end of data, corrupt
// data) counts as an error too, so a truncated JPEG is refused rather than
// padded with gray; a PNG must be complete through its IEND chunk. The size in
// the header is checked against DecodeOptions::max_pixels before any pixel
// buffer is allocated.
//
// Turning an image into an input (ResizeTo, AugmentAndResize, WriteChwFloats):
//   1. channels: RGB -> gray by ITU-R BT.601 luma on the bytes,
//      Y = (299 R + 587 G + 114 B + 500) / 1000 (integer division: rounded);
//      gray -> RGB by copying the sample into each channel.
//   2. a crop box: the largest box of the target's aspect ratio, centered
//      (CenterCropBox), or a random one for training (ChooseAugmentation).
//   3. the box resized to the target, each axis on its own (separable):
//      shrinking an axis averages areas (each output sample is the mean of
//      the source samples its interval covers, partly covered ones weighted
//      by the part covered; OpenCV's INTER_AREA), enlarging it (or keeping
//      its size) is bilinear with pixel centers at i + 0.5 and edges clamped
//      (align_corners=false). Every weight is a ratio of integers (an
//      overlap over the box's length, or a bilinear fraction over twice the
//      target's length), so the whole resize is done in exact integer
//      arithmetic and rounded once to the nearest byte (halves up).
//   4. an optional horizontal flip.
//   5. WriteChwFloats: bytes to floats in CHW order (channel planes, each row
//      by row: the NCHW layout of the models), each (p/255 - mean)/std as the
//      IDX data are.
// Each step is deterministic: the same bytes and seed give the same input on
// every machine (training, `tessera predict` and `tessera serve` alike).
// Every function is thread-safe: no state is shared between calls.
#ifndef TESSERA_CORE_IMAGE_DECODE_H_
#define TESSERA_CORE_IMAGE_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tessera {

// 64 Mi pixels (8192 x 8192): 192 MiB as RGB bytes.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{1} << 26;

// A progressive JPEG may have more scans than this only to make decoding
// slow (a "decompression bomb"); libjpeg-turbo's tools use a similar limit.
inline constexpr int kMaxJpegScans = 500;

// An 8-bit image, HWC: pixels[(y * width + x) * channels + c].
struct Image {
  int width = 0, height = 0;
  int channels = 0;  // 1 (gray) or 3 (RGB)
  std::vector<uint8_t> pixels;

  size_t size() const { return static_cast<size_t>(width) * height * channels; }
  uint8_t at(int y, int x, int c) const { return pixels[(static_cast<size_t>(y) * width + x) * channels + c]; }
};

enum class ImageFormat { kPng, kJpeg };

// "PNG" or "JPEG".
const char* ImageFormatName(ImageFormat format);

// What a file's header says, without decoding its pixels.
struct ImageHeader {
  ImageFormat format = ImageFormat::kPng;
  int width = 0, height = 0;
  int channels = 0;  // what DecodeImage gives: 1 or 3
};

struct DecodeOptions {
  // A header of more pixels (width * height) is refused before decoding.
  int64_t max_pixels = kDefaultMaxImagePixels;
  // When > 0, a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's
  // DCT scaling: much faster for photos) if the result still holds a
  // min_width x min_height box of that aspect ratio (CenterCropBox), so a
  // later resize to that size only shrinks. The smallest such scale is used.
  // PNGs are always decoded at full size. Default 0: full size.
  int min_width = 0, min_height = 0;
};

// The format found from the first bytes: the PNG signature, or FF D8 FF for
// JPEG. InvalidArgument "NAME: ..." for anything else (an empty file, or one
// that starts with other bytes, named in hex).
StatusOr<ImageFormat> DetectImageFormat(std::string_view name, std::string_view bytes);

// Reads the header only. InvalidArgument "NAME: ..." for an unknown format, a
// corrupt or truncated header, a CMYK JPEG, or more than max_pixels pixels.
StatusOr<ImageHeader> ReadImageHeader(std::string_view name, std::string_view bytes,
                                      const DecodeOptions& options = {});

// Decodes a whole PNG or JPEG file held in `bytes`. `name` (the file's path)
// starts every error message. InvalidArgument for anything ReadImageHeader
// refuses and for corrupt or truncated data: "NAME: corrupt JPEG data: ...",
// "NAME: corrupt PNG data: ...", "NAME: truncated PNG file".
StatusOr<Image> DecodeImage(std::string_view name, std::string_view bytes, const DecodeOptions& options = {});

// Reads the file at `path` and decodes it. NotFound when it cannot be opened,
// DataLoss on a read error, DecodeImage's errors otherwise.
StatusOr<Image> ReadImageFile(const std::string& path, const DecodeOptions& options = {});

// A rectangle of an image, in pixels.
struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
  bool operator==(const CropBox&) const = default;
};

// The largest box of aspect ratio width:height inside a source_width x
// source_height image, centered: the cut side's length rounded to the
// nearest pixel (halves up, at least 1), its offset (source - length) / 2
// rounded down. REQUIRES: all four > 0.
CropBox CenterCropBox(int source_width, int source_height, int width, int height);

// `image` with `channels` channels (1 or 3), converted as step 1 above says.
Image ConvertChannels(const Image& image, int channels);

// Box `box` of `image` (converted to `channels`) resized to width x height
// (steps 1 and 3). REQUIRES: the box inside the image, width, height > 0,
// channels 1 or 3.
Image ResizeRegion(const Image& image, const CropBox& box, int width, int height, int channels);

// The centered crop of the target's aspect ratio, resized: the evaluation
// (and prediction) input. ResizeRegion(image, CenterCropBox(...), ...).
Image ResizeTo(const Image& image, int width, int height, int channels);

// Mirrors the image left to right, in place.
void FlipHorizontal(Image* image);

// Training augmentation. Off by default: then AugmentAndResize is ResizeTo.
struct AugmentOptions {
  // A random box instead of the centered one: its sides are `scale` times
  // the centered box's (scale uniform in [min_crop_scale, 1]), its position
  // uniform among those inside the image.
  bool random_crop = false;
  float min_crop_scale = 0.8f;  // in (0, 1]
  // Mirror left to right with probability 1/2.
  bool horizontal_flip = false;
};

// What one draw of the augmentation chose.
struct Augmentation {
  CropBox box;
  bool flip = false;
};

// The augmentation of one example, a function of the seed alone (use
// MixSeed(job seed, epoch, example index) for a new one each epoch). Four
// numbers are drawn from SplitMix64(seed) in this order whatever the
// options: the scale, x, y, the flip; so turning one option on or off does
// not change what the other chooses. The scaled sides are rounded to the
// nearest pixel, at least 1. REQUIRES: all sizes > 0; min_crop_scale in (0, 1].
Augmentation ChooseAugmentation(int source_width, int source_height, int width, int height,
                                const AugmentOptions& options, uint64_t seed);

// The training input: ChooseAugmentation's box resized, flipped if chosen.
Image AugmentAndResize(const Image& image, int width, int height, int channels, const AugmentOptions& options,
                       uint64_t seed);

// Writes image.size() floats at `out`, CHW: out[(c * height + y) * width + x]
// = (at(y, x, c) / 255 - mean) / std, computed as p * a + b with
// a = 1 / (255 * std), b = -mean / std in float (the IDX pixels' formula).
// REQUIRES: std > 0.
void WriteChwFloats(const Image& image, float mean, float std, float* out);

// The same with each channel's own mean[c] and std[c]: one value each per
// channel of the image. REQUIRES: every std > 0.
void WriteChwFloats(const Image& image, const float* mean, const float* std, float* out);

}  // namespace tessera

#endif  // TESSERA_CORE_IMAGE_DECODE_H_
