// Which ids of a sparse table have been seen often enough to get a row
// (issue 16's admission, as Monolith filters rare features): a count-min
// sketch (Cormode and Muthukrishnan, 2005) of 4 rows of 16-bit saturating
// counters with conservative update (a sighting raises only the counters at
// the id's current minimum), so memory is fixed whatever the number of ids.
// A count is never below the true one, and may be above it when ids share
// counters: an id is admitted after at most N sightings, sometimes sooner.
// Deterministic: the same sightings give the same counts and the same bytes.
//
// Value type; not thread-safe.
#ifndef TESSERA_SERVER_ADMISSION_FILTER_H_
#define TESSERA_SERVER_ADMISSION_FILTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tessera {

class AdmissionFilter {
 public:
  static constexpr int kDepth = 4;
  static constexpr uint32_t kMaxCount = 0xffff;

  // Counters per row: a power of two in [2^4, 2^30] (log2_width in [4, 30]);
  // memory is kDepth * 2 bytes per counter.
  explicit AdmissionFilter(int log2_width);

  // Counts one sighting of `id` and returns its count afterwards (saturating
  // at kMaxCount).
  uint32_t See(uint64_t id);
  // The count of `id`, without counting a sighting.
  uint32_t Count(uint64_t id) const;

  int log2_width() const { return log2_width_; }

  // Each counter becomes the larger of its and `other`'s: for the filters of
  // servers that counted disjoint ids (a checkpoint restored onto another
  // number of servers), a count never below any id's true count.
  // REQUIRES: other.log2_width() == log2_width().
  void MergeMax(const AdmissionFilter& other);

  // Layout (little-endian): 'A', version 1, uint8 log2_width, then the
  // counters row by row as uint16. Parse checks the size against the width
  // and returns InvalidArgument for anything else.
  std::string Serialize() const;
  static StatusOr<AdmissionFilter> Parse(std::string_view bytes);

 private:
  size_t Index(int row, uint64_t id) const;

  int log2_width_;
  std::vector<uint16_t> counters_;  // kDepth rows of 2^log2_width_
};

}  // namespace tessera

#endif  // TESSERA_SERVER_ADMISSION_FILTER_H_
