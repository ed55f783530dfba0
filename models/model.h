// A model: the layer stack a ModelSpec describes, its parameters in one flat
// float32 buffer (the key space the servers shard), and forward/backward on
// batches, on the CPU or a CUDA GPU. The host API is the same on both: on
// CUDA each pass uploads params() and the batch and downloads the gradients
// into grads(). Not thread-safe.
#ifndef TESSERA_MODELS_MODEL_H_
#define TESSERA_MODELS_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"
#include "core/task.h"
#include "models/device.h"
#include "models/id_layout.h"
#include "models/layer.h"
#include "models/softmax_cross_entropy.h"
#include "models/wide_part.h"
#include "proto/job.pb.h"

namespace tessera {

namespace cuda {
class CudaModel;
}  // namespace cuda

class SparseEmbedding;

// Seconds spent in one layer since profiling was turned on.
struct LayerProfile {
  std::string layer;  // "layer3.conv2d"
  double forward_seconds = 0;
  double backward_seconds = 0;
};

struct BatchStats {
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t examples = 0;
};

class Model {
 public:
  // InvalidArgument naming the layer when shapes do not fit, or when the
  // last layer's outputs differ from what spec.loss needs (core/task.h:
  // num_classes for softmax cross-entropy and AUTO, 1 for binary
  // cross-entropy and squared error; num_classes is unused then). input_shape is one
  // example's shape: [1, 28, 28] for Fashion-MNIST (ExampleShape gives it).
  // On Device::kCuda: FailedPrecondition in a build without CUDA, Unavailable
  // when no GPU can be used (and InvalidArgument for int8 layers, which run
  // on the CPU only). categorical_rows: for a table with categorical
  // columns, each column's number of ids (its ids are an example's last
  // values, one per column, after the numeric features; TableData gives
  // them), which a column_embedding first layer needs; empty for other data.
  // sparse_features: for libsvm data, its number of features (LibsvmData),
  // which a sparse_linear first layer needs (and such data needs one:
  // InvalidArgument otherwise); 0 for other data. On CUDA, sparse_linear,
  // dot_interaction and a sparse_embedding's wide part are refused too (CPU
  // only for now). A sparse_embedding
  // must be the first layer and name a model.sparse_table, whose dim it
  // takes (InvalidArgument otherwise).
  static StatusOr<std::unique_ptr<Model>> Create(const proto::ModelSpec& spec, const Shape& input_shape,
                                                  int num_classes, Device device = Device::kCpu,
                                                  const std::vector<int64_t>& categorical_rows = {},
                                                  int64_t sparse_features = 0);
  ~Model();

  Device device() const { return device_; }

  // Parameter tensors in key order ("layer0.linear.weight", ...).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  uint64_t num_keys() const { return num_keys_; }
  int64_t input_features() const { return NumElements(input_shape_); }
  const Shape& input_shape() const { return input_shape_; }
  int num_classes() const { return num_classes_; }
  // The loss (never AUTO: that is softmax cross-entropy here) and its task.
  proto::Loss loss() const { return loss_; }
  Task task() const { return TaskOfLoss(loss_); }
  // The last layer's outputs per example: num_classes, or 1.
  int64_t num_outputs() const { return num_outputs_; }

  // Checks n input values (e.g. every value the data can produce): an
  // embedding first layer takes only ids in [0, num_embeddings), a
  // column_embedding only ids of each column's table in the ids' places, a
  // sparse_embedding only -1 or rows of those BindSparseRows bound in its
  // id slots; every value must be finite. InvalidArgument naming the first
  // bad one.
  Status ValidateInputValues(const float* values, int64_t n) const;

  // A sparse_embedding first layer's table (issue 16): its rows are not
  // among params(). sparse_row_dim() is the table's dim, 0 for a model
  // without one.
  int64_t sparse_row_dim() const;
  // The rows of the next TrainBatch/EvaluateBatch/Infer: rows[n_rows,
  // sparse_row_dim()] for the batch's distinct ids (worker/sparse_batch.h),
  // and row_grads[n_rows, sparse_row_dim()], which TrainBatch's backward
  // fills whole with each row's gradient (summed over the batch, as grads());
  // null for passes that only infer. Both are borrowed until that pass ends.
  // REQUIRES: sparse_row_dim() > 0. On CUDA too: the rows are uploaded
  // each pass, and TrainBatch returns with row_grads written.
  void BindSparseRows(const float* rows, float* row_grads, int64_t n_rows);

  // The wide part (SparseEmbeddingSpec.wide_table; models/wide_part.h): the
  // wide features per example (core/feature_cross.h's WideSlots), 0 for a
  // model without one. BindWideRows binds, as BindSparseRows, the wide
  // table's rows[n_rows] of the next pass, row_grads[n_rows] (null when it
  // only infers) and each example's wide slots, slot_rows[batch *
  // wide_slots()]: the row each reads as a float, or -1 (none). The final
  // logit is the last layer's output plus the weights read. REQUIRES:
  // wide_slots() > 0.
  int64_t wide_slots() const;
  void BindWideRows(const float* rows, float* row_grads, int64_t n_rows, const float* slot_rows);

  // The tensors whose gradients are sparse (an embedding's,
  // column_embedding's or sparse_linear's weight with sparse_gradients), in key order; empty
  // for most models.
  const std::vector<KeyRange>& sparse_tensors() const { return sparse_tensors_; }
  // After TrainBatch: the key runs inside sparse_tensors() that the batch
  // touched (sorted, disjoint, adjacent rows merged). The rest of those
  // tensors' gradients is zero, so a push may leave it out.
  const std::vector<KeyRange>& touched_runs() const { return touched_runs_; }
  // The key runs of sparse_tensors() a batch x of `batch` examples reads
  // (and so a step on it touches), in touched_runs()'s form.
  std::vector<KeyRange> SparseRowsOf(const float* x, int64_t batch) const;

  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }

  // The gradient buffer. Pushes send it without copying and keep a reference
  // until ZeroMQ is done; TrainBatch writes into a fresh buffer when the old
  // one is still referenced.
  const std::shared_ptr<std::vector<float>>& grads() const { return grads_; }

  // Forward and backward on x[batch, input_features] with labels[batch]
  // (class ids as floats, 0 or 1, or targets: by task()); grads() becomes the
  // gradient of the loss summed (not averaged) over the batch (for
  // non-trainable tensors: their new values times batch). batch may be 0
  // (grads become zero). `seed` seeds the step's randomness (dropout).
  // When on_grads_ready is set, it is called with each layer's key range as
  // soon as backward has made that layer's gradients final (last layer
  // first), so they can be sent while the layers before it compute; together
  // the calls cover every key once (a device that computes all gradients at
  // once reports them in one call).
  using GradsReady = std::function<void(KeyRange keys)>;
  BatchStats TrainBatch(const float* x, const float* labels, int64_t batch, uint64_t seed = 0,
                        const GradsReady& on_grads_ready = nullptr);

  // The parameters in `keys` are final for the next TrainBatch (their PARAMS
  // came in). On CUDA each layer whose keys have all come so is copied to
  // the device now, while the worker still waits for the rest; when every
  // key has come so before the next TrainBatch, it skips its upload of all
  // parameters. The parameters must not change between this call and that
  // TrainBatch. No-op on the CPU.
  void ParamsArrived(KeyRange keys);
  // On CUDA: how many passes uploaded every parameter (0 on the CPU).
  int64_t parameter_uploads() const;

  // Forward only, in evaluation mode (no dropout; batch norm's running statistics).
  // With `predicted` (batch values), also each example's predicted class:
  // the largest logit, ties to the lowest class (PredictedClass). With
  // `outputs` (batch * num_outputs() values), also the last layer's outputs:
  // the logits, or the predictions of a regression.
  BatchStats EvaluateBatch(const float* x, const float* labels, int64_t batch, int32_t* predicted = nullptr,
                           float* outputs = nullptr);

  // Forward only in evaluation mode, as EvaluateBatch: the last layer's
  // outputs [batch, num_outputs()], owned by the model and valid until its next pass
  // (on CUDA, copied back to the host). nullptr for batch <= 0.
  const float* Infer(const float* x, int64_t batch);

  // The layers, and what layer i output in the last CPU pass (rows of its
  // out_shape, as many as that pass's batch): what int8 calibration looks at.
  // nullptr before a pass, on Device::kCuda, and for layers fused into one
  // pass (an int8 convolution computes the ReLU and max pooling after it).
  int num_layers() const { return static_cast<int>(layers_.size()); }
  const Layer& layer(int i) const { return *layers_[i]; }
  const float* LayerOutput(int i) const;

  // Makes the model inference-only and faster on the CPU: each Conv2d with a
  // ReLU (and a MaxPool2d) after it becomes one pass (ConvFusion), with its
  // weights in oneDNN's layout read once. Call it after setting params();
  // TrainBatch must not be called afterwards. On CUDA: the parameters are
  // uploaded on the next pass only, not on every one.
  void PrepareForInference();

  // Per-layer timing of every pass from now on (a clock read per layer and
  // pass); profile() holds the totals.
  void EnableProfiling();
  const std::vector<LayerProfile>& profile() const { return profile_; }

  // SHA-256 over the parameters as little-endian float32 in key order
  // (docs/FORMATS.md: params_sha256).
  std::string ParamsSha256() const;

 private:
  Model() = default;
  void EnsureActivations(int64_t batch);
  void EnsureExclusiveGrads();
  void BindLayers();
  // The loss of the last layer's outputs against labels (and its gradient
  // into dlogits when not null).
  LossResult ComputeLoss(const float* logits, const float* labels, int64_t batch, float* dlogits) const;
  // Fuses each Conv2d followed by a ReLU (and a MaxPool2d) into one layer
  // that computes all three: int8 ones always (they only infer), float ones
  // when float_too (PrepareForInference).
  void FuseConvBlocks(bool float_too);
  const float* Forward(const float* x, int64_t batch, const Pass& pass);
  // touched_runs_ for a batch x of `batch` examples.
  void FindTouchedRuns(const float* x, int64_t batch);
  // wide_ for a sparse_embedding with a wide_table; InvalidArgument when the
  // model does not give one output.
  Status CreateWidePart(const proto::SparseEmbeddingSpec& spec);

  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<uint64_t> layer_offsets_;  // first key of each layer's parameters
  std::vector<TensorInfo> tensors_;
  std::vector<KeyRange> sparse_tensors_, touched_runs_;
  // Of an embedding, column_embedding or sparse_linear first layer: which inputs are ids
  // of which rows of its weight, and the floats in a row.
  std::optional<IdLayout> ids_;
  int64_t id_row_size_ = 0;
  // A sparse_embedding first layer (one of layers_), or null.
  SparseEmbedding* sparse_embedding_ = nullptr;
  // Its wide part (or null), and the logits it gives: deep output + wide.
  std::unique_ptr<WidePart> wide_;
  std::vector<float> logits_;
  uint64_t num_keys_ = 0;
  Shape input_shape_;
  int num_classes_ = 0;
  int64_t num_outputs_ = 0;
  proto::Loss loss_ = proto::SOFTMAX_CROSS_ENTROPY;
  std::vector<float> params_;
  std::shared_ptr<std::vector<float>> grads_;
  // acts_[i]: output of layer i; grad_acts_[i]: dL/d(output of layer i).
  std::vector<std::vector<float>> acts_, grad_acts_;
  int64_t activation_batch_ = 0;
  std::vector<LayerProfile> profile_;  // empty unless profiling
  std::vector<bool> fused_away_;       // layer i is computed by the layer before it
  proto::ModelSpec spec_;
  bool inference_only_ = false;
  Device device_ = Device::kCpu;
  // On CUDA: the device buffers and passes; layers_ are then CUDA layers bound to device memory.
  struct CudaModelDeleter {
    void operator()(cuda::CudaModel* cuda) const;
  };
  std::unique_ptr<cuda::CudaModel, CudaModelDeleter> cuda_;
};

// The last layer's output shape (per example) of the layers of `spec` on
// inputs of `input_shape`, without building a Model: how many outputs the
// model gives, to infer its task (scheduler/job_task.h). InvalidArgument
// naming the layer when shapes do not fit. `categorical_rows` and
// `sparse_features` as Model::Create takes them (a column_embedding's and a
// sparse_linear's inputs; their sizes do not change the output's shape).
StatusOr<Shape> ModelOutputShape(const proto::ModelSpec& spec, const Shape& input_shape,
                                 const std::vector<int64_t>& categorical_rows = {}, int64_t sparse_features = 0);

// One layer of a model on the CPU, as Model::Create makes it: a
// column_embedding over `categorical_rows` (Model::Create's), any other
// layer by CreateLayer (a sparse_linear is not made here). For the export's
// and import's walks over a model's layers. InvalidArgument as those give.
StatusOr<std::unique_ptr<Layer>> CreateModelLayer(const proto::LayerSpec& spec, const Shape& in_shape,
                                                  const std::vector<int64_t>& categorical_rows);

// OK when every layer of `spec` runs on `device`: on CUDA, int8 layers,
// sparse_linear, dot_interaction and a sparse_embedding's wide part run on
// the CPU only (InvalidArgument naming the first).
Status CheckDeviceLayers(const proto::ModelSpec& spec, Device device);

// One example's shape for a dataset whose IDX images file has `dims`
// ([count, rows, cols] gives [1, rows, cols]; other ranks drop the count).
Shape ExampleShape(const std::vector<uint32_t>& idx_dims);

// Fills params (num_keys floats) with each tensor's initial values: tensor t
// init_value + uniform in +-init_bound from a generator seeded by (seed, t),
// so values do not depend on how keys are split over servers.
void InitializeParameters(const std::vector<TensorInfo>& tensors, uint64_t seed, float* params);

// params_sha256 of a flat parameter buffer.
std::string ParamsSha256(const float* params, uint64_t num_keys);

}  // namespace tessera

#endif  // TESSERA_MODELS_MODEL_H_
