#include "models/cuda/cuda_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/random.h"
#include "models/cuda/cuda_context.h"
#include "models/cuda/cuda_layers.h"

namespace tessera::cuda {

struct CudaModel::Buffers {
  DeviceBuffer params, grads, x, labels, logp, losses, correct;
  // acts[i]: output of layer i; grad_acts[i]: dL/d(output of layer i).
  std::vector<DeviceBuffer> acts, grad_acts;
  PinnedBuffer host_x, host_labels, host_grads, host_losses, host_correct, host_logits;
  // grads_done[i]: layer i's gradients are in host_grads.
  std::vector<cudaEvent_t> grads_done;
};

CudaModel::CudaModel(std::shared_ptr<CudaContext> context, std::vector<Layer*> layers,
                     std::vector<uint64_t> layer_offsets, uint64_t num_keys, int64_t input_features, int num_classes,
                     proto::Loss loss, float* host_params)
    : context_(std::move(context)),
      layers_(std::move(layers)),
      num_keys_(num_keys),
      input_features_(input_features),
      num_classes_(num_classes),
      loss_(loss),
      num_outputs_(TaskOutputs(TaskOfLoss(loss), num_classes)),
      host_params_(host_params),
      b_(std::make_unique<Buffers>()) {
  const size_t bytes = std::max<uint64_t>(num_keys_, 1) * sizeof(float);
  b_->params.Reserve(bytes);
  b_->grads.Reserve(bytes);
  b_->host_grads.Reserve(bytes);
  TESSERA_CUDA_CHECK(cudaMemset(b_->params.get(), 0, bytes));
  TESSERA_CUDA_CHECK(cudaMemset(b_->grads.get(), 0, bytes));
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Bind(b_->params.f() + layer_offsets[i], b_->grads.f() + layer_offsets[i]);
    layer_keys_.push_back({layer_offsets[i], i + 1 < layers_.size() ? layer_offsets[i + 1] : num_keys_});
    cudaEvent_t event;
    TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    b_->grads_done.push_back(event);
  }
  b_->acts.resize(layers_.size());
  b_->grad_acts.resize(layers_.size());
  // Uploads straight from the model's parameter buffer; a plain (slower) copy where pinning is refused.
  if (num_keys_ > 0) {
    params_registered_ =
        cudaHostRegister(host_params_, num_keys_ * sizeof(float), cudaHostRegisterDefault) == cudaSuccess;
    if (!params_registered_) cudaGetLastError();
  }
}

CudaModel::~CudaModel() {
  context_->Synchronize();
  for (cudaEvent_t event : b_->grads_done) cudaEventDestroy(event);
  if (params_registered_) cudaHostUnregister(host_params_);
}

void CudaModel::EnsureBatch(int64_t batch) {
  if (batch <= batch_capacity_) return;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const size_t bytes = batch * layers_[i]->out_features() * sizeof(float);
    b_->acts[i].Reserve(bytes);
    b_->grad_acts[i].Reserve(bytes);
  }
  b_->x.Reserve(batch * input_features_ * sizeof(float));
  b_->host_x.Reserve(batch * input_features_ * sizeof(float));
  b_->labels.Reserve(batch * sizeof(float));
  b_->host_labels.Reserve(batch * sizeof(float));
  b_->logp.Reserve(batch * num_outputs_ * sizeof(float));
  b_->losses.Reserve(batch * sizeof(float));
  b_->host_losses.Reserve(batch * sizeof(float));
  b_->correct.Reserve(batch * sizeof(int32_t));
  b_->host_correct.Reserve(batch * sizeof(int32_t));
  b_->host_logits.Reserve(batch * num_outputs_ * sizeof(float));
  batch_capacity_ = batch;
}

void CudaModel::UploadParams(KeyRange keys) {
  if (keys.empty() || keys.end > num_keys_) return;
  // Slices are small (and a server's are not adjacent): a copy each would
  // cost more in launches than it saves. A layer goes up in one copy once
  // all of its keys are in.
  arrived_.resize(layer_keys_.size(), 0);
  for (size_t i = 0; i < layer_keys_.size(); ++i) {
    const KeyRange layer = layer_keys_[i];
    const uint64_t begin = std::max(layer.begin, keys.begin), end = std::min(layer.end, keys.end);
    if (begin >= end) continue;
    const bool was_complete = arrived_[i] >= layer.size();
    arrived_[i] += end - begin;
    if (was_complete || arrived_[i] < layer.size()) continue;
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->params.f() + layer.begin, host_params_ + layer.begin,
                                       layer.size() * sizeof(float), cudaMemcpyHostToDevice, context_->stream()));
    keys_uploaded_early_ += layer.size();
  }
}

void CudaModel::ForgetEarlyUploads() {
  keys_uploaded_early_ = 0;
  std::fill(arrived_.begin(), arrived_.end(), 0);
}

void CudaModel::Upload(const float* x, const float* labels, int64_t batch, bool training) {
  const cudaStream_t stream = context_->stream();
  // Training, with every key uploaded as its PARAMS came (UploadParams): nothing left to send.
  const bool came_early = training && keys_uploaded_early_ >= num_keys_;
  ForgetEarlyUploads();
  if (!came_early && (!params_fixed_ || !params_uploaded_)) {
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(b_->params.get(), host_params_, num_keys_ * sizeof(float), cudaMemcpyHostToDevice, stream));
    params_uploaded_ = true;
    ++parameter_uploads_;
  }
  const size_t x_bytes = batch * input_features_ * sizeof(float);
  std::memcpy(b_->host_x.as<float>(), x, x_bytes);
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->x.get(), b_->host_x.as<float>(), x_bytes, cudaMemcpyHostToDevice, stream));
  if (labels == nullptr) return;  // inference
  std::memcpy(b_->host_labels.as<float>(), labels, batch * sizeof(float));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->labels.get(), b_->host_labels.as<float>(), batch * sizeof(float),
                                     cudaMemcpyHostToDevice, stream));
}

void CudaModel::Forward(int64_t batch, const Pass& pass, std::vector<LayerProfile>* profile) {
  const float* in = b_->x.f();
  for (size_t i = 0; i < layers_.size(); ++i) {
    // The same per-layer seeds as the CPU model (Model::Forward).
    const Pass layer_pass{pass.training, MixSeed(pass.seed, 0x1a7e5ULL, i)};
    if (profile != nullptr) context_->Synchronize();
    const auto start = std::chrono::steady_clock::now();
    layers_[i]->Forward(in, batch, b_->acts[i].f(), layer_pass);
    if (profile != nullptr) {
      context_->Synchronize();
      (*profile)[i].forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    in = b_->acts[i].f();
  }
}

BatchStats CudaModel::Finish(int64_t batch) {
  const cudaStream_t stream = context_->stream();
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->host_losses.as<float>(), b_->losses.get(), batch * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->host_correct.as<int32_t>(), b_->correct.get(), batch * sizeof(int32_t),
                                     cudaMemcpyDeviceToHost, stream));
  context_->Synchronize();
  BatchStats stats;
  stats.examples = batch;
  const float* losses = b_->host_losses.as<float>();
  const int32_t* correct = b_->host_correct.as<int32_t>();
  for (int64_t i = 0; i < batch; ++i) {
    stats.loss_sum += static_cast<double>(losses[i]);
    stats.correct += correct[i];
  }
  return stats;
}

BatchStats CudaModel::TrainBatch(const float* x, const float* labels, int64_t batch, uint64_t seed,
                                 float* host_grads, const Model::GradsReady& on_grads_ready,
                                 std::vector<LayerProfile>* profile) {
  EnsureBatch(batch);
  Upload(x, labels, batch, /*training=*/true);
  Forward(batch, Pass{true, seed}, profile);
  const size_t last = layers_.size() - 1;
  const cudaStream_t stream = context_->stream();
  ComputeLoss(*context_, loss_, b_->acts[last].f(), b_->labels.f(), batch, num_outputs_, b_->logp.f(), b_->losses.f(),
              b_->correct.as<int32_t>(), b_->grad_acts[last].f());
  // Enqueue the whole backward pass, each layer followed by the copy of its gradients ...
  for (size_t i = layers_.size(); i-- > 0;) {
    const float* in = i == 0 ? b_->x.f() : b_->acts[i - 1].f();
    float* dx = i == 0 ? nullptr : b_->grad_acts[i - 1].f();
    if (profile != nullptr) context_->Synchronize();
    const auto start = std::chrono::steady_clock::now();
    layers_[i]->Backward(in, b_->acts[i].f(), b_->grad_acts[i].f(), batch, dx);
    if (profile != nullptr) {
      context_->Synchronize();
      (*profile)[i].backward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    const KeyRange keys = layer_keys_[i];
    if (!keys.empty()) {
      TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->host_grads.as<float>() + keys.begin, b_->grads.f() + keys.begin,
                                         keys.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
      TESSERA_CUDA_CHECK(cudaEventRecord(b_->grads_done[i], stream));
    }
  }
  // ... then hand each layer's gradients over as they arrive, while the device works on the layers before it.
  for (size_t i = layers_.size(); i-- > 0;) {
    const KeyRange keys = layer_keys_[i];
    if (keys.empty()) continue;
    TESSERA_CUDA_CHECK(cudaEventSynchronize(b_->grads_done[i]));
    std::memcpy(host_grads + keys.begin, b_->host_grads.as<float>() + keys.begin, keys.size() * sizeof(float));
    if (on_grads_ready) on_grads_ready(keys);
  }
  return Finish(batch);
}

BatchStats CudaModel::EvaluateBatch(const float* x, const float* labels, int64_t batch) {
  EnsureBatch(batch);
  Upload(x, labels, batch, /*training=*/false);
  Forward(batch, Pass{false, 0}, nullptr);
  const size_t last = layers_.size() - 1;
  ComputeLoss(*context_, loss_, b_->acts[last].f(), b_->labels.f(), batch, num_outputs_, b_->logp.f(), b_->losses.f(),
              b_->correct.as<int32_t>(), nullptr);
  return Finish(batch);
}

const float* CudaModel::Infer(const float* x, int64_t batch) {
  EnsureBatch(batch);
  Upload(x, nullptr, batch, /*training=*/false);
  Forward(batch, Pass{false, 0}, nullptr);
  return CopyLogitsToHost(batch);
}

const float* CudaModel::CopyLogitsToHost(int64_t batch) {
  const cudaStream_t stream = context_->stream();
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(b_->host_logits.as<float>(), b_->acts[layers_.size() - 1].get(),
                                     batch * num_outputs_ * sizeof(float), cudaMemcpyDeviceToHost, stream));
  context_->Synchronize();
  return b_->host_logits.as<float>();
}

}  // namespace tessera::cuda
