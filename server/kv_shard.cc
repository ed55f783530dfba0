#include "server/kv_shard.h"

#include <algorithm>
#include <cstring>

#include "models/model.h"

namespace tessera {

KvShard::KvShard(std::vector<KeyRange> ranges, const std::vector<TensorInfo>& tensors, uint64_t seed,
                 const Optimizer* optimizer, proto::Consistency consistency, int workers)
    : ranges_(std::move(ranges)), optimizer_(optimizer), consistency_(consistency), workers_(workers) {
  uint64_t total = 0;
  for (const TensorInfo& t : tensors) total = std::max(total, t.offset + t.size);
  // Initialize the whole model, keep our slices: values must not depend on
  // how the keys are split.
  std::vector<float> full(total);
  InitializeParameters(tensors, seed, full.data());
  params_ = std::make_shared<std::vector<float>>();
  for (const KeyRange& r : ranges_) {
    local_offsets_.push_back(num_keys_);
    num_keys_ += r.size();
    params_->insert(params_->end(), full.begin() + r.begin, full.begin() + r.end);
  }
  state_.assign(num_keys_ * optimizer_->state_per_param(), 0.0f);
  pending_.resize(workers_);
  pending_examples_.assign(workers_, 0);
}

StatusOr<bool> KvShard::AddPush(int rank, int64_t step, int64_t examples, const std::vector<KeyRange>& ranges,
                                std::vector<zmq::message_t>&& frames) {
  if (rank < 0 || rank >= workers_) {
    return InvalidArgumentError("push from worker rank " + std::to_string(rank) + ", expected 0.." +
                                std::to_string(workers_ - 1));
  }
  if (ranges != ranges_) return InvalidArgumentError("push names key ranges this server does not own exactly");
  if (examples < 0) return InvalidArgumentError("push of " + std::to_string(examples) + " examples");
  if (frames.size() != ranges_.size()) return InvalidArgumentError("push frame count does not match its ranges");
  for (size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].size() != ranges_[i].size() * sizeof(float)) {
      return InvalidArgumentError("push frame " + std::to_string(i) + " holds " + std::to_string(frames[i].size()) +
                                  " bytes, expected " + std::to_string(ranges_[i].size() * sizeof(float)));
    }
  }

  if (consistency_ == proto::ASP) {
    if (examples > 0) {
      std::vector<const float*> gradient = AlignedFrames(frames, 0);
      ApplySummed({&gradient, 1}, examples);
    }
    ++version_;
    return true;
  }

  if (step != version_) {
    return InvalidArgumentError("push for step " + std::to_string(step) + " from worker " + std::to_string(rank) +
                                ", the server is at step " + std::to_string(version_));
  }
  if (pending_[rank].has_value()) {
    return InvalidArgumentError("second push from worker " + std::to_string(rank) + " for step " +
                                std::to_string(step));
  }
  pending_[rank] = std::move(frames);
  pending_examples_[rank] = examples;
  if (++pending_count_ < workers_) return false;
  ApplyBsp();
  return true;
}

std::vector<const float*> KvShard::AlignedFrames(const std::vector<zmq::message_t>& frames, int slot) {
  if (scratch_.size() < (static_cast<size_t>(slot) + 1) * frames.size()) {
    scratch_.resize((static_cast<size_t>(slot) + 1) * frames.size());
  }
  std::vector<const float*> out(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) out[i] = FrameFloats(frames[i], &scratch_[slot * frames.size() + i]);
  return out;
}

void KvShard::ApplyBsp() {
  int64_t examples = 0;
  std::vector<std::vector<const float*>> contributions;
  // Rank order, so the float sum is the same in every run.
  for (int r = 0; r < workers_; ++r) {
    if (pending_examples_[r] == 0) continue;
    examples += pending_examples_[r];
    contributions.push_back(AlignedFrames(*pending_[r], r));
  }
  if (examples > 0) ApplySummed(contributions, examples);
  for (int r = 0; r < workers_; ++r) {
    pending_[r].reset();
    pending_examples_[r] = 0;
  }
  pending_count_ = 0;
  ++version_;
}

void KvShard::ApplySummed(std::span<const std::vector<const float*>> contributions, int64_t examples) {
  // Copy on write: PARAMS replies still being sent hold the old buffer.
  if (params_.use_count() > 1) params_ = std::make_shared<std::vector<float>>(*params_);
  const float scale = 1.0f / static_cast<float>(examples);
  const int per = optimizer_->state_per_param();
  // One pass over memory: sum, scale and step a chunk at a time, the chunk's
  // mean gradient staying in L1 (the passes are memory-bound otherwise).
  float mean[kApplyChunk];
  for (size_t i = 0; i < ranges_.size(); ++i) {
    const uint64_t off = local_offsets_[i];
    const uint64_t n = ranges_[i].size();
    for (uint64_t k0 = 0; k0 < n; k0 += kApplyChunk) {
      const uint64_t m = std::min<uint64_t>(kApplyChunk, n - k0);
      const float* first = contributions[0][i] + k0;
      if (contributions.size() == 1) {
        for (uint64_t k = 0; k < m; ++k) mean[k] = first[k] * scale;
      } else {
        std::memcpy(mean, first, m * sizeof(float));
        for (size_t c = 1; c < contributions.size(); ++c) {
          const float* g = contributions[c][i] + k0;
          for (uint64_t k = 0; k < m; ++k) mean[k] += g[k];
        }
        for (uint64_t k = 0; k < m; ++k) mean[k] *= scale;
      }
      // State is laid out chunk by chunk: state_per_param() blocks of m floats each.
      float* state = per > 0 ? state_.data() + (off + k0) * per : nullptr;
      optimizer_->Apply(version_ + 1, params_->data() + off + k0, mean, state, m);
    }
  }
}

std::vector<OutFrame> KvShard::ParamFrames() const {
  std::vector<OutFrame> frames;
  frames.reserve(ranges_.size());
  for (size_t i = 0; i < ranges_.size(); ++i) {
    frames.push_back({params_->data() + local_offsets_[i], ranges_[i].size() * sizeof(float), params_});
  }
  return frames;
}

}  // namespace tessera
