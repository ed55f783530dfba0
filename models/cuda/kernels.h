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
cudaError_t LaunchSoftmaxCrossEntropy(const float* logits, const float* logp, const float* labels, int64_t batch,
                                      int classes, float* losses, int32_t* correct, float* dlogits,
                                      cudaStream_t stream);

// Per example b of logits z[batch] and labels y[batch] (0 or 1), in double
// as the CPU's SigmoidBinaryCrossEntropy: losses[b] = max(z, 0) - z y +
// log1p(exp(-|z|)), correct[b] = ((z > 0) == (y == 1)), and when dlogits is
// not null dlogits[b] = sigmoid(z) - y.
cudaError_t LaunchSigmoidBinaryCrossEntropy(const float* logits, const float* labels, int64_t batch, float* losses,
                                            int32_t* correct, float* dlogits, cudaStream_t stream);

// Per example, as the CPU's MeanSquaredError: losses[b] = (z - y)^2,
// correct[b] = 0, and when doutputs is not null doutputs[b] = 2 (z - y).
cudaError_t LaunchMeanSquaredError(const float* outputs, const float* labels, int64_t batch, float* losses,
                                   int32_t* correct, float* doutputs, cudaStream_t stream);

// Embedding lookup over n input values: y[i * dim + k] = weight[id * dim + k]
// with id = EmbeddingId(x[i], rows) (models/embedding.h: the nearest integer,
// ties to even), a row of zeros where that is -1. rows_f is
// static_cast<float>(rows), computed on the host as the CPU layer does.
cudaError_t LaunchEmbeddingForward(const float* x, int64_t n, const float* weight, int64_t rows, float rows_f,
                                   int64_t dim, float* y, cudaStream_t stream);

// The embedding's weight gradient in the rows a batch used, without atomics:
// for j < count and k < dim, weight_grad[rows[j] * dim + k] = the sum of
// dy[positions[p] + k] for p in [starts[j], starts[j + 1]), added from 0 in
// that order (one thread per output element, so with increasing positions it
// is bitwise the CPU's loop). A position is the offset in dy of the dim
// floats one use of the row received (Embedding: input i's at i * dim;
// ColumnEmbedding: example b's column c at b * out + numeric + c * dim).
// rows must be distinct; the other rows of weight_grad are left as they are.
cudaError_t LaunchEmbeddingBackward(const float* dy, const int64_t* rows, const int64_t* starts,
                                    const int64_t* positions, int64_t count, int64_t dim, float* weight_grad,
                                    cudaStream_t stream);

// ColumnEmbedding lookup (models/column_embedding.h) over x[batch, in]: y[b]
// is x[b]'s first `numeric` values, then for each column c < in - numeric
// the dim floats of weight row offsets[c] + id, id = EmbeddingId(x[b,
// numeric + c], offsets[c + 1] - offsets[c]) (zeros where that is -1).
// offsets (device memory, in - numeric + 1 values) are the columns' first rows.
cudaError_t LaunchColumnEmbeddingForward(const float* x, int64_t batch, int64_t in, int64_t numeric,
                                         const int64_t* offsets, const float* weight, int64_t dim, float* y,
                                         cudaStream_t stream);

// SparseEmbedding's forward (models/sparse_embedding.h) over x[batch, in],
// in = numeric + fields * values_per_field: y[b] is x[b]'s numeric values,
// then each bag's rows added in slot order (the first copied), divided by
// their count when `mean`; zeros for an empty bag. A slot reads row v when
// it holds an integer v in [0, n_rows) (else none, as the CPU's RowOf).
// rows [n_rows, dim] in device memory.
cudaError_t LaunchSparseEmbeddingForward(const float* x, int64_t batch, int64_t numeric, int64_t fields,
                                         int64_t values_per_field, const float* rows, int64_t n_rows, int64_t dim,
                                         bool mean, float* y, cudaStream_t stream);

// LaunchEmbeddingBackward with a divisor per use: row_grad[rows[j] * dim +
// k] = the sum of dy[positions[p] + k] / divisors[p] for p in [starts[j],
// starts[j + 1]), added from 0 in that order (a divisor of 1 leaves dy's
// bits as they are: a SUM bag's use).
cudaError_t LaunchSparseEmbeddingBackward(const float* dy, const int64_t* rows, const int64_t* starts,
                                          const int64_t* positions, const float* divisors, int64_t count, int64_t dim,
                                          float* row_grad, cudaStream_t stream);

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_KERNELS_H_
