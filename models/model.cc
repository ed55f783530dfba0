#include "models/model.h"

#include <bit>
#include <cstring>

#include "core/random.h"
#include "core/sha256.h"
#include "models/softmax_cross_entropy.h"

namespace tessera {

StatusOr<std::unique_ptr<Model>> Model::Create(const proto::ModelSpec& spec, int64_t input_features,
                                               int num_classes) {
  if (spec.layer_size() == 0) return InvalidArgumentError("model needs at least one layer");
  std::unique_ptr<Model> model(new Model());
  model->input_features_ = input_features;
  model->num_classes_ = num_classes;
  int64_t features = input_features;
  uint64_t offset = 0;
  for (int i = 0; i < spec.layer_size(); ++i) {
    auto layer = CreateLayer(spec.layer(i), features);
    if (!layer.ok()) return layer.status().WithContext("model.layer[" + std::to_string(i) + "]");
    model->layer_offsets_.push_back(offset);
    for (const ParamShape& p : (*layer)->param_shapes()) {
      TensorInfo t;
      t.name = "layer" + std::to_string(i) + "." + (*layer)->type() + "." + p.name;
      t.shape = p.shape;
      t.size = 1;
      for (int64_t d : p.shape) t.size *= static_cast<uint64_t>(d);
      t.offset = offset;
      t.init_bound = p.init_bound;
      offset += t.size;
      model->tensors_.push_back(t);
    }
    features = (*layer)->out_features();
    model->layers_.push_back(std::move(layer).value());
  }
  if (features != num_classes) {
    return InvalidArgumentError("the last layer gives " + std::to_string(features) + " outputs, expected " +
                                std::to_string(num_classes) + " (one per class)");
  }
  model->num_keys_ = offset;
  model->params_.assign(offset, 0.0f);
  model->grads_ = std::make_shared<std::vector<float>>(offset, 0.0f);
  model->BindLayers();
  return model;
}

void Model::BindLayers() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Bind(params_.data() + layer_offsets_[i], grads_->data() + layer_offsets_[i]);
  }
}

void Model::EnsureExclusiveGrads() {
  if (grads_.use_count() > 1) {
    grads_ = std::make_shared<std::vector<float>>(num_keys_, 0.0f);
    BindLayers();
  }
}

void Model::EnsureActivations(int64_t batch) {
  if (batch <= activation_batch_) return;
  acts_.resize(layers_.size());
  grad_acts_.resize(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    acts_[i].resize(batch * layers_[i]->out_features());
    grad_acts_[i].resize(batch * layers_[i]->out_features());
  }
  activation_batch_ = batch;
}

const float* Model::Forward(const float* x, int64_t batch) {
  EnsureActivations(batch);
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Forward(in, batch, acts_[i].data());
    in = acts_[i].data();
  }
  return in;
}

BatchStats Model::TrainBatch(const float* x, const uint8_t* labels, int64_t batch) {
  EnsureExclusiveGrads();
  BatchStats stats;
  stats.examples = batch;
  if (batch == 0) {
    std::memset(grads_->data(), 0, num_keys_ * sizeof(float));
    return stats;
  }
  const float* logits = Forward(x, batch);
  const size_t last = layers_.size() - 1;
  LossResult loss = SoftmaxCrossEntropy(logits, labels, batch, num_classes_, grad_acts_[last].data());
  stats.loss_sum = loss.loss_sum;
  stats.correct = loss.correct;
  for (size_t i = layers_.size(); i-- > 0;) {
    const float* in = i == 0 ? x : acts_[i - 1].data();
    float* dx = i == 0 ? nullptr : grad_acts_[i - 1].data();
    layers_[i]->Backward(in, acts_[i].data(), grad_acts_[i].data(), batch, dx);
  }
  return stats;
}

BatchStats Model::EvaluateBatch(const float* x, const uint8_t* labels, int64_t batch) {
  BatchStats stats;
  stats.examples = batch;
  if (batch == 0) return stats;
  const float* logits = Forward(x, batch);
  LossResult loss = SoftmaxCrossEntropy(logits, labels, batch, num_classes_, nullptr);
  stats.loss_sum = loss.loss_sum;
  stats.correct = loss.correct;
  return stats;
}

std::string Model::ParamsSha256() const { return tessera::ParamsSha256(params_.data(), num_keys_); }

void InitializeParameters(const std::vector<TensorInfo>& tensors, uint64_t seed, float* params) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    SplitMix64 rng(MixSeed(seed, 0x1a17ULL, t));
    const float bound = tensors[t].init_bound;
    float* out = params + tensors[t].offset;
    for (uint64_t i = 0; i < tensors[t].size; ++i) out[i] = (2.0f * rng.NextFloat() - 1.0f) * bound;
  }
}

std::string ParamsSha256(const float* params, uint64_t num_keys) {
  static_assert(std::endian::native == std::endian::little, "params_sha256 is defined over little-endian bytes");
  return Sha256Hex(params, num_keys * sizeof(float));
}

}  // namespace tessera
