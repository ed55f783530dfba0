// An estimate of how many distinct 64-bit values a stream holds, in fixed
// memory: HyperLogLog (Flajolet et al. 2007) with 2^14 one-byte registers
// (16 KiB), a relative standard error of about 1.04 / 2^7 = 0.8%, and
// linear counting for small counts (exact up to a few thousand, in
// practice). The scheduler counts the training files' sparse ids with it to
// size a sparse table before training (scheduler/spill_space.h).
//
// Example:
//   DistinctCounter ids;
//   for (uint64_t id : stream) ids.Add(id);
//   const double about = ids.Estimate();
//
// A value type; not thread-safe.
#ifndef TESSERA_CORE_DISTINCT_COUNTER_H_
#define TESSERA_CORE_DISTINCT_COUNTER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tessera {

class DistinctCounter {
 public:
  static constexpr int kLog2Registers = 14;
  // The relative standard error of Estimate(): 1.04 / sqrt(registers).
  static constexpr double kRelativeError = 1.04 / 128;

  DistinctCounter() : registers_(size_t{1} << kLog2Registers, 0) {}

  // Any 64-bit value; equal values count once. (Values are mixed first, so
  // ids that are already hashes and ids that are small integers do alike.)
  void Add(uint64_t value);
  // The estimated number of distinct values added; 0 for none.
  double Estimate() const;

 private:
  std::vector<uint8_t> registers_;
};

}  // namespace tessera

#endif  // TESSERA_CORE_DISTINCT_COUNTER_H_
