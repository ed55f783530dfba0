#include "server/kv_shard.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "models/model.h"

namespace tessera {

KvShard::KvShard(std::vector<KeyRange> slices, const std::vector<TensorInfo>& tensors, uint64_t seed,
                 const Optimizer* optimizer, proto::Consistency consistency, int workers, bool freeze_zero_weights,
                 int staleness)
    : slices_(std::move(slices)),
      optimizer_(optimizer),
      consistency_(consistency),
      workers_(workers),
      freeze_zero_weights_(freeze_zero_weights),
      staleness_(staleness) {
  CHECK_GE(workers_, 1);
  CHECK_GE(staleness_, 0);
  active_.assign(workers_, true);
  uint64_t total = 0;
  for (const TensorInfo& t : tensors) total = std::max(total, t.offset + t.size);
  // Initialize the whole model, keep our slices: values must not depend on
  // how the keys are split.
  std::vector<float> full(total);
  InitializeParameters(tensors, seed, full.data());
  state_.resize(slices_.size());
  for (size_t i = 0; i < slices_.size(); ++i) {
    Slice& s = state_[i];
    s.range = slices_[i];
    s.params = std::make_shared<std::vector<float>>(full.begin() + s.range.begin, full.begin() + s.range.end);
    s.state = std::make_shared<std::vector<float>>(s.range.size() * optimizer_->state_per_param(), 0.0f);
    s.window.resize(consistency_ == proto::ASP ? 1 : staleness_ + 1);
    for (StepPushes& step : s.window) {
      step.by_rank.resize(workers_);
      step.examples.assign(workers_, 0);
    }
    s.last_push.assign(workers_, -1);
    for (const TensorInfo& t : tensors) {
      if (t.offset <= s.range.begin && s.range.begin < t.offset + t.size) {
        s.trainable = t.trainable;
        s.weight = t.trainable && t.shape.size() >= 2;
      }
    }
    FreezeZeros(&s);
    num_keys_ += s.range.size();
  }
}

int64_t KvShard::version() const {
  int64_t lowest = INT64_MAX;
  for (const Slice& s : state_) lowest = std::min(lowest, s.version);
  return state_.empty() ? 0 : lowest;
}

int64_t KvShard::MinVersion(const std::vector<int>& slices) const {
  if (slices.empty()) return version();
  int64_t lowest = INT64_MAX;
  for (int i : slices) lowest = std::min(lowest, state_[i].version);
  return lowest;
}

StatusOr<std::vector<int>> KvShard::FindSlices(const std::vector<KeyRange>& ranges) const {
  std::vector<int> found;
  found.reserve(ranges.size());
  int previous = -1;
  for (const KeyRange& r : ranges) {
    auto it = std::lower_bound(slices_.begin(), slices_.end(), r.begin,
                               [](const KeyRange& s, uint64_t begin) { return s.begin < begin; });
    if (it == slices_.end() || *it != r) {
      return InvalidArgumentError("key range " + ToString(r) + " is not a slice this server owns");
    }
    const int index = static_cast<int>(it - slices_.begin());
    if (index <= previous) return InvalidArgumentError("key ranges repeat or are out of order");
    previous = index;
    found.push_back(index);
  }
  return found;
}

StatusOr<bool> KvShard::AddPush(int rank, int64_t step, int64_t examples, const std::vector<KeyRange>& ranges,
                                std::vector<zmq::message_t>&& frames, const std::vector<bool>& sparse) {
  // Check everything before changing anything.
  if (rank < 0 || rank >= workers_) {
    return InvalidArgumentError("push from worker rank " + std::to_string(rank) + ", expected 0.." +
                                std::to_string(workers_ - 1));
  }
  if (!active_[rank]) {
    return InvalidArgumentError("push from worker rank " + std::to_string(rank) + ", which has left the job");
  }
  if (examples < 0) return InvalidArgumentError("push of " + std::to_string(examples) + " examples");
  if (ranges.empty()) return InvalidArgumentError("push names no key ranges");
  if (frames.size() != ranges.size()) return InvalidArgumentError("push frame count does not match its ranges");
  if (!sparse.empty() && sparse.size() != ranges.size()) {
    return InvalidArgumentError("push marks " + std::to_string(sparse.size()) + " ranges sparse or not, it has " +
                                std::to_string(ranges.size()));
  }
  // The ranges must be owned slices before any frame is read: a sparse
  // frame is made dense at the slice's size, never at what the message says.
  ASSIGN_OR_RETURN(std::vector<int> indices, FindSlices(ranges));
  std::vector<std::optional<SparseFrameView>> views(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    if (!sparse.empty() && sparse[i]) {
      auto view = ParseSparseFrame(frames[i], ranges[i].size());
      if (!view.ok()) {
        return InvalidArgumentError("push frame " + std::to_string(i) + ": " + view.status().message());
      }
      views[i] = std::move(view).value();
      continue;
    }
    if (frames[i].size() != ranges[i].size() * sizeof(float)) {
      return InvalidArgumentError("push frame " + std::to_string(i) + " holds " + std::to_string(frames[i].size()) +
                                  " bytes, expected " + std::to_string(ranges[i].size() * sizeof(float)));
    }
  }
  if (consistency_ != proto::ASP) RETURN_IF_ERROR(CheckWindow(rank, step, indices));

  bool applied = false;
  for (size_t i = 0; i < indices.size(); ++i) {
    Slice& s = state_[indices[i]];
    s.last_push[rank] = step;
    const SparseFrameView* view = views[i].has_value() ? &*views[i] : nullptr;
    if (consistency_ == proto::ASP) {
      if (examples > 0) {
        // Held only for this call: ASP applies each push at once.
        Held& held = s.window[0].by_rank[rank];
        Hold(s, std::move(frames[i]), view, &held);
        const float* g = Gradient(held, 0);
        ApplySlice(&s, {&g, 1}, examples);
        held.reset();
      }
      ++s.version;
      MaybeCapture(indices[i]);
      applied = true;
      continue;
    }
    StepPushes& pushes = PushesOf(&s, step);
    Hold(s, std::move(frames[i]), view, &pushes.by_rank[rank]);
    pushes.examples[rank] = examples;
    ++pushes.count;
    // A push ahead of the slice's version waits in the window for the steps before it.
    if (ApplyCompleteSteps(indices[i])) applied = true;
  }
  return applied;
}

Status KvShard::CheckWindow(int rank, int64_t step, const std::vector<int>& indices) const {
  for (int index : indices) {
    const Slice& s = state_[index];
    if (step < s.version || (step > s.version && consistency_ == proto::BSP)) {
      return InvalidArgumentError("push for step " + std::to_string(step) + " from worker " + std::to_string(rank) +
                                  ", the server is at step " + std::to_string(s.version) + " for " +
                                  ToString(s.range));
    }
    if (step > s.version + staleness_) {
      return InvalidArgumentError("push for step " + std::to_string(step) + " from worker " + std::to_string(rank) +
                                  ", more than the staleness bound " + std::to_string(staleness_) +
                                  " steps ahead of the server's step " + std::to_string(s.version) + " for " +
                                  ToString(s.range));
    }
    if (PushesOf(s, step).by_rank[rank].has_value()) {
      return InvalidArgumentError("second push from worker " + std::to_string(rank) + " for step " +
                                  std::to_string(step) + " of " + ToString(s.range));
    }
  }
  return OkStatus();
}

bool KvShard::ApplyCompleteSteps(size_t index) {
  Slice& s = state_[index];
  bool applied = false;
  while (Complete(s)) {
    ApplyPending(&s);
    MaybeCapture(index);  // each step in turn: a cut may be armed at any of them
    applied = true;
  }
  return applied;
}

const float* KvShard::Aligned(const zmq::message_t& frame, size_t scratch_slot) {
  if (scratch_.size() <= scratch_slot) scratch_.resize(scratch_slot + 1);
  return FrameFloats(frame, &scratch_[scratch_slot]);
}

const float* KvShard::Gradient(const Held& held, size_t scratch_slot) {
  return held.is_expanded ? held.expanded.data() : Aligned(*held.frame, scratch_slot);
}

void KvShard::Hold(const Slice& slice, zmq::message_t&& frame, const SparseFrameView* view, Held* held) {
  if (view == nullptr) {
    held->frame = std::move(frame);
    return;
  }
  // Zeros outside the runs, exactly as the dense frame would hold them.
  held->expanded.assign(slice.range.size(), 0.0f);
  CopySparseValues(*view, held->expanded.data());
  held->is_expanded = true;
}

bool KvShard::Complete(const Slice& slice) const {
  const StepPushes& pushes = PushesOf(slice, slice.version);
  if (pushes.count == 0) return false;
  for (int r = 0; r < workers_; ++r) {
    if (active_[r] && !pushes.by_rank[r].has_value()) return false;
  }
  return true;
}

StatusOr<bool> KvShard::SetActive(const std::vector<int>& ranks, std::vector<Reach>* left) {
  std::vector<bool> active(workers_, false);
  for (int r : ranks) {
    if (r < 0 || r >= workers_) {
      return InvalidArgumentError("membership names worker rank " + std::to_string(r) + ", expected 0.." +
                                  std::to_string(workers_ - 1));
    }
    active[r] = true;
  }
  for (int r = 0; r < workers_; ++r) {
    if (!active_[r] || active[r]) continue;
    Reach reach;
    reach.rank = r;
    reach.min_step = state_.empty() ? -1 : INT64_MAX;
    for (const Slice& s : state_) {
      reach.min_step = std::min(reach.min_step, s.last_push[r]);
      reach.max_step = std::max(reach.max_step, s.last_push[r]);
    }
    left->push_back(reach);
  }
  active_ = std::move(active);
  bool applied = false;
  if (consistency_ == proto::ASP) return applied;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (ApplyCompleteSteps(i)) applied = true;
  }
  return applied;
}

StatusOr<bool> KvShard::AdvanceTo(int64_t version) {
  for (const Slice& s : state_) {
    // The window's steps below `version` must hold nothing; those at or past
    // it stay where they are (a ring by step).
    const int64_t last = std::min<int64_t>(version, s.version + static_cast<int64_t>(s.window.size()));
    for (int64_t step = s.version; step < last; ++step) {
      if (PushesOf(s, step).count == 0) continue;
      return FailedPreconditionError("slice [" + std::to_string(s.range.begin) + ", " + std::to_string(s.range.end) +
                                     ") holds pushes of step " + std::to_string(step) +
                                     ", below the version " + std::to_string(version) + " to advance to");
    }
  }
  bool moved = false;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].version >= version) continue;
    state_[i].version = version;
    MaybeCapture(i);
    moved = true;
  }
  return moved;
}

void KvShard::ApplyPending(Slice* slice) {
  StepPushes& pushes = PushesOf(slice, slice->version);
  int64_t examples = 0;
  std::vector<const float*> gradients;
  // Rank order, so the float sum is the same in every run.
  for (int r = 0; r < workers_; ++r) {
    if (!pushes.by_rank[r].has_value() || pushes.examples[r] == 0) continue;
    examples += pushes.examples[r];
    gradients.push_back(Gradient(pushes.by_rank[r], gradients.size()));
  }
  if (examples > 0) ApplySlice(slice, gradients, examples);
  for (int r = 0; r < workers_; ++r) {
    pushes.by_rank[r].reset();
    pushes.examples[r] = 0;
  }
  pushes.count = 0;
  ++slice->version;
}

void KvShard::ApplySlice(Slice* slice, std::span<const float* const> gradients, int64_t examples) {
  const float scale = 1.0f / static_cast<float>(examples);
  const int per = optimizer_->state_per_param();
  const uint64_t n = slice->range.size();
  // Out of place while a snapshot or a PARAMS reply still being sent holds a
  // buffer: the step reads the old values from it and writes its results
  // into other buffers (Optimizer::ApplyMeanFrom). That costs about what
  // stepping in place does; copying the buffers first (copy on write) cost
  // an extra pass over memory, a large share of the step after every
  // checkpoint.
  const bool steps_state = slice->trainable && per > 0;
  const bool in_place = slice->params.use_count() == 1 && (!steps_state || slice->state.use_count() == 1);
  const float* w_in = slice->params->data();
  const float* state_in = steps_state ? slice->state->data() : nullptr;
  if (in_place) {
    // Whoever else held them (a writer thread, ZeroMQ) has let go: their
    // release pairs with this acquire, so their reads happen before our writes.
    std::atomic_thread_fence(std::memory_order_acquire);
  } else {
    SwapInSpare(&slice->params, &slice->spare_params);
    if (steps_state) SwapInSpare(&slice->state, &slice->spare_state);
  }
  float* w = slice->params->data();
  float* state_out = steps_state ? slice->state->data() : nullptr;
  if (!in_place && slice->trainable) {
    // The whole slice in one call, so the optimizer can fuse the mean into
    // its pass (SGD momentum does); then the frozen weights, then one fence
    // for the streaming stores, before the step is published (a PARAMS
    // reply's frames, a later snapshot on the writer thread).
    optimizer_->ApplyMeanFrom(slice->version + 1, w_in, state_in, gradients, scale, w, state_out, n);
    for (uint32_t k : slice->frozen) {
      w[k] = 0.0f;
      for (int j = 0; j < per; ++j) state_out[j * n + k] = 0.0f;
    }
    Optimizer::FenceStores();
    return;
  }
  // One pass over memory: sum, scale and step a chunk at a time, the chunk's
  // mean gradient staying in L1 (separate passes are memory-bound).
  float mean[kApplyChunk];
  for (uint64_t k0 = 0; k0 < n; k0 += kApplyChunk) {
    const uint64_t m = std::min<uint64_t>(kApplyChunk, n - k0);
    const float* first = gradients[0] + k0;
    if (gradients.size() == 1) {
      for (uint64_t k = 0; k < m; ++k) mean[k] = first[k] * scale;
    } else {
      std::memcpy(mean, first, m * sizeof(float));
      for (size_t c = 1; c < gradients.size(); ++c) {
        const float* g = gradients[c] + k0;
        for (uint64_t k = 0; k < m; ++k) mean[k] += g[k];
      }
      for (uint64_t k = 0; k < m; ++k) mean[k] *= scale;
    }
    if (!slice->trainable) {
      // Workers push value * examples: the mean is the example-weighted mean value.
      std::memcpy(w + k0, mean, m * sizeof(float));
      continue;
    }
    // State blocks span the whole slice (block j at j * n), the layout checkpoints store.
    float* state = per > 0 ? state_out + k0 : nullptr;
    optimizer_->Apply(slice->version + 1, w + k0, mean, state, m, n);
    // Frozen weights: back to 0 whatever the optimizer did (weight decay,
    // momentum, Adam's moments), state included.
    auto it = std::lower_bound(slice->frozen.begin(), slice->frozen.end(), static_cast<uint32_t>(k0));
    for (; it != slice->frozen.end() && *it < k0 + m; ++it) {
      w[*it] = 0.0f;
      for (int j = 0; j < per; ++j) state_out[j * n + *it] = 0.0f;
    }
  }
}

void KvShard::SwapInSpare(std::shared_ptr<std::vector<float>>* buffer, std::shared_ptr<std::vector<float>>* spare) {
  if (*spare == nullptr || spare->use_count() > 1 || (*spare)->size() != (*buffer)->size()) {
    *spare = std::make_shared<std::vector<float>>((*buffer)->size());
  } else {
    std::atomic_thread_fence(std::memory_order_acquire);  // as in ApplySlice, for the spare's last holder
  }
  std::swap(*buffer, *spare);
}

std::vector<std::pair<uint64_t, uint64_t>> KvShard::SpareSizes() const {
  const int per = optimizer_->state_per_param();
  std::vector<std::pair<uint64_t, uint64_t>> sizes;
  for (const Slice& s : state_) {
    const bool steps_state = s.trainable && per > 0;
    sizes.emplace_back(s.params->size(), steps_state ? s.state->size() : 0);
  }
  return sizes;
}

KvShard::Spares KvShard::MakeSpares(const std::vector<std::pair<uint64_t, uint64_t>>& sizes) {
  Spares spares;
  for (const auto& [params, state] : sizes) {
    spares.params.push_back(params > 0 ? std::make_shared<std::vector<float>>(params) : nullptr);
    spares.state.push_back(state > 0 ? std::make_shared<std::vector<float>>(state) : nullptr);
  }
  return spares;
}

void KvShard::AdoptSpares(Spares spares) {
  auto adopt = [](std::shared_ptr<std::vector<float>>* spare, const std::vector<float>& own,
                  std::shared_ptr<std::vector<float>>& offered) {
    if (offered == nullptr || offered->size() != own.size()) return;
    if (*spare != nullptr && (*spare)->size() == own.size()) return;
    *spare = std::move(offered);
  };
  for (size_t i = 0; i < state_.size() && i < spares.params.size() && i < spares.state.size(); ++i) {
    Slice& s = state_[i];
    adopt(&s.spare_params, *s.params, spares.params[i]);
    adopt(&s.spare_state, *s.state, spares.state[i]);
  }
}

void KvShard::FreezeZeros(Slice* slice) const {
  slice->frozen.clear();
  if (!freeze_zero_weights_ || !slice->weight) return;
  const std::vector<float>& w = *slice->params;
  const uint64_t n = slice->range.size();
  const int per = optimizer_->state_per_param();
  for (uint64_t k = 0; k < n; ++k) {
    if (w[k] != 0.0f) continue;
    slice->frozen.push_back(static_cast<uint32_t>(k));
    for (int j = 0; j < per; ++j) (*slice->state)[j * n + k] = 0.0f;
  }
}

std::vector<OutFrame> KvShard::ParamFrames(const std::vector<int>& slices) const {
  std::vector<OutFrame> frames;
  auto add = [&](const Slice& s) { frames.push_back({s.params->data(), s.params->size() * sizeof(float), s.params}); };
  if (slices.empty()) {
    for (const Slice& s : state_) add(s);
  } else {
    for (int i : slices) add(state_[i]);
  }
  return frames;
}

std::vector<SliceSnapshot> KvShard::Snapshot() const {
  std::vector<SliceSnapshot> out;
  out.reserve(state_.size());
  for (const Slice& s : state_) out.push_back({s.range, s.version, s.params, SharedFloats(s.state)});
  return out;
}

Status KvShard::Restore(const std::vector<SliceRecord>& records, int64_t step) {
  const int per = optimizer_->state_per_param();
  std::vector<const SliceRecord*> sorted;
  for (const SliceRecord& r : records) {
    if (r.range.empty() || r.params.size() != r.range.size() || r.state.size() != r.range.size() * r.state_per_param) {
      return DataLossError("checkpoint slice " + ToString(r.range) + " holds inconsistent sizes");
    }
    if (r.state_per_param != per) {
      return DataLossError("checkpoint slice " + ToString(r.range) + " holds " + std::to_string(r.state_per_param) +
                           " optimizer state floats per parameter, this optimizer needs " + std::to_string(per));
    }
    sorted.push_back(&r);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const SliceRecord* a, const SliceRecord* b) { return a->range.begin < b->range.begin; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i]->range.begin < sorted[i - 1]->range.end) {
      return DataLossError("checkpoint slices " + ToString(sorted[i - 1]->range) + " and " +
                           ToString(sorted[i]->range) + " overlap");
    }
  }
  // Build every slice's new contents first, so a failure changes nothing.
  std::vector<std::vector<float>> params(state_.size()), states(state_.size());
  for (size_t i = 0; i < state_.size(); ++i) {
    const KeyRange want = state_[i].range;
    const uint64_t n = want.size();
    params[i].resize(n);
    states[i].resize(n * per);
    // The first record that could overlap: the last one starting at or before want.begin.
    auto it = std::upper_bound(sorted.begin(), sorted.end(), want.begin,
                               [](uint64_t key, const SliceRecord* r) { return key < r->range.begin; });
    if (it != sorted.begin()) --it;
    uint64_t covered = 0;
    for (; it != sorted.end() && (*it)->range.begin < want.end; ++it) {
      const SliceRecord& r = **it;
      const uint64_t from = std::max(want.begin, r.range.begin);
      const uint64_t to = std::min(want.end, r.range.end);
      if (from >= to) continue;
      std::memcpy(params[i].data() + (from - want.begin), r.params.data() + (from - r.range.begin),
                  (to - from) * sizeof(float));
      for (int j = 0; j < per; ++j) {
        std::memcpy(states[i].data() + j * n + (from - want.begin),
                    r.state.data() + j * r.range.size() + (from - r.range.begin), (to - from) * sizeof(float));
      }
      covered += to - from;
    }
    if (covered != n) {
      return DataLossError("the checkpoint covers " + std::to_string(covered) + " of the " + std::to_string(n) +
                           " keys of slice " + ToString(want));
    }
  }
  for (size_t i = 0; i < state_.size(); ++i) {
    Slice& s = state_[i];
    s.params = std::make_shared<std::vector<float>>(std::move(params[i]));
    s.state = std::make_shared<std::vector<float>>(std::move(states[i]));
    s.spare_params.reset();
    s.spare_state.reset();
    s.version = step;
    for (StepPushes& pushes : s.window) {
      for (Held& held : pushes.by_rank) held.reset();
      std::fill(pushes.examples.begin(), pushes.examples.end(), 0);
      pushes.count = 0;
    }
    std::fill(s.last_push.begin(), s.last_push.end(), -1);
    FreezeZeros(&s);
  }
  return OkStatus();
}

Status KvShard::ArmSnapshot(int64_t step) {
  if (consistency_ == proto::ASP) {
    // ASP cuts come only between phases, with no push in flight: every slice
    // is captured as it is. Its version counts the pushes it applied, and a
    // worker lost in the middle of a push leaves the slices it reached one
    // push ahead of the others (its gradient applied there); the cut labels
    // them all with its step, as a resume from it sets them anyway.
    armed_step_ = step;
    captured_.clear();
    for (const Slice& s : state_) captured_.push_back(SliceSnapshot{s.range, step, s.params, SharedFloats(s.state)});
    captured_count_ = state_.size();
    return OkStatus();
  }
  if (MaxVersion() > step) {
    return FailedPreconditionError("a slice is already at step " + std::to_string(MaxVersion()) + ", past " +
                                   std::to_string(step));
  }
  armed_step_ = step;
  captured_.assign(state_.size(), std::nullopt);
  captured_count_ = 0;
  for (size_t i = 0; i < state_.size(); ++i) MaybeCapture(i);
  return OkStatus();
}

void KvShard::MaybeCapture(size_t index) {
  if (!armed_step_.has_value() || captured_[index].has_value()) return;
  const Slice& s = state_[index];
  if (s.version != *armed_step_) return;
  captured_[index] = SliceSnapshot{s.range, s.version, s.params, SharedFloats(s.state)};
  ++captured_count_;
}

bool KvShard::SnapshotReady() const { return armed_step_.has_value() && captured_count_ == state_.size(); }

std::vector<SliceSnapshot> KvShard::TakeSnapshot() {
  CHECK(SnapshotReady());
  std::vector<SliceSnapshot> out;
  out.reserve(captured_.size());
  for (auto& c : captured_) out.push_back(std::move(*c));
  captured_.clear();
  captured_count_ = 0;
  armed_step_.reset();
  return out;
}

int64_t KvShard::MaxVersion() const {
  int64_t highest = 0;
  for (const Slice& s : state_) highest = std::max(highest, s.version);
  return highest;
}

std::vector<float> KvShard::params() const {
  std::vector<float> all;
  all.reserve(num_keys_);
  for (const Slice& s : state_) all.insert(all.end(), s.params->begin(), s.params->end());
  return all;
}

}  // namespace tessera
