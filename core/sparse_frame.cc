#include "core/sparse_frame.h"

#include <bit>
#include <cstring>

namespace tessera {

static_assert(std::endian::native == std::endian::little, "sparse frames are little-endian");

uint64_t SparseFrameBytes(const std::vector<KeyRange>& runs) {
  uint64_t floats = 0;
  for (const KeyRange& r : runs) floats += r.size();
  return sizeof(uint64_t) * (1 + 2 * runs.size()) + floats * sizeof(float);
}

std::string EncodeSparseFrame(const float* range_values, const std::vector<KeyRange>& runs) {
  std::string frame(SparseFrameBytes(runs), '\0');
  char* out = frame.data();
  const uint64_t count = runs.size();
  std::memcpy(out, &count, sizeof(count));
  out += sizeof(count);
  for (const KeyRange& r : runs) {
    const uint64_t pair[2] = {r.begin, r.size()};
    std::memcpy(out, pair, sizeof(pair));
    out += sizeof(pair);
  }
  for (const KeyRange& r : runs) {
    std::memcpy(out, range_values + r.begin, r.size() * sizeof(float));
    out += r.size() * sizeof(float);
  }
  return frame;
}

StatusOr<zmq::message_t> DecodeSparseFrame(const zmq::message_t& frame, uint64_t keys) {
  const char* in = static_cast<const char*>(frame.data());
  const uint64_t size = frame.size();
  uint64_t count = 0;
  if (size < sizeof(count)) return DataLossError("sparse frame of " + std::to_string(size) + " bytes has no run count");
  std::memcpy(&count, in, sizeof(count));
  // Each run holds at least one float, so a frame can hold at most this many.
  if (count > keys || count > (size - sizeof(count)) / (2 * sizeof(uint64_t))) {
    return DataLossError("sparse frame names " + std::to_string(count) + " runs, more than its " +
                         std::to_string(size) + " bytes or the range's " + std::to_string(keys) + " keys allow");
  }
  const char* pairs = in + sizeof(count);
  uint64_t floats = 0, previous_end = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t pair[2];
    std::memcpy(pair, pairs + i * sizeof(pair), sizeof(pair));
    const uint64_t offset = pair[0], length = pair[1];
    if (length == 0 || offset < previous_end || offset > keys || length > keys - offset) {
      return DataLossError("sparse frame run " + std::to_string(i) + " [" + std::to_string(offset) + ", +" +
                           std::to_string(length) + ") is empty, out of order or outside the range's " +
                           std::to_string(keys) + " keys");
    }
    previous_end = offset + length;
    floats += length;
  }
  const uint64_t expected = sizeof(count) + count * 2 * sizeof(uint64_t) + floats * sizeof(float);
  if (size != expected) {
    return DataLossError("sparse frame holds " + std::to_string(size) + " bytes, its runs need " +
                         std::to_string(expected));
  }
  zmq::message_t dense(keys * sizeof(float));
  char* out = static_cast<char*>(dense.data());
  std::memset(out, 0, dense.size());
  const char* values = pairs + count * 2 * sizeof(uint64_t);
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t pair[2];
    std::memcpy(pair, pairs + i * sizeof(pair), sizeof(pair));
    std::memcpy(out + pair[0] * sizeof(float), values, pair[1] * sizeof(float));
    values += pair[1] * sizeof(float);
  }
  return dense;
}

}  // namespace tessera
