#include "models/model.h"

#include <glog/logging.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <span>

#include "core/feature_cross.h"
#include "core/random.h"
#include "core/sha256.h"
#include "core/task_metrics.h"
#include "models/column_embedding.h"
#include "models/dot_interaction.h"
#include "models/embedding.h"
#include "models/inference_conv2d.h"
#include "models/int8_layers.h"
#include "models/softmax_cross_entropy.h"
#include "models/sparse_embedding.h"
#include "models/sparse_linear.h"

#ifdef TESSERA_WITH_CUDA
#include "models/cuda/cuda_column_embedding.h"
#include "models/cuda/cuda_context.h"
#include "models/cuda/cuda_layers.h"
#include "models/cuda/cuda_model.h"
#include "models/cuda/cuda_sparse_embedding.h"
#endif

namespace tessera {

void Model::CudaModelDeleter::operator()(cuda::CudaModel* cuda) const {
#ifdef TESSERA_WITH_CUDA
  delete cuda;
#else
  (void)cuda;  // never created without CUDA
#endif
}

Model::~Model() = default;

// Layers CUDA has no twin of (int8: inference only, on the CPU): InvalidArgument naming the first.
Status CheckDeviceLayers(const proto::ModelSpec& spec, Device device) {
  if (device != Device::kCuda) return OkStatus();
  for (int i = 0; i < spec.layer_size(); ++i) {
    const proto::LayerSpec& l = spec.layer(i);
    if ((l.has_linear() && l.linear().has_int8()) || (l.has_conv2d() && l.conv2d().has_int8())) {
      return InvalidArgumentError("model.layer[" + std::to_string(i) + "]: int8 layers run on the CPU only");
    }
    const bool wide = l.has_sparse_embedding() && !l.sparse_embedding().wide_table().empty();
    if (l.has_sparse_linear() || wide || l.has_dot_interaction()) {
      return InvalidArgumentError("model.layer[" + std::to_string(i) + "]: " +
                                  (l.has_sparse_linear() ? "sparse_linear"
                                   : wide                ? "a sparse_embedding's wide part (wide_table)"
                                                         : "dot_interaction") +
                                  " runs on the CPU only for now (use --device cpu)");
    }
  }
  return OkStatus();
}

namespace {

// Where an embedding, column_embedding, sparse_linear or sparse_embedding must be: first.
Status CheckIdLayerFirst(const proto::LayerSpec& spec, int i) {
  if (i == 0 || (!spec.has_embedding() && !spec.has_column_embedding() && !spec.has_sparse_linear() &&
                 !spec.has_sparse_embedding())) {
    return OkStatus();
  }
  return InvalidArgumentError("model.layer[" + std::to_string(i) + "] is " +
                              (spec.has_embedding()          ? "an embedding"
                               : spec.has_column_embedding() ? "a column_embedding"
                               : spec.has_sparse_linear()    ? "a sparse_linear"
                                                             : "a sparse_embedding") +
                              ": it must be the first layer (its inputs are the data's values, as ids)");
}

// A libsvm data set's examples are pairs that only a sparse_linear first layer reads.
Status CheckSparseInput(const proto::ModelSpec& spec, int64_t sparse_features) {
  if (sparse_features <= 0 || spec.layer(0).has_sparse_linear()) return OkStatus();
  return InvalidArgumentError("libsvm data (data.format LIBSVM) needs a sparse_linear first layer: its examples "
                              "are (feature, value) pairs, not a dense input");
}

}  // namespace

StatusOr<std::unique_ptr<Model>> Model::Create(const proto::ModelSpec& spec, const Shape& input_shape,
                                               int num_classes, Device device,
                                               const std::vector<int64_t>& categorical_rows, int64_t sparse_features) {
  if (spec.layer_size() == 0) return InvalidArgumentError("model needs at least one layer");
  RETURN_IF_ERROR(CheckDeviceLayers(spec, device));
  RETURN_IF_ERROR(CheckSparseInput(spec, sparse_features));
  std::unique_ptr<Model> model(new Model());
  model->spec_ = spec;
  model->input_shape_ = input_shape;
  model->num_classes_ = num_classes;
  model->loss_ = spec.loss() == proto::AUTO ? proto::SOFTMAX_CROSS_ENTROPY : spec.loss();
  model->num_outputs_ = TaskOutputs(TaskOfLoss(model->loss_), num_classes);
  model->device_ = device;
#ifdef TESSERA_WITH_CUDA
  std::shared_ptr<cuda::CudaContext> context;
  if (device == Device::kCuda) {
    ASSIGN_OR_RETURN(context, cuda::CudaContext::Create());
  }
  auto create_layer = [&](const proto::LayerSpec& layer_spec, const Shape& in) -> StatusOr<std::unique_ptr<Layer>> {
    if (layer_spec.has_column_embedding()) {
      // It needs the table's categorical columns, which CreateLayer does not know.
      ASSIGN_OR_RETURN(std::unique_ptr<Layer> cpu,
                       CreateColumnEmbedding(layer_spec.column_embedding(), in, categorical_rows));
      if (device != Device::kCuda) return cpu;
      return cuda::CreateCudaColumnEmbedding(static_cast<const ColumnEmbedding&>(*cpu), context);
    }
    return device == Device::kCuda ? cuda::CreateCudaLayer(layer_spec, in, context) : CreateLayer(layer_spec, in);
  };
  auto create_sparse_embedding = [&](const proto::SparseEmbeddingSpec& layer_spec,
                                     const Shape& in) -> StatusOr<std::unique_ptr<Layer>> {
    ASSIGN_OR_RETURN(std::unique_ptr<Layer> cpu, CreateSparseEmbedding(spec, layer_spec, in));
    if (device != Device::kCuda) return cpu;
    return cuda::CreateCudaSparseEmbedding(static_cast<const SparseEmbedding&>(*cpu), context);
  };
#else
  if (device == Device::kCuda) {
    std::string why;
    CudaAvailable(&why);
    return FailedPreconditionError(why);
  }
  auto create_layer = [&](const proto::LayerSpec& layer_spec, const Shape& in) {
    // A column_embedding needs the table's categorical columns, which CreateLayer does not know.
    return layer_spec.has_column_embedding()
               ? CreateColumnEmbedding(layer_spec.column_embedding(), in, categorical_rows)
               : CreateLayer(layer_spec, in);
  };
  auto create_sparse_embedding = [&](const proto::SparseEmbeddingSpec& layer_spec, const Shape& in) {
    return CreateSparseEmbedding(spec, layer_spec, in);
  };
#endif
  Shape shape = input_shape;
  uint64_t offset = 0;
  for (int i = 0; i < spec.layer_size(); ++i) {
    RETURN_IF_ERROR(CheckIdLayerFirst(spec.layer(i), i));
    auto layer = spec.layer(i).has_sparse_linear()
                     ? CreateSparseLinear(spec.layer(i).sparse_linear(), shape, sparse_features)
                 : spec.layer(i).has_sparse_embedding()
                     ? create_sparse_embedding(spec.layer(i).sparse_embedding(), shape)
                 : spec.layer(i).has_dot_interaction() ? CreateDotInteraction(spec, i, shape)
                                                       : create_layer(spec.layer(i), shape);
    if (!layer.ok()) return layer.status().WithContext("model.layer[" + std::to_string(i) + "]");
    model->layer_offsets_.push_back(offset);
    const size_t first_tensor = model->tensors_.size();
    for (const ParamShape& p : (*layer)->param_shapes()) {
      TensorInfo t;
      t.name = "layer" + std::to_string(i) + "." + (*layer)->type() + "." + p.name;
      t.shape = p.shape;
      t.size = 1;
      for (int64_t d : p.shape) t.size *= static_cast<uint64_t>(d);
      t.offset = offset;
      t.init_bound = p.init_bound;
      t.init_value = p.init_value;
      t.trainable = p.trainable;
      offset += t.size;
      model->tensors_.push_back(t);
    }
    bool sparse = false;
    if (spec.layer(i).has_embedding()) {
      const proto::EmbeddingSpec& e = spec.layer(i).embedding();
      model->ids_ = IdLayout::Shared(NumElements(shape), e.num_embeddings());
      model->id_row_size_ = e.embedding_dim();
      sparse = e.sparse_gradients();
    } else if (spec.layer(i).has_column_embedding()) {
      // The layer's own layout (on CUDA the layer is its twin).
      model->ids_ = IdLayout::Columns(NumElements(shape) - static_cast<int64_t>(categorical_rows.size()),
                                      categorical_rows);
      model->id_row_size_ = spec.layer(i).column_embedding().embedding_dim();
      sparse = spec.layer(i).column_embedding().sparse_gradients();
    } else if (spec.layer(i).has_sparse_linear()) {
      model->ids_ = static_cast<const SparseLinear&>(**layer).layout();
      model->id_row_size_ = spec.layer(i).sparse_linear().out_features();
      sparse = spec.layer(i).sparse_linear().sparse_gradients();
    } else if (spec.layer(i).has_sparse_embedding()) {
      // On CUDA its twin, a subclass: the rows are bound on the host either way.
      model->sparse_embedding_ = static_cast<SparseEmbedding*>(layer->get());
      RETURN_IF_ERROR(model->CreateWidePart(spec.layer(i).sparse_embedding()));
    }
    if (sparse) {  // the id layer's first tensor: its weight, one row per id
      const TensorInfo& weight = model->tensors_[first_tensor];
      model->sparse_tensors_.push_back({weight.offset, weight.offset + weight.size});
    }
    shape = (*layer)->out_shape();
    model->layers_.push_back(std::move(layer).value());
  }
  if (shape.size() != 1 || shape[0] != model->num_outputs_) {
    const std::string gives = shape.size() == 1 ? std::to_string(shape[0]) + " outputs" : "outputs of shape " + ShapeText(shape);
    const std::string expected = model->task() == Task::kMultiClass
                                     ? std::to_string(num_classes) + " (one per class)"
                                     : std::string("1 (") + TaskName(model->task()) + ": one " +
                                           (model->task() == Task::kBinary ? "logit" : "value") + " per example)";
    return InvalidArgumentError("the last layer gives " + gives + ", expected " + expected);
  }
  model->num_keys_ = offset;
  model->params_.assign(offset, 0.0f);
  model->grads_ = std::make_shared<std::vector<float>>(offset, 0.0f);
#ifdef TESSERA_WITH_CUDA
  if (device == Device::kCuda) {
    std::vector<Layer*> layers;
    for (auto& layer : model->layers_) layers.push_back(layer.get());
    model->cuda_.reset(new cuda::CudaModel(context, std::move(layers), model->layer_offsets_, offset,
                                           NumElements(input_shape), num_classes, model->loss_,
                                           model->params_.data()));
    return model;
  }
#endif
  model->FuseConvBlocks(/*float_too=*/false);  // int8 layers are inference-only anyway
  model->BindLayers();
  return model;
}

StatusOr<std::unique_ptr<Layer>> CreateModelLayer(const proto::LayerSpec& spec, const Shape& in_shape,
                                                  const std::vector<int64_t>& categorical_rows) {
  // A column_embedding needs the table's categorical columns, which CreateLayer does not know.
  return spec.has_column_embedding() ? CreateColumnEmbedding(spec.column_embedding(), in_shape, categorical_rows)
                                     : CreateLayer(spec, in_shape);
}

StatusOr<Shape> ModelOutputShape(const proto::ModelSpec& spec, const Shape& input_shape,
                                 const std::vector<int64_t>& categorical_rows, int64_t sparse_features) {
  if (spec.layer_size() == 0) return InvalidArgumentError("model needs at least one layer");
  Shape shape = input_shape;
  for (int i = 0; i < spec.layer_size(); ++i) {
    const proto::LayerSpec& l = spec.layer(i);
    auto layer = l.has_column_embedding()  ? CreateColumnEmbedding(l.column_embedding(), shape, categorical_rows)
                 : l.has_sparse_linear()    ? CreateSparseLinear(l.sparse_linear(), shape, sparse_features)
                 : l.has_sparse_embedding() ? CreateSparseEmbedding(spec, l.sparse_embedding(), shape)
                 : l.has_dot_interaction()  ? CreateDotInteraction(spec, i, shape)
                                            : CreateLayer(l, shape);
    if (!layer.ok()) return layer.status().WithContext("model.layer[" + std::to_string(i) + "]");
    shape = (*layer)->out_shape();
  }
  return shape;
}

void Model::FuseConvBlocks(bool float_too) {
  fused_away_.assign(layers_.size(), false);
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    const int index = static_cast<int>(i);
    const proto::LayerSpec& l = spec_.layer(index);
    if (!l.has_conv2d() || !(l.conv2d().has_int8() || float_too) || !spec_.layer(index + 1).has_relu()) continue;
    if (fused_away_[i]) continue;
    ConvFusion fusion;
    fusion.relu = true;
    fused_away_[i + 1] = true;
    if (i + 2 < layers_.size() && spec_.layer(index + 2).has_max_pool2d()) {
      const proto::MaxPool2dSpec& pool = spec_.layer(index + 2).max_pool2d();
      fusion.pool_kernel = pool.kernel_size();
      fusion.pool_stride = pool.stride() == 0 ? pool.kernel_size() : pool.stride();
      fused_away_[i + 2] = true;
    }
    const ConvGeometry g = ConvGeometryOf(l.conv2d(), layers_[i]->in_shape());
    if (l.conv2d().has_int8()) {
      layers_[i].reset(new Int8Conv2d(g, l.conv2d().int8(), fusion));
    } else {
      layers_[i].reset(new InferenceConv2d(g, fusion));
    }
  }
}

void Model::ParamsArrived(KeyRange keys) {
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr && !inference_only_) cuda_->UploadParams(keys);
#else
  (void)keys;
#endif
}

int64_t Model::parameter_uploads() const {
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr) return cuda_->parameter_uploads();
#endif
  return 0;
}

void Model::PrepareForInference() {
  if (inference_only_) return;
  inference_only_ = true;
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr) {
    cuda_->UploadParamsOnce();  // they no longer change: not every pass
    return;
  }
#endif
  FuseConvBlocks(/*float_too=*/true);
  BindLayers();
  activation_batch_ = 0;  // the fused layers' outputs have other sizes
}

void Model::BindLayers() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->Bind(params_.data() + layer_offsets_[i], grads_->data() + layer_offsets_[i]);
  }
}

void Model::EnsureExclusiveGrads() {
  if (grads_.use_count() > 1) {
    grads_ = std::make_shared<std::vector<float>>(num_keys_, 0.0f);
    if (device_ == Device::kCpu) BindLayers();  // CUDA layers keep their device buffers
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
  if (wide_ != nullptr) logits_.resize(batch);
  activation_batch_ = batch;
}

namespace {

using ProfileClock = std::chrono::steady_clock;

double SecondsSince(ProfileClock::time_point start) {
  return std::chrono::duration<double>(ProfileClock::now() - start).count();
}

}  // namespace

void Model::EnableProfiling() {
  profile_.clear();
  for (size_t i = 0; i < layers_.size(); ++i) profile_.push_back({"layer" + std::to_string(i) + "." + layers_[i]->type()});
}

const float* Model::Forward(const float* x, int64_t batch, const Pass& pass) {
  EnsureActivations(batch);
  const float* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!fused_away_.empty() && fused_away_[i]) continue;  // computed by the layer before
    const Pass layer_pass{pass.training, MixSeed(pass.seed, 0x1a7e5ULL, i)};
    const auto start = ProfileClock::now();
    layers_[i]->Forward(in, batch, acts_[i].data(), layer_pass);
    if (!profile_.empty()) profile_[i].forward_seconds += SecondsSince(start);
    in = acts_[i].data();
  }
  if (wide_ == nullptr) return in;
  // The deep output stays as the last layer gave it (its backward may read it).
  wide_->AddTo(in, batch, logits_.data());
  return logits_.data();
}

LossResult Model::ComputeLoss(const float* logits, const float* labels, int64_t batch, float* dlogits) const {
  switch (loss_) {
    case proto::SIGMOID_BINARY_CROSS_ENTROPY: return SigmoidBinaryCrossEntropy(logits, labels, batch, dlogits);
    case proto::MEAN_SQUARED_ERROR: return MeanSquaredError(logits, labels, batch, dlogits);
    default: return SoftmaxCrossEntropy(logits, labels, batch, num_classes_, dlogits);
  }
}

BatchStats Model::TrainBatch(const float* x, const float* labels, int64_t batch, uint64_t seed,
                             const GradsReady& on_grads_ready) {
  CHECK(!inference_only_ && std::find(fused_away_.begin(), fused_away_.end(), true) == fused_away_.end())
      << "TrainBatch on a model prepared for inference (or with int8 layers)";
  EnsureExclusiveGrads();
  FindTouchedRuns(x, batch);
  BatchStats stats;
  stats.examples = batch;
  if (batch == 0) {
#ifdef TESSERA_WITH_CUDA
    if (cuda_ != nullptr) cuda_->ForgetEarlyUploads();
#endif
    std::memset(grads_->data(), 0, num_keys_ * sizeof(float));
    if (on_grads_ready) on_grads_ready({0, num_keys_});
    return stats;
  }
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr) {
    return cuda_->TrainBatch(x, labels, batch, seed, grads_->data(), on_grads_ready,
                             profile_.empty() ? nullptr : &profile_);
  }
#endif
  const float* logits = Forward(x, batch, Pass{true, seed});
  const size_t last = layers_.size() - 1;
  LossResult loss = ComputeLoss(logits, labels, batch, grad_acts_[last].data());
  stats.loss_sum = loss.loss_sum;
  stats.correct = loss.correct;
  // logit = deep + wide: both halves get dL/dlogit.
  if (wide_ != nullptr) wide_->Backward(grad_acts_[last].data(), batch);
  for (size_t i = layers_.size(); i-- > 0;) {
    const float* in = i == 0 ? x : acts_[i - 1].data();
    float* dx = i == 0 ? nullptr : grad_acts_[i - 1].data();
    const auto start = ProfileClock::now();
    layers_[i]->Backward(in, acts_[i].data(), grad_acts_[i].data(), batch, dx);
    if (!profile_.empty()) profile_[i].backward_seconds += SecondsSince(start);
    const uint64_t end = i + 1 < layers_.size() ? layer_offsets_[i + 1] : num_keys_;
    if (on_grads_ready && end > layer_offsets_[i]) on_grads_ready({layer_offsets_[i], end});
  }
  return stats;
}

void Model::FindTouchedRuns(const float* x, int64_t batch) { touched_runs_ = SparseRowsOf(x, batch); }

std::vector<KeyRange> Model::SparseRowsOf(const float* x, int64_t batch) const {
  std::vector<KeyRange> runs;
  if (sparse_tensors_.empty() || batch <= 0) return runs;
  const uint64_t base = sparse_tensors_[0].begin;
  const uint64_t dim = static_cast<uint64_t>(id_row_size_);
  for (int64_t id : ids_->RowsOf(x, batch)) {
    const KeyRange row{base + static_cast<uint64_t>(id) * dim, base + static_cast<uint64_t>(id + 1) * dim};
    if (!runs.empty() && runs.back().end == row.begin) {
      runs.back().end = row.end;
    } else {
      runs.push_back(row);
    }
  }
  return runs;
}

int64_t Model::sparse_row_dim() const { return sparse_embedding_ != nullptr ? sparse_embedding_->dim() : 0; }

void Model::BindSparseRows(const float* rows, float* row_grads, int64_t n_rows) {
  CHECK(sparse_embedding_ != nullptr) << "BindSparseRows on a model without a sparse_embedding";
  sparse_embedding_->BindRows(rows, row_grads, n_rows);
}

Status Model::CreateWidePart(const proto::SparseEmbeddingSpec& spec) {
  if (spec.wide_table().empty()) return OkStatus();  // the saved spec writes "" for none
  if (num_outputs_ != 1) {
    return InvalidArgumentError("model.layer[0].sparse_embedding.wide_table: the wide part adds to one logit, but "
                                "the model gives " + std::to_string(num_outputs_) + " outputs (use a loss of one "
                                "output: SIGMOID_BINARY_CROSS_ENTROPY or MEAN_SQUARED_ERROR)");
  }
  const int64_t slots = WideSlots(spec);
  if (slots < 1) return InvalidArgumentError("model.layer[0].sparse_embedding.wide_table: no wide features");
  wide_ = std::make_unique<WidePart>(slots);
  return OkStatus();
}

int64_t Model::wide_slots() const { return wide_ != nullptr ? wide_->slots() : 0; }

void Model::BindWideRows(const float* rows, float* row_grads, int64_t n_rows, const float* slot_rows) {
  CHECK(wide_ != nullptr) << "BindWideRows on a model without a wide part";
  wide_->BindRows(rows, row_grads, n_rows, slot_rows);
}

Status Model::ValidateInputValues(const float* values, int64_t n) const {
  if (ids_.has_value()) return ids_->Validate(values, n);
  if (sparse_embedding_ != nullptr) return sparse_embedding_->ValidateInput(values, n);
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) return InvalidArgumentError("input value " + std::to_string(values[i]) + " is not finite");
  }
  return OkStatus();
}

BatchStats Model::EvaluateBatch(const float* x, const float* labels, int64_t batch, int32_t* predicted,
                                 float* outputs) {
  BatchStats stats;
  stats.examples = batch;
  if (batch == 0) return stats;
  const float* logits = nullptr;
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr) {
    stats = cuda_->EvaluateBatch(x, labels, batch);
    if (predicted != nullptr || outputs != nullptr) logits = cuda_->CopyLogitsToHost(batch);
  }
#endif
  if (logits == nullptr && cuda_ == nullptr) {
    logits = Forward(x, batch, Pass{false, 0});
    LossResult loss = ComputeLoss(logits, labels, batch, nullptr);
    stats.loss_sum = loss.loss_sum;
    stats.correct = loss.correct;
  }
  if (predicted != nullptr) {
    for (int64_t i = 0; i < batch; ++i) {
      predicted[i] = static_cast<int32_t>(
          PredictedClass(std::span<const float>(logits + i * num_outputs_, static_cast<size_t>(num_outputs_))));
    }
  }
  if (outputs != nullptr) std::memcpy(outputs, logits, batch * num_outputs_ * sizeof(float));
  return stats;
}

const float* Model::Infer(const float* x, int64_t batch) {
  if (batch <= 0) return nullptr;
#ifdef TESSERA_WITH_CUDA
  if (cuda_ != nullptr) return cuda_->Infer(x, batch);
#endif
  return Forward(x, batch, Pass{false, 0});
}

const float* Model::LayerOutput(int i) const {
  if (cuda_ != nullptr || activation_batch_ == 0 || i < 0 || i >= num_layers()) return nullptr;
  if (!fused_away_.empty() && (fused_away_[i] || (i + 1 < num_layers() && fused_away_[i + 1]))) return nullptr;
  return acts_[i].data();
}

std::string Model::ParamsSha256() const { return tessera::ParamsSha256(params_.data(), num_keys_); }

void InitializeParameters(const std::vector<TensorInfo>& tensors, uint64_t seed, float* params) {
  for (size_t t = 0; t < tensors.size(); ++t) {
    SplitMix64 rng(MixSeed(seed, 0x1a17ULL, t));
    const float bound = tensors[t].init_bound;
    const float value = tensors[t].init_value;
    float* out = params + tensors[t].offset;
    for (uint64_t i = 0; i < tensors[t].size; ++i) out[i] = value + (2.0f * rng.NextFloat() - 1.0f) * bound;
  }
}

Shape ExampleShape(const std::vector<uint32_t>& idx_dims) {
  if (idx_dims.size() == 3) return {1, idx_dims[1], idx_dims[2]};
  Shape shape;
  for (size_t i = 1; i < idx_dims.size(); ++i) shape.push_back(idx_dims[i]);
  return shape;
}

std::string ParamsSha256(const float* params, uint64_t num_keys) {
  static_assert(std::endian::native == std::endian::little, "params_sha256 is defined over little-endian bytes");
  return Sha256Hex(params, num_keys * sizeof(float));
}

}  // namespace tessera
