// The CUDA twins of the layers (models/*.h): Linear on cuBLAS; Conv2d,
// MaxPool2d, ReLU, BatchNorm and the softmax on cuDNN; Dropout's mask and
// Embedding's gather and (atomic-free) gradient scatter in own kernels
// (kernels.cu; ColumnEmbedding's twin is in cuda_column_embedding.h), the
// same mask and the same sums as the CPU's. All plain FP32
// (no TF32), deterministic algorithms only.
//
// A CUDA layer has the CPU layer's interface, shapes and param_shapes(), but
// every pointer it is given (Bind, Forward, Backward) is device memory, and
// its work is only enqueued on its context's stream: it is done once the
// context synchronizes (or a copy back to the host on that stream returns).
#ifndef TESSERA_MODELS_CUDA_CUDA_LAYERS_H_
#define TESSERA_MODELS_CUDA_CUDA_LAYERS_H_

#include <memory>

#include "models/cuda/cuda_context.h"
#include "models/layer.h"

namespace tessera::cuda {

// The CUDA layer `spec` describes for examples of `in_shape`: the same checks
// and errors as CreateLayer.
StatusOr<std::unique_ptr<Layer>> CreateCudaLayer(const proto::LayerSpec& spec, const Shape& in_shape,
                                                 std::shared_ptr<CudaContext> context);

// Softmax cross-entropy of logits [batch, classes] (device), as the CPU's
// SoftmaxCrossEntropy: per example losses[b] and correct[b] (0 or 1), and
// when dlogits is not null the gradient of the summed loss. logp: scratch of
// batch * classes floats. Enqueued on the context's stream.
void SoftmaxCrossEntropy(CudaContext& context, const float* logits, const float* labels, int64_t batch,
                         int64_t classes, float* logp, float* losses, int32_t* correct, float* dlogits);

// The loss `loss` (never AUTO) of the last layer's outputs [batch,
// outputs] against labels (device), per example, as the CPU's loss of the
// same name (models/softmax_cross_entropy.h): losses[b], correct[b], and
// when dlogits is not null the gradient of the summed loss. logp: scratch
// of batch * outputs floats (softmax only). Enqueued on the context's stream.
void ComputeLoss(CudaContext& context, proto::Loss loss, const float* logits, const float* labels, int64_t batch,
                 int64_t outputs, float* logp, float* losses, int32_t* correct, float* dlogits);

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_CUDA_LAYERS_H_
