// Sparse frames: a key range sent as only some runs of it (the rows of an
// embedding a step touched, or the next step reads) instead of every float.
// DecodeMessage checks sparse frames and keeps them sparse. A server makes a
// sparse PUSH frame dense, zeros outside the runs, only once it has checked
// the sender and that the range is one of its slices, in memory of its own
// sized by the slice (KvShard::AddPush), so it aggregates sparse and dense
// pushes alike and a few bytes never claim a large buffer. A sparse PULL
// range carries only the run list (the rows wanted), and the PARAMS
// answering it a sparse frame of those rows, which the worker copies into
// place (CopySparseValues).
//
// Layout (little-endian): uint64 run count n; n pairs of uint64 (offset,
// length), counted in floats from the range's begin, each length >= 1, in
// increasing order without overlap, inside the range; then (not in a run
// list) the runs' float32 values back to back. See docs/PROTOCOL.md,
// "Sparse pushes and pulls".
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

// A run list: the layout's count and pairs without values.
std::string EncodeRunList(const std::vector<KeyRange>& runs);

// A checked sparse frame: its runs and where their values start (not
// necessarily aligned for float).
struct SparseFrameView {
  std::vector<KeyRange> runs;
  const char* values = nullptr;
};

// Checks a sparse frame for a range of `keys` floats: DataLoss naming the
// problem when it is malformed. The view points into `frame`.
StatusOr<SparseFrameView> ParseSparseFrame(const zmq::message_t& frame, uint64_t keys);

// Checks a run list for a range of `keys` floats and returns its runs.
StatusOr<std::vector<KeyRange>> ParseRunList(const zmq::message_t& frame, uint64_t keys);

// Writes the view's values at their runs' offsets from range_values (and
// nothing else there). REQUIRES: range_values holds the `keys` floats the
// view was parsed for.
void CopySparseValues(const SparseFrameView& view, float* range_values);

}  // namespace tessera

#endif  // TESSERA_CORE_SPARSE_FRAME_H_
