// KvShard: the key ranges ("slices") one server owns — parameters,
// optimizer state, a version per slice — and how pushes become optimizer
// steps. No sockets here, so the aggregation rules are testable on their own.
//
// A push carries whole slices (any subset of the owned ones), so a worker can
// send a large tensor in pieces and the server applies each piece as soon as
// it is complete, overlapping its work with the transfer of the next piece.
//
// BSP: a slice's pushes for its current version are held until every
// taking-part worker's has come (SetActive changes who takes part), summed in worker-rank order (never arrival order, so runs
// are bitwise reproducible), divided by the step's example count, and applied
// once. SSP with staleness s: the same, but a slice also holds the pushes of
// the s steps after its version (a window of s + 1 steps), and applies each
// step, in order, once it is complete and every step before it is applied;
// s = 0 is BSP. ASP: each push is applied on arrival.
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
#include "core/sparse_frame.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "server/optimizer.h"
#include "server/slice_store.h"

namespace tessera {

class KvShard {
 public:
  // Owns `slices` (sorted, disjoint) of a model with `tensors`, initialized
  // from `seed`. *optimizer must outlive this. With freeze_zero_weights,
  // every weight (trainable, rank >= 2: tensors need their shapes) that is
  // exactly 0 once the slices are loaded (here, and by Restore) stays 0: it
  // and its optimizer state are reset after every update (fine-tuning a
  // pruned model). `staleness`: SSP's bound s (JobSpec.staleness; 0 for BSP
  // and ASP). REQUIRES: workers >= 1, staleness >= 0.
  KvShard(std::vector<KeyRange> slices, const std::vector<TensorInfo>& tensors, uint64_t seed,
          const Optimizer* optimizer, proto::Consistency consistency, int workers, bool freeze_zero_weights = false,
          int staleness = 0);

  // The owned slices, in key order.
  const std::vector<KeyRange>& ranges() const { return slices_; }
  uint64_t num_keys() const { return num_keys_; }
  // Steps every slice has applied: the lowest slice version.
  int64_t version() const;
  // The lowest version among `slices` (indices into ranges()).
  int64_t MinVersion(const std::vector<int>& slices) const;

  // The indices of the owned slices `ranges` names. InvalidArgument unless
  // each range is exactly one owned slice, in key order, without repeats.
  StatusOr<std::vector<int>> FindSlices(const std::vector<KeyRange>& ranges) const;

  // Takes worker `rank`'s gradient frames for `ranges` (one frame per range,
  // each an owned slice; the gradient summed over `examples` examples) for
  // `step`. A range marked in `sparse` (empty: none) has a sparse frame
  // (core/sparse_frame.h), made dense into the slice's own buffer once
  // everything is checked. Returns true when the push completed a step of at
  // least one slice (BSP: it was the last worker's; ASP: always) and that
  // step was applied. InvalidArgument, with nothing changed, for unknown
  // ranges, wrong frame sizes, malformed sparse frames, a rank out of range,
  // or under BSP a step other than a slice's version (SSP: outside version ..
  // version + staleness) or a second push from one rank for one slice and
  // step.
  StatusOr<bool> AddPush(int rank, int64_t step, int64_t examples, const std::vector<KeyRange>& ranges,
                         std::vector<zmq::message_t>&& frames, const std::vector<bool>& sparse = {});

  // The parameters of `slices` (all when empty) as frames for a PARAMS
  // reply, sent without copying: the frames share each slice's buffer, and
  // a later step writes into a copy if a reply still holds it.
  std::vector<OutFrame> ParamFrames(const std::vector<int>& slices = {}) const;

  // A copy of the parameters, slices back to back.
  std::vector<float> params() const;

  // Every slice as a checkpoint stores it. Parameters and optimizer state are
  // shared, not copied: while the snapshot holds them, the next step writes
  // its results into other buffers (ApplySlice).
  std::vector<SliceSnapshot> Snapshot() const;

  // Arms a consistent cut at `step`: each slice is captured the moment it
  // reaches that version (at once if it is there already), so training goes
  // on while the cut forms. Replaces an armed cut. FailedPrecondition when
  // some slice is already past `step`. Under ASP (whose cuts come between
  // phases) every slice is captured at once as it is, labelled `step`.
  Status ArmSnapshot(int64_t step);
  // The armed step, if any, and whether every slice has been captured.
  std::optional<int64_t> armed_step() const { return armed_step_; }
  bool SnapshotReady() const;
  // The captured cut; disarms. REQUIRES: SnapshotReady().
  std::vector<SliceSnapshot> TakeSnapshot();
  // The highest slice version.
  int64_t MaxVersion() const;

  // Spare buffers: what a step writes into while a snapshot (or a PARAMS
  // reply) holds a slice's own buffers (ApplySlice). Made when first needed,
  // they cost that step a page fault per 4 KiB — for the first snapshot more
  // than the step itself. A server makes them ahead of time on another
  // thread: SpareSizes() here, MakeSpares() anywhere, AdoptSpares() here.
  struct Spares {
    // Per slice; null where none is needed.
    std::vector<std::shared_ptr<std::vector<float>>> params, state;
  };
  // Per slice: the floats of its parameter and optimizer-state spares (0: none needed).
  std::vector<std::pair<uint64_t, uint64_t>> SpareSizes() const;
  // New zeroed (so already faulted-in) buffers of those sizes. Thread-safe.
  static Spares MakeSpares(const std::vector<std::pair<uint64_t, uint64_t>>& sizes);
  // Takes each spare for a slice that has none of its size yet; drops the rest.
  void AdoptSpares(Spares spares);

  // The worker ranks taking part from now on (at first all of them). Pushes
  // from other ranks are refused. A rank that leaves keeps the pushes that
  // already arrived: they are applied with the step they belong to. Slices
  // whose step waited only for ranks that left are applied now; returns
  // whether any was. *left gets, per rank that was taking part and is not
  // any more, the lowest and highest step of its last push over the slices
  // (-1 where none came). InvalidArgument, nothing changed, for a rank
  // outside [0, workers).
  struct Reach {
    int rank = -1;
    int64_t min_step = -1, max_step = -1;
  };
  StatusOr<bool> SetActive(const std::vector<int>& ranks, std::vector<Reach>* left);
  // BSP: every slice below `version` moves up to it with its parameters
  // unchanged (steps no push reached); returns whether any moved.
  // FailedPrecondition, nothing changed, while a slice holds pushes of a
  // step below it: they belong to a step that is still to be applied.
  StatusOr<bool> AdvanceTo(int64_t version);
  bool active(int rank) const { return rank >= 0 && rank < workers_ && active_[rank]; }

  // Loads every owned slice's parameters and optimizer state from `records`
  // (a checkpoint's slices, however they were split) and sets every slice's
  // version to `step`. DataLoss, with nothing changed, when the records
  // overlap, miss some owned key, or hold another optimizer's state.
  Status Restore(const std::vector<SliceRecord>& records, int64_t step);

 private:
  // A rank's push of a slice: a dense frame as it came, or a sparse one made
  // dense in `expanded`, which is the slice's size (never the message's) and
  // kept for the rank's next sparse push.
  struct Held {
    std::optional<zmq::message_t> frame;
    bool is_expanded = false;
    std::vector<float> expanded;
    bool has_value() const { return frame.has_value() || is_expanded; }
    void reset() {
      frame.reset();
      is_expanded = false;
    }
  };

  // One step's pushes of a slice: by rank, with their example counts.
  struct StepPushes {
    std::vector<Held> by_rank;
    std::vector<int64_t> examples;
    int count = 0;
  };

  struct Slice {
    KeyRange range;
    int64_t version = 0;
    std::shared_ptr<std::vector<float>> params;
    // Optimizer state: state_per_param() blocks of range.size() floats.
    std::shared_ptr<std::vector<float>> state;
    // The buffers params and state last replaced because a snapshot or a
    // PARAMS reply held them; reused once nothing else does, so a step after
    // a snapshot writes into memory that is already mapped. Empty until then.
    std::shared_ptr<std::vector<float>> spare_params, spare_state;
    // BSP and SSP: the pushes held for steps version .. version + staleness,
    // step t's at window[t % window.size()] (a ring, so a step's buffers are
    // reused by the step staleness + 1 later). ASP: window[0] holds a push
    // during its own AddPush only.
    std::vector<StepPushes> window;
    // Per rank: the step of its last push of this slice, -1 before any.
    std::vector<int64_t> last_push;
    // False inside a non-trainable tensor: pushes carry values, not gradients.
    bool trainable = true;
    // Inside a weight tensor (trainable, rank >= 2).
    bool weight = false;
    // With freeze_zero_weights: the offsets in the slice of the weights held
    // at 0, increasing.
    std::vector<uint32_t> frozen;
  };

  // Floats per optimizer call: small enough for the chunk's mean gradient to stay in L1.
  static constexpr uint64_t kApplyChunk = 2048;

  // Steps slice `s` with the sum of `gradients` (in the order given) divided by `examples`.
  void ApplySlice(Slice* slice, std::span<const float* const> gradients, int64_t examples);
  // Swaps *buffer, which a snapshot or a reply holds, for *spare (or, while
  // that is held too or missing, a new buffer) without copying; the old one
  // becomes the spare, and the step reads it.
  static void SwapInSpare(std::shared_ptr<std::vector<float>>* buffer, std::shared_ptr<std::vector<float>>* spare);
  // The held pushes of `step` (within the window).
  StepPushes& PushesOf(Slice* slice, int64_t step) { return slice->window[step % slice->window.size()]; }
  const StepPushes& PushesOf(const Slice& slice, int64_t step) const {
    return slice.window[step % slice.window.size()];
  }
  // Applies the slice's step at its version from the held pushes.
  void ApplyPending(Slice* slice);
  // Applies slice `index`'s complete steps in order, capturing an armed cut
  // on the way; returns whether any was applied.
  bool ApplyCompleteSteps(size_t index);
  // BSP/SSP: some push of the step at the slice's version is held and every
  // taking-part rank's is in.
  bool Complete(const Slice& slice) const;
  // Synchronous: InvalidArgument unless rank's push of `step` fits every
  // slice of `indices`' window and is its first for that step.
  Status CheckWindow(int rank, int64_t step, const std::vector<int>& indices) const;
  // With freeze_zero_weights: finds the slice's zero weights and zeroes their state.
  void FreezeZeros(Slice* slice) const;
  // The frame's floats, copied into a scratch buffer when unaligned.
  const float* Aligned(const zmq::message_t& frame, size_t scratch_slot);
  // A held push's gradient: its expanded floats, or its frame's (Aligned).
  const float* Gradient(const Held& held, size_t scratch_slot);
  // Keeps a push of `slice` in *held: a dense frame as it is, a sparse one
  // (`view`, checked against the slice) made dense in held->expanded.
  static void Hold(const Slice& slice, zmq::message_t&& frame, const SparseFrameView* view, Held* held);

  std::vector<KeyRange> slices_;
  std::vector<Slice> state_;
  uint64_t num_keys_ = 0;
  const Optimizer* optimizer_;
  proto::Consistency consistency_;
  int workers_;
  bool freeze_zero_weights_;
  int staleness_;
  std::vector<bool> active_;  // by rank: taking part
  std::vector<std::vector<float>> scratch_;  // for unaligned frames
  // The armed cut: its step and the slices captured so far.
  std::optional<int64_t> armed_step_;
  std::vector<std::optional<SliceSnapshot>> captured_;
  size_t captured_count_ = 0;
  void MaybeCapture(size_t index);
};

}  // namespace tessera

#endif  // TESSERA_SERVER_KV_SHARD_H_
