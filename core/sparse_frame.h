// Sparse frames: a PUSH may send a key range as only some runs of it (the
// rows of an embedding a step touched) instead of every float. The receiver
// turns such a frame back into the dense one it stands for, with zeros
// outside the runs, as it decodes the message (DecodeMessage), so servers
// aggregate sparse and dense pushes alike.
//
// Layout (little-endian): uint64 run count n; n pairs of uint64 (offset,
// length), counted in floats from the range's begin, each length >= 1, in
// increasing order without overlap, inside the range; then the runs' float32
// values back to back. See docs/PROTOCOL.md, "Sparse pushes".
#ifndef TESSERA_CORE_SPARSE_FRAME_H_
#define TESSERA_CORE_SPARSE_FRAME_H_

#include <zmq.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"

namespace tessera {

// Bytes of a sparse frame with these runs (relative to the range).
uint64_t SparseFrameBytes(const std::vector<KeyRange>& runs);

// The sparse frame of `runs` (relative to the range, sorted, disjoint,
// non-empty) of a range whose dense floats start at `range_values`.
std::string EncodeSparseFrame(const float* range_values, const std::vector<KeyRange>& runs);

// The dense frame (keys floats) a sparse frame for a range of `keys` floats
// stands for. DataLoss naming the problem when the frame is malformed.
StatusOr<zmq::message_t> DecodeSparseFrame(const zmq::message_t& frame, uint64_t keys);

}  // namespace tessera

#endif  // TESSERA_CORE_SPARSE_FRAME_H_
