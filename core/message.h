// Messages on the wire: frame 0 a proto::Header, frames 1.. raw float32
// tensor bytes, one frame per Header.ranges entry. Decoding validates the
// header against the frames before any tensor byte is read.
#ifndef TESSERA_CORE_MESSAGE_H_
#define TESSERA_CORE_MESSAGE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "core/key_range.h"
#include "core/status.h"
#include "proto/wire.pb.h"

namespace tessera {

// A tensor frame to send. When `owner` is set the bytes go out without a
// copy and `owner` is kept alive until ZeroMQ has sent them; otherwise they
// are copied at Send time.
struct OutFrame {
  const void* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> owner;
};

// A received message: the decoded header and its tensor frames.
struct Message {
  std::string peer;  // ROUTER sockets: the sender's identity; empty otherwise.
  proto::Header header;
  std::vector<zmq::message_t> frames;
};

// The most floats a sparse table's row may have (SparseTableSpec.dim).
inline constexpr int kMaxSparseDim = 1024;

// Validates a decoded header against its tensor frames: known op, wire
// version, one frame per range, each frame (end-begin)*4 bytes (or, for a
// sparse range of a PUSH, PULL or PARAMS, no larger than a frame may be),
// ranges non-empty and sorted; for SPARSE_PUSH, SPARSE_PULL and SPARSE_ROWS
// no ranges, a sparse_rows body with a dim in [1, kMaxSparseDim], and frames
// of exactly the ids and rows it states (the ids' order is the receiver's to
// check). Returns InvalidArgument/DataLoss naming the
// problem.
Status ValidateMessage(const proto::Header& header, const std::vector<zmq::message_t>& frames);

// Decodes parts (identity first when `has_identity`) into a Message. Never
// throws; returns DataLoss/InvalidArgument for malformed input. Sparse
// frames (core/sparse_frame.h) are checked and kept sparse: nothing here
// allocates more than the bytes that came.
StatusOr<Message> DecodeMessage(std::vector<zmq::message_t>&& parts, bool has_identity);

// A frame's bytes as floats. Frames may be unaligned (ZeroMQ can deliver
// small messages inside a shared receive buffer), so this returns the frame's
// own memory when it is aligned and copies into *scratch when it is not.
const float* FrameFloats(const zmq::message_t& frame, std::vector<float>* scratch);

// A frame of uint64 ids (a SPARSE_PUSH's or SPARSE_PULL's first), copied
// (frames may be unaligned).
std::vector<uint64_t> FrameIds(const zmq::message_t& frame);

std::vector<KeyRange> RangesOf(const proto::Header& header);
// Per range of the header: whether it is marked sparse.
std::vector<bool> SparseRangesOf(const proto::Header& header);
void SetRanges(const std::vector<KeyRange>& ranges, proto::Header* header);

}  // namespace tessera

#endif  // TESSERA_CORE_MESSAGE_H_
