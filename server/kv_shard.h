// KvShard: the key ranges one server owns — parameters, optimizer state,
// version — and how pushes become optimizer steps. No sockets here, so the
// aggregation rules are testable on their own.
//
// BSP: pushes for the current version are held until every worker's has
// come, summed in worker-rank order (never arrival order, so runs are
// bitwise reproducible), divided by the step's example count, then applied
// once. ASP: each push is applied on arrival.
//
// Not thread-safe: the server's single event-loop thread owns it.
#ifndef TESSERA_SERVER_KV_SHARD_H_
#define TESSERA_SERVER_KV_SHARD_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/key_range.h"
#include "core/message.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "server/optimizer.h"

namespace tessera {

class KvShard {
 public:
  // Owns `ranges` of a model with `tensors`, initialized from `seed`.
  // *optimizer must outlive this.
  KvShard(std::vector<KeyRange> ranges, const std::vector<TensorInfo>& tensors, uint64_t seed,
          const Optimizer* optimizer, proto::Consistency consistency, int workers);

  const std::vector<KeyRange>& ranges() const { return ranges_; }
  uint64_t num_keys() const { return num_keys_; }
  // Optimizer steps applied so far.
  int64_t version() const { return version_; }

  // Takes worker `rank`'s gradient frames (one per owned range, summed over
  // `examples` examples) for `step`. Returns true when the push completed a
  // step (BSP: the last worker's; ASP: always) and the step was applied.
  // InvalidArgument for wrong ranges, a rank out of range, a step other than
  // version() under BSP, or a second push from one rank for one step.
  StatusOr<bool> AddPush(int rank, int64_t step, int64_t examples, const std::vector<KeyRange>& ranges,
                         std::vector<zmq::message_t>&& frames);

  // The parameters as frames for a PARAMS reply, sent without copying: the
  // frames share the buffer, and the next step writes into a copy if a
  // reply still holds it.
  std::vector<OutFrame> ParamFrames() const;

  // Copies of the current parameters (local layout: owned ranges back to back).
  const std::vector<float>& params() const { return *params_; }

 private:
  // Floats per optimizer call: small enough for the chunk's mean gradient to stay in L1.
  static constexpr uint64_t kApplyChunk = 2048;

  // Frame pointers, aligned (copied into scratch slot `slot` when not).
  std::vector<const float*> AlignedFrames(const std::vector<zmq::message_t>& frames, int slot);
  void ApplyBsp();
  // Steps the optimizer with the sum of `contributions` (each: one pointer
  // per owned range) divided by `examples`.
  void ApplySummed(std::span<const std::vector<const float*>> contributions, int64_t examples);

  std::vector<KeyRange> ranges_;
  std::vector<uint64_t> local_offsets_;  // where each range starts in params_
  uint64_t num_keys_ = 0;
  const Optimizer* optimizer_;
  proto::Consistency consistency_;
  int workers_;
  int64_t version_ = 0;
  std::shared_ptr<std::vector<float>> params_;
  // Optimizer state: per chunk of kApplyChunk keys (of each range), state_per_param() blocks of the chunk's size.
  std::vector<float> state_;
  // BSP: the current step's pushes by rank, and their example counts.
  std::vector<std::optional<std::vector<zmq::message_t>>> pending_;
  std::vector<int64_t> pending_examples_;
  int pending_count_ = 0;
  std::vector<std::vector<float>> scratch_;  // for unaligned frames
};

}  // namespace tessera

#endif  // TESSERA_SERVER_KV_SHARD_H_
