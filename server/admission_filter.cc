#include "server/admission_filter.h"

#include <algorithm>
#include <cstring>

#include "core/random.h"

namespace tessera {
namespace {

constexpr char kMagic = 'A';
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = 3;

}  // namespace

AdmissionFilter::AdmissionFilter(int log2_width)
    : log2_width_(std::clamp(log2_width, 4, 30)), counters_(size_t{kDepth} << log2_width_, 0) {}

size_t AdmissionFilter::Index(int row, uint64_t id) const {
  // An independent hash per row: MixSeed of (row, id), its top bits.
  const uint64_t hash = MixSeed(0xad31 + static_cast<uint64_t>(row), id);
  return (static_cast<size_t>(row) << log2_width_) + static_cast<size_t>(hash >> (64 - log2_width_));
}

uint32_t AdmissionFilter::Count(uint64_t id) const {
  uint32_t least = kMaxCount;
  for (int r = 0; r < kDepth; ++r) least = std::min<uint32_t>(least, counters_[Index(r, id)]);
  return least;
}

uint32_t AdmissionFilter::See(uint64_t id) {
  const uint32_t least = Count(id);
  if (least == kMaxCount) return least;
  // Conservative update: only the counters at the minimum rise.
  for (int r = 0; r < kDepth; ++r) {
    uint16_t& counter = counters_[Index(r, id)];
    if (counter == least) counter = static_cast<uint16_t>(least + 1);
  }
  return least + 1;
}

std::string AdmissionFilter::Serialize() const {
  std::string bytes;
  bytes.reserve(kHeaderBytes + 2 * counters_.size());
  bytes += kMagic;
  bytes += static_cast<char>(kVersion);
  bytes += static_cast<char>(log2_width_);
  for (const uint16_t c : counters_) {
    bytes += static_cast<char>(c & 0xff);
    bytes += static_cast<char>(c >> 8);
  }
  return bytes;
}

StatusOr<AdmissionFilter> AdmissionFilter::Parse(std::string_view bytes) {
  if (bytes.size() < kHeaderBytes || bytes[0] != kMagic || static_cast<uint8_t>(bytes[1]) != kVersion) {
    return InvalidArgumentError("admission filter: not a version-1 filter");
  }
  const int log2_width = static_cast<uint8_t>(bytes[2]);
  if (log2_width < 4 || log2_width > 30) {
    return InvalidArgumentError("admission filter: width 2^" + std::to_string(log2_width) + " outside [2^4, 2^30]");
  }
  const size_t counters = size_t{kDepth} << log2_width;
  if (bytes.size() != kHeaderBytes + 2 * counters) {
    return InvalidArgumentError("admission filter: " + std::to_string(bytes.size()) + " bytes, expected " +
                                std::to_string(kHeaderBytes + 2 * counters));
  }
  AdmissionFilter filter(log2_width);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + kHeaderBytes;
  for (size_t i = 0; i < counters; ++i) filter.counters_[i] = static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
  return filter;
}

void AdmissionFilter::MergeMax(const AdmissionFilter& other) {
  for (size_t i = 0; i < counters_.size(); ++i) counters_[i] = std::max(counters_[i], other.counters_[i]);
}

}  // namespace tessera
