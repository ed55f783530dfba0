// The device half of a Model on CUDA (Model keeps its host API): parameters,
// gradients and activations in device memory; each pass uploads the host
// parameters (page-locked in place) and the batch (through pinned staging),
// runs the CUDA layers and the loss on one stream, and copies each layer's
// gradients back to the host (through a pinned buffer) as soon as its
// backward pass is done, while the layers before it still compute.
#ifndef TESSERA_MODELS_CUDA_CUDA_MODEL_H_
#define TESSERA_MODELS_CUDA_CUDA_MODEL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "models/layer.h"
#include "models/model.h"

namespace tessera::cuda {

class CudaContext;

class CudaModel {
 public:
  // `layers`: the model's CUDA layers, created on `context` (borrowed; they
  // must outlive this); layer i's parameters start at key layer_offsets[i].
  // `host_params` (num_keys floats) must outlive this too; it is page-locked
  // for fast uploads.
  CudaModel(std::shared_ptr<CudaContext> context, std::vector<Layer*> layers, std::vector<uint64_t> layer_offsets,
            uint64_t num_keys, int64_t input_features, int num_classes, proto::Loss loss, float* host_params);
  ~CudaModel();

  // As Model::TrainBatch with batch > 0; writes the gradients into
  // host_grads, calling on_grads_ready (when set) with each layer's keys once
  // they are there, last layer first. With `profile` (one entry per layer)
  // adds each layer's time, waiting for the device around every layer.
  BatchStats TrainBatch(const float* x, const float* labels, int64_t batch, uint64_t seed, float* host_grads,
                        const Model::GradsReady& on_grads_ready, std::vector<LayerProfile>* profile);
  // Model::ParamsArrived: once every key of a layer has come, copies the
  // layer's host parameters to the device (on the model's stream);
  // TrainBatch skips its upload of all parameters when every key came so
  // since the last pass.
  void UploadParams(KeyRange keys);
  // The next pass uploads every parameter again (a pass without a batch
  // came between the early uploads and it).
  void ForgetEarlyUploads();
  // Passes that uploaded every parameter.
  int64_t parameter_uploads() const { return parameter_uploads_; }
  // As Model::EvaluateBatch with batch > 0.
  BatchStats EvaluateBatch(const float* x, const float* labels, int64_t batch);
  // As Model::Infer with batch > 0: the outputs [batch, num_outputs] in a
  // host buffer owned by this, valid until the next pass.
  const float* Infer(const float* x, int64_t batch);
  // The logits of the last pass of `batch` examples, copied to the host
  // (valid until the next pass).
  const float* CopyLogitsToHost(int64_t batch);
  // From now on the host parameters are uploaded on the next pass only
  // (inference: they no longer change).
  // (params_uploaded_ is reset: a pass before this call uploaded the
  // parameters of then, and the caller may have set new ones since.)
  void UploadParamsOnce() {
    params_fixed_ = true;
    params_uploaded_ = false;
  }

 private:
  struct Buffers;
  void EnsureBatch(int64_t batch);
  // Copies the batch, and the parameters unless a training pass finds them
  // all uploaded by UploadParams already (or inference has them for good).
  void Upload(const float* x, const float* labels, int64_t batch, bool training);
  void Forward(int64_t batch, const Pass& pass, std::vector<LayerProfile>* profile);
  // Waits for the pass's losses and returns its statistics.
  BatchStats Finish(int64_t batch);

  std::shared_ptr<CudaContext> context_;
  std::vector<Layer*> layers_;
  std::vector<KeyRange> layer_keys_;  // each layer's parameters
  uint64_t num_keys_;
  int64_t input_features_;
  int num_classes_;
  proto::Loss loss_;     // never AUTO
  int64_t num_outputs_;  // of the last layer: num_classes_, or 1
  float* host_params_;
  bool params_registered_ = false;
  bool params_fixed_ = false, params_uploaded_ = false;
  uint64_t keys_uploaded_early_ = 0;  // by UploadParams since the last pass
  std::vector<uint64_t> arrived_;     // per layer: keys UploadParams was told of since then
  int64_t parameter_uploads_ = 0;
  int64_t batch_capacity_ = 0;
  std::unique_ptr<Buffers> b_;
};

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_CUDA_MODEL_H_
