// The few kernels neither cuBLAS nor cuDNN provides (kernels.cu). Each
// launcher enqueues on `stream` and returns the launch's error.
#ifndef TESSERA_MODELS_CUDA_KERNELS_H_
#define TESSERA_MODELS_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace tessera::cuda {

// y[i] = x[i] * (u_i < p ? 0 : keep), u_i the (i+1)-th NextFloat() of
// SplitMix64(seed): bitwise the CPU Dropout's mask (SplitMix64 is
// counter-based), with no mask stored. In place is fine.
cudaError_t LaunchDropout(const float* x, float* y, int64_t n, uint64_t seed, float p, float keep, cudaStream_t stream);

// From logits and their log-softmax logp (both [batch, classes]): losses[b] =
// -logp[b, label], correct[b] = (first argmax of logits == label), and when
// dlogits is not null, dlogits = exp(logp) - onehot(label).
cudaError_t LaunchSoftmaxCrossEntropy(const float* logits, const float* logp, const uint8_t* labels, int64_t batch,
                                      int classes, float* losses, int32_t* correct, float* dlogits,
                                      cudaStream_t stream);

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_KERNELS_H_
