// The 64-bit ids of sparse tables' rows (issue 16; docs/FORMATS.md, "Sparse
// tables"): what an example's id slots hold beside its float values, since
// ids above 2^24 cannot travel as float32.
#ifndef TESSERA_CORE_SPARSE_ID_H_
#define TESSERA_CORE_SPARSE_ID_H_

#include <cstdint>

namespace tessera {

// An empty id slot (a missing categorical value, a bag shorter than
// values_per_field): it reads no row. Hashes never give it (a hash equal to
// it is taken as kNoSparseId - 1), so every real id differs from it.
inline constexpr uint64_t kNoSparseId = ~uint64_t{0};

}  // namespace tessera

#endif  // TESSERA_CORE_SPARSE_ID_H_
