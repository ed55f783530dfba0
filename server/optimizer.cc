#include "server/optimizer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/spec.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace tessera {
namespace {

// SGD with momentum out of place, 4 floats at a time with streaming stores
// when w and v are 16-byte aligned: the new buffers are only written, so
// fetching their old contents into the cache (as ordinary stores do) would
// make the step move a third more memory. The gradient is computed on the fly
// as KvShard's mean is: (g[0] + g[1] + ...) * scale, in that order (one
// gradient with scale 1 is that gradient exactly). The same operations in the
// same order as the scalar loop (no fused multiply-add), so the same bits.
// Returns how many parameters it stepped (0 without SSE2 or alignment); the
// caller does the rest. Not fenced: see Optimizer::FenceStores.
size_t StreamMomentum(float lr, float momentum, float wd, const float* w_old, const float* v_old,
                            std::span<const float* const> g, float scale, float* w, float* v, size_t n) {
#if defined(__SSE2__)
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0 || reinterpret_cast<uintptr_t>(v) % 16 != 0) return 0;
  const __m128 lr4 = _mm_set1_ps(lr), momentum4 = _mm_set1_ps(momentum), wd4 = _mm_set1_ps(wd);
  const __m128 scale4 = _mm_set1_ps(scale);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128 mean = _mm_loadu_ps(g[0] + i);
    for (size_t c = 1; c < g.size(); ++c) mean = _mm_add_ps(mean, _mm_loadu_ps(g[c] + i));
    mean = _mm_mul_ps(mean, scale4);
    const __m128 wi = _mm_loadu_ps(w_old + i);
    const __m128 d = _mm_add_ps(mean, _mm_mul_ps(wd4, wi));
    const __m128 vi = _mm_add_ps(_mm_mul_ps(momentum4, _mm_loadu_ps(v_old + i)), d);
    _mm_stream_ps(v + i, vi);
    _mm_stream_ps(w + i, _mm_sub_ps(wi, _mm_mul_ps(lr4, vi)));
  }
  return i;
#else
  return 0;
#endif
}

// PyTorch's SGD: v = momentum * v + (g + wd * w); w -= lr * v.
class Sgd : public Optimizer {
 public:
  Sgd(const proto::OptimizerSpec& s, LrSchedule schedule)
      : Optimizer(std::move(schedule)), momentum_(s.momentum()), wd_(s.weight_decay()) {}
  int state_per_param() const override { return momentum_ > 0 ? 1 : 0; }
  void ApplyMeanFrom(int64_t step, const float* w_old, const float* state_old, std::span<const float* const> gradients,
                     float scale, float* w, float* state, size_t n) const override {
    if (momentum_ <= 0) {
      Optimizer::ApplyMeanFrom(step, w_old, state_old, gradients, scale, w, state, n);
      return;
    }
    const float lr = schedule_.At(step), momentum = momentum_, wd = wd_;  // locals: see ApplyFrom
    size_t i = StreamMomentum(lr, momentum, wd, w_old, state_old, gradients, scale, w, state, n);
    const float* __restrict wo = w_old;
    const float* __restrict vo = state_old;
    float* __restrict wn = w;
    float* __restrict vn = state;
    for (; i < n; ++i) {  // the rest, as ApplyFrom's scalar loop with KvShard's mean
      float mean = gradients[0][i];
      for (size_t c = 1; c < gradients.size(); ++c) mean += gradients[c][i];
      mean *= scale;
      const float d = mean + wd * wo[i];
      const float v = momentum * vo[i] + d;
      vn[i] = v;
      wn[i] = wo[i] - lr * v;
    }
  }
  void ApplyFrom(int64_t step, const float* w_old, const float* state_old, size_t /*old_stride*/, float* w,
                 const float* g, float* state, size_t n, size_t /*stride*/) const override {
    // Locals, not members: a store through a float* could alias *this, which
    // would keep the loops scalar.
    const float lr = schedule_.At(step), momentum = momentum_, wd = wd_;
    // The update of one parameter; both loops below use it, so in and out of
    // place give the same bits.
    auto one = [lr, momentum, wd](float gi, float wi, float vi, float* w_out, float* v_out) {
      const float d = gi + wd * wi;
      const float v = momentum * vi + d;
      *v_out = v;
      *w_out = wi - lr * v;
    };
    if (momentum > 0 && w_old == w && state_old == state) {
      for (size_t i = 0; i < n; ++i) one(g[i], w[i], state[i], &w[i], &state[i]);
    } else if (momentum > 0) {
      size_t i = StreamMomentum(lr, momentum, wd, w_old, state_old, {&g, 1}, 1.0f, w, state, n);
      // No overlap (ApplyFrom's contract): tell the compiler, or it checks at run time.
      const float* __restrict wo = w_old;
      const float* __restrict vo = state_old;
      float* __restrict wn = w;
      float* __restrict vn = state;
      for (; i < n; ++i) one(g[i], wo[i], vo[i], &wn[i], &vn[i]);
    } else if (w_old == w) {
      for (size_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    } else {
      const float* __restrict wo = w_old;
      float* __restrict wn = w;
      for (size_t i = 0; i < n; ++i) wn[i] = wo[i] - lr * (g[i] + wd * wo[i]);
    }
  }

 private:
  float momentum_, wd_;
};

// PyTorch's Adam (L2 weight decay, bias-corrected moments).
class Adam : public Optimizer {
 public:
  Adam(const proto::OptimizerSpec& s, LrSchedule schedule)
      : Optimizer(std::move(schedule)), b1_(s.beta1()), b2_(s.beta2()), eps_(s.epsilon()), wd_(s.weight_decay()) {}
  int state_per_param() const override { return 2; }
  void ApplyFrom(int64_t step, const float* w_old, const float* state_old, size_t old_stride, float* w,
                 const float* g, float* state, size_t n, size_t stride) const override {
    const double c1 = 1.0 - std::pow(static_cast<double>(b1_), static_cast<double>(step));
    const double c2 = 1.0 - std::pow(static_cast<double>(b2_), static_cast<double>(step));
    const float lr = schedule_.At(step);
    const float step_size = static_cast<float>(lr / c1);
    const float c2_sqrt = static_cast<float>(std::sqrt(c2));
    const float b1 = b1_, b2 = b2_, eps = eps_, wd = wd_;  // locals: as in Sgd
    auto one = [=](float gi, float wi, float mi, float vi, float* w_out, float* m_out, float* v_out) {
      const float d = gi + wd * wi;
      const float m = b1 * mi + (1.0f - b1) * d;
      const float v = b2 * vi + (1.0f - b2) * d * d;
      *m_out = m;
      *v_out = v;
      const float denom = std::sqrt(v) / c2_sqrt + eps;
      *w_out = wi - step_size * m / denom;
    };
    float* m = state;
    float* v = state + stride;
    if (w_old == w && state_old == state) {
      for (size_t i = 0; i < n; ++i) one(g[i], w[i], m[i], v[i], &w[i], &m[i], &v[i]);
    } else {
      const float* __restrict wo = w_old;  // no overlap, as in Sgd
      const float* __restrict mo = state_old;
      const float* __restrict vo = state_old + old_stride;
      float* __restrict wn = w;
      float* __restrict mn = m;
      float* __restrict vn = v;
      for (size_t i = 0; i < n; ++i) one(g[i], wo[i], mo[i], vo[i], &wn[i], &mn[i], &vn[i]);
    }
  }

 private:
  float b1_, b2_, eps_, wd_;
};

}  // namespace

void Optimizer::ApplyMeanFrom(int64_t step, const float* w_old, const float* state_old,
                              std::span<const float* const> gradients, float scale, float* w, float* state,
                              size_t n) const {
  // As KvShard::ApplySlice steps in place: the chunk's mean in L1, then the step.
  constexpr size_t kChunk = 2048;
  float mean[kChunk];
  for (size_t k0 = 0; k0 < n; k0 += kChunk) {
    const size_t m = std::min(kChunk, n - k0);
    const float* first = gradients[0] + k0;
    if (gradients.size() == 1) {
      for (size_t k = 0; k < m; ++k) mean[k] = first[k] * scale;
    } else {
      std::memcpy(mean, first, m * sizeof(float));
      for (size_t c = 1; c < gradients.size(); ++c) {
        const float* g = gradients[c] + k0;
        for (size_t k = 0; k < m; ++k) mean[k] += g[k];
      }
      for (size_t k = 0; k < m; ++k) mean[k] *= scale;
    }
    ApplyFrom(step, w_old + k0, state_old == nullptr ? nullptr : state_old + k0, n, w + k0, mean,
              state == nullptr ? nullptr : state + k0, m, n);
  }
}

void Optimizer::FenceStores() {
#if defined(__SSE2__)
  _mm_sfence();
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const proto::OptimizerSpec& spec, const ScheduleClock& clock) {
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(spec, clock));  // validates the spec
  switch (spec.type()) {
    case proto::OptimizerSpec::SGD:
      return std::unique_ptr<Optimizer>(new Sgd(spec, std::move(schedule)));
    case proto::OptimizerSpec::ADAM:
      return std::unique_ptr<Optimizer>(new Adam(spec, std::move(schedule)));
  }
  return InvalidArgumentError("unknown optimizer type " + std::to_string(spec.type()));
}

}  // namespace tessera
