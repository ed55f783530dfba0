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

namespace {

// Reads and checks the run count and runs at the start of a frame of `size`
// bytes for a range of `keys` floats; sets *floats to the runs' total length.
StatusOr<std::vector<KeyRange>> ParseRuns(const char* in, uint64_t size, uint64_t keys, uint64_t* floats) {
  uint64_t count = 0;
  if (size < sizeof(count)) return DataLossError("sparse frame of " + std::to_string(size) + " bytes has no run count");
  std::memcpy(&count, in, sizeof(count));
  // Each run holds at least one float, so a frame can hold at most this many.
  if (count > keys || count > (size - sizeof(count)) / (2 * sizeof(uint64_t))) {
    return DataLossError("sparse frame names " + std::to_string(count) + " runs, more than its " +
                         std::to_string(size) + " bytes or the range's " + std::to_string(keys) + " keys allow");
  }
  const char* pairs = in + sizeof(count);
  std::vector<KeyRange> runs;
  runs.reserve(count);
  *floats = 0;
  uint64_t previous_end = 0;
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
    *floats += length;
    runs.push_back({offset, offset + length});
  }
  return runs;
}

}  // namespace

std::string EncodeRunList(const std::vector<KeyRange>& runs) {
  std::string frame(sizeof(uint64_t) * (1 + 2 * runs.size()), '\0');
  const uint64_t count = runs.size();
  std::memcpy(frame.data(), &count, sizeof(count));
  for (size_t i = 0; i < runs.size(); ++i) {
    const uint64_t pair[2] = {runs[i].begin, runs[i].size()};
    std::memcpy(frame.data() + sizeof(count) + i * sizeof(pair), pair, sizeof(pair));
  }
  return frame;
}

StatusOr<SparseFrameView> ParseSparseFrame(const zmq::message_t& frame, uint64_t keys) {
  const char* in = static_cast<const char*>(frame.data());
  uint64_t floats = 0;
  SparseFrameView view;
  ASSIGN_OR_RETURN(view.runs, ParseRuns(in, frame.size(), keys, &floats));
  const uint64_t header = sizeof(uint64_t) * (1 + 2 * view.runs.size());
  const uint64_t expected = header + floats * sizeof(float);
  if (frame.size() != expected) {
    return DataLossError("sparse frame holds " + std::to_string(frame.size()) + " bytes, its runs need " +
                         std::to_string(expected));
  }
  view.values = in + header;
  return view;
}

StatusOr<std::vector<KeyRange>> ParseRunList(const zmq::message_t& frame, uint64_t keys) {
  uint64_t floats = 0;
  ASSIGN_OR_RETURN(std::vector<KeyRange> runs,
                   ParseRuns(static_cast<const char*>(frame.data()), frame.size(), keys, &floats));
  const uint64_t expected = sizeof(uint64_t) * (1 + 2 * runs.size());
  if (frame.size() != expected) {
    return DataLossError("run list holds " + std::to_string(frame.size()) + " bytes, its " +
                         std::to_string(runs.size()) + " runs need " + std::to_string(expected));
  }
  return runs;
}

void CopySparseValues(const SparseFrameView& view, float* range_values) {
  const char* values = view.values;
  for (const KeyRange& r : view.runs) {
    std::memcpy(range_values + r.begin, values, r.size() * sizeof(float));
    values += r.size() * sizeof(float);
  }
}

}  // namespace tessera
