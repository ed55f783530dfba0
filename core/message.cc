#include "core/message.h"

#include <cstdint>
#include <cstring>

#include "core/consistency.h"
#include "core/key_range.h"
#include "core/sparse_frame.h"

namespace tessera {

namespace {

bool IsSparseTableOp(proto::Op op) {
  return op == proto::SPARSE_PUSH || op == proto::SPARSE_PULL || op == proto::SPARSE_ROWS;
}

// A sparse table message: no key ranges, a sparse_rows body, and frames of
// exactly the sizes it states (SPARSE_PUSH: ids and rows; SPARSE_PULL: ids;
// SPARSE_ROWS: rows). Checked with the counts as integers, so a header
// claiming 2^63 ids makes no large number of bytes.
Status ValidateSparseRows(const proto::Header& header, const std::vector<zmq::message_t>& frames) {
  const std::string op = proto::Op_Name(header.op());
  if (header.ranges_size() != 0) return InvalidArgumentError("a " + op + " names key ranges");
  if (!header.has_sparse_rows()) return InvalidArgumentError("a " + op + " without sparse_rows");
  const proto::SparseRows& rows = header.sparse_rows();
  if (rows.table() < 0) return InvalidArgumentError("sparse table " + std::to_string(rows.table()));
  if (rows.dim() < 1 || rows.dim() > kMaxSparseDim) {
    return InvalidArgumentError("sparse rows of " + std::to_string(rows.dim()) + " floats, expected 1 to " +
                                std::to_string(kMaxSparseDim));
  }
  if (rows.count() > kMaxFrameBytes / (sizeof(float) * static_cast<uint64_t>(rows.dim()))) {
    return InvalidArgumentError(std::to_string(rows.count()) + " sparse rows, more than a message may hold");
  }
  if (header.op() == proto::SPARSE_PUSH && header.examples() < 0) {
    return InvalidArgumentError("a SPARSE_PUSH of " + std::to_string(header.examples()) + " examples");
  }
  const uint64_t id_bytes = rows.count() * sizeof(uint64_t);
  const uint64_t row_bytes = rows.count() * static_cast<uint64_t>(rows.dim()) * sizeof(float);
  std::vector<uint64_t> expected;
  if (header.op() != proto::SPARSE_ROWS) expected.push_back(id_bytes);
  if (header.op() != proto::SPARSE_PULL) expected.push_back(row_bytes);
  if (frames.size() != expected.size()) {
    return DataLossError("a " + op + " of " + std::to_string(frames.size()) + " frames, expected " +
                         std::to_string(expected.size()));
  }
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].size() != expected[i]) {
      return DataLossError("frame " + std::to_string(i + 1) + " of a " + op + " holds " +
                           std::to_string(frames[i].size()) + " bytes, expected " + std::to_string(expected[i]));
    }
  }
  return OkStatus();
}

// SSP's counts of steps by staleness: only in a PHASE_DONE, at most one per
// staleness the spec allows, none negative.
Status ValidateStalenessSteps(const proto::Header& header) {
  if (header.staleness_steps_size() == 0) return OkStatus();
  if (header.op() != proto::PHASE_DONE) {
    return InvalidArgumentError("staleness_steps in a " + proto::Op_Name(header.op()));
  }
  if (header.staleness_steps_size() > kMaxStaleness + 1) {
    return InvalidArgumentError("staleness_steps holds " + std::to_string(header.staleness_steps_size()) +
                                " counts, at most " + std::to_string(kMaxStaleness + 1) + " expected");
  }
  for (int k = 0; k < header.staleness_steps_size(); ++k) {
    if (header.staleness_steps(k) < 0) {
      return InvalidArgumentError("staleness_steps[" + std::to_string(k) + "] is " +
                                  std::to_string(header.staleness_steps(k)) + ", expected >= 0");
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidateMessage(const proto::Header& header, const std::vector<zmq::message_t>& frames) {
  if (header.version() != proto::WIRE_VERSION_CURRENT) {
    return InvalidArgumentError("wire version " + std::to_string(header.version()) + ", expected " +
                                std::to_string(proto::WIRE_VERSION_CURRENT));
  }
  if (!proto::Op_IsValid(header.op()) || header.op() == proto::OP_UNSPECIFIED) {
    return InvalidArgumentError("unknown op " + std::to_string(header.op()));
  }
  if (IsSparseTableOp(header.op())) return ValidateSparseRows(header, frames);
  if (header.has_sparse_rows()) return InvalidArgumentError("sparse_rows in a " + proto::Op_Name(header.op()));
  RETURN_IF_ERROR(ValidateStalenessSteps(header));
  if (static_cast<size_t>(header.ranges_size()) != frames.size()) {
    return DataLossError("header names " + std::to_string(header.ranges_size()) + " key ranges but " +
                         std::to_string(frames.size()) + " tensor frames came");
  }
  uint64_t previous_end = 0;
  for (int i = 0; i < header.ranges_size(); ++i) {
    const proto::KeyRange& r = header.ranges(i);
    if (r.end() <= r.begin()) return InvalidArgumentError("empty key range " + std::to_string(i));
    if (i > 0 && r.begin() < previous_end) return InvalidArgumentError("key ranges out of order at " + std::to_string(i));
    previous_end = r.end();
    const uint64_t keys = r.end() - r.begin();
    if (keys > (uint64_t{1} << 40)) return InvalidArgumentError("key range " + std::to_string(i) + " too large");
    if (header.op() == proto::PULL && !r.sparse()) {
      return InvalidArgumentError("key range " + std::to_string(i) + " of a PULL is not sparse (a run list)");
    }
    if (r.sparse()) {
      if (header.op() != proto::PUSH && header.op() != proto::PULL && header.op() != proto::PARAMS) {
        return InvalidArgumentError("sparse key range " + std::to_string(i) + " in a " + proto::Op_Name(header.op()));
      }
      // No slice is larger than a frame may be (kSliceKeys), so a larger
      // sparse range is malformed, whatever its few bytes say.
      if (keys * sizeof(float) > kMaxFrameBytes) {
        return InvalidArgumentError("sparse key range " + std::to_string(i) + " stands for " +
                                    std::to_string(keys * sizeof(float)) + " bytes, more than a message may hold (" +
                                    std::to_string(kMaxFrameBytes) + ")");
      }
      continue;  // DecodeMessage checks the frame
    }
    if (frames[i].size() != keys * sizeof(float)) {
      return DataLossError("frame " + std::to_string(i + 1) + " holds " + std::to_string(frames[i].size()) +
                           " bytes, expected " + std::to_string(keys * sizeof(float)) + " for " +
                           std::to_string(keys) + " float32 keys");
    }
  }
  return OkStatus();
}

StatusOr<Message> DecodeMessage(std::vector<zmq::message_t>&& parts, bool has_identity) {
  const size_t header_index = has_identity ? 1 : 0;
  if (parts.size() <= header_index) {
    return DataLossError("message of " + std::to_string(parts.size()) + " frames has no header");
  }
  Message m;
  if (has_identity) m.peer = parts[0].to_string();
  const zmq::message_t& h = parts[header_index];
  if (h.size() > (1u << 26) || !m.header.ParseFromArray(h.data(), static_cast<int>(h.size()))) {
    return DataLossError("header frame of " + std::to_string(h.size()) + " bytes does not parse");
  }
  for (size_t i = header_index + 1; i < parts.size(); ++i) m.frames.push_back(std::move(parts[i]));
  RETURN_IF_ERROR(ValidateMessage(m.header, m.frames));
  // Sparse frames are checked and kept as they came: what one stands for is
  // made dense (CopySparseValues) only by a receiver that knows the range,
  // into memory of its own, never into a buffer sized by the message.
  for (int i = 0; i < m.header.ranges_size(); ++i) {
    const proto::KeyRange& r = m.header.ranges(i);
    if (!r.sparse()) continue;
    const uint64_t keys = r.end() - r.begin();
    const Status checked = m.header.op() == proto::PULL ? ParseRunList(m.frames[i], keys).status()
                                                        : ParseSparseFrame(m.frames[i], keys).status();
    if (!checked.ok()) return checked.WithContext("frame " + std::to_string(i + 1));
  }
  return m;
}

const float* FrameFloats(const zmq::message_t& frame, std::vector<float>* scratch) {
  const auto address = reinterpret_cast<uintptr_t>(frame.data());
  if (address % alignof(float) == 0) return static_cast<const float*>(frame.data());
  scratch->resize(frame.size() / sizeof(float));
  std::memcpy(scratch->data(), frame.data(), scratch->size() * sizeof(float));
  return scratch->data();
}

std::vector<uint64_t> FrameIds(const zmq::message_t& frame) {
  std::vector<uint64_t> ids(frame.size() / sizeof(uint64_t));
  if (!ids.empty()) std::memcpy(ids.data(), frame.data(), ids.size() * sizeof(uint64_t));
  return ids;
}

std::vector<KeyRange> RangesOf(const proto::Header& header) {
  std::vector<KeyRange> ranges;
  ranges.reserve(header.ranges_size());
  for (const proto::KeyRange& r : header.ranges()) ranges.push_back({r.begin(), r.end()});
  return ranges;
}

std::vector<bool> SparseRangesOf(const proto::Header& header) {
  std::vector<bool> sparse;
  sparse.reserve(header.ranges_size());
  for (const proto::KeyRange& r : header.ranges()) sparse.push_back(r.sparse());
  return sparse;
}

void SetRanges(const std::vector<KeyRange>& ranges, proto::Header* header) {
  header->clear_ranges();
  for (const KeyRange& r : ranges) {
    proto::KeyRange* out = header->add_ranges();
    out->set_begin(r.begin);
    out->set_end(r.end);
  }
}

}  // namespace tessera
