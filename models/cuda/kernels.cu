#include "models/cuda/kernels.h"

#include <algorithm>


namespace tessera::cuda {
namespace {

constexpr int kThreads = 256;

int Blocks(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

__global__ void DropoutKernel(const float* x, float* y, int64_t n, uint64_t seed, float p, float keep) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // SplitMix64::Next() for the (i+1)-th draw (core/random.cc).
    uint64_t z = seed + static_cast<uint64_t>(i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    const float scale = u < p ? 0.0f : keep;
    y[i] = x[i] * scale;
  }
}

__global__ void SoftmaxCrossEntropyKernel(const float* logits, const float* logp, const float* labels, int64_t batch,
                                          int classes, float* losses, int32_t* correct, float* dlogits) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  const float* z = logits + b * classes;
  const float* lp = logp + b * classes;
  int best = 0;
  float max = z[0];
  for (int c = 1; c < classes; ++c) {
    if (z[c] > max) {
      max = z[c];
      best = c;
    }
  }
  const int label = static_cast<int>(labels[b]);  // a class id, exact as a float
  losses[b] = -lp[label];
  correct[b] = best == label ? 1 : 0;
  if (dlogits != nullptr) {
    float* g = dlogits + b * classes;
    for (int c = 0; c < classes; ++c) g[c] = expf(lp[c]);
    g[label] -= 1.0f;
  }
}

__device__ double DeviceSigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + exp(-z));
  const double e = exp(z);
  return e / (1.0 + e);
}

__global__ void SigmoidBinaryCrossEntropyKernel(const float* logits, const float* labels, int64_t batch,
                                                float* losses, int32_t* correct, float* dlogits) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  const double z = logits[b];
  const double y = labels[b];
  losses[b] = static_cast<float>(fmax(z, 0.0) - z * y + log1p(exp(-fabs(z))));
  correct[b] = (z > 0) == (y == 1.0) ? 1 : 0;
  if (dlogits != nullptr) dlogits[b] = static_cast<float>(DeviceSigmoid(z) - y);
}

__global__ void MeanSquaredErrorKernel(const float* outputs, const float* labels, int64_t batch, float* losses,
                                       int32_t* correct, float* doutputs) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= batch) return;
  const double d = static_cast<double>(outputs[b]) - static_cast<double>(labels[b]);
  losses[b] = static_cast<float>(d * d);
  correct[b] = 0;
  if (doutputs != nullptr) doutputs[b] = static_cast<float>(2.0 * d);
}

// EmbeddingId (models/embedding.cc) on the device: rintf rounds to nearest,
// ties to even, as std::nearbyint in the default rounding mode.
__device__ int64_t DeviceEmbeddingId(float value, float rows_f) {
  if (!isfinite(value)) return -1;
  const float rounded = rintf(value);
  if (rounded < 0.0f || rounded >= rows_f) return -1;
  return static_cast<int64_t>(rounded);
}

// One thread per output element (the id is recomputed per element: cheaper
// than a pass of its own).
__global__ void EmbeddingForwardKernel(const float* x, int64_t n, const float* weight, int64_t rows, float rows_f,
                                       int64_t dim, float* y) {
  const int64_t total = n * dim;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / dim, k = e - i * dim;
    const int64_t id = DeviceEmbeddingId(x[i], rows_f);
    // id < rows whenever id >= 0 (as on the CPU); checked anyway, never to read past the table.
    y[e] = id >= 0 && id < rows ? weight[id * dim + k] : 0.0f;
  }
}

// One thread per (distinct row j, k): consecutive threads read consecutive k
// of the same dy rows (coalesced), and no two threads write the same element.
__global__ void EmbeddingBackwardKernel(const float* dy, const int64_t* rows, const int64_t* starts,
                                        const int64_t* positions, int64_t count, int64_t dim, float* weight_grad) {
  const int64_t total = count * dim;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e / dim, k = e - j * dim;
    float sum = 0.0f;  // the CPU starts from its zeroed gradient: 0 + d0 + d1 + ...
    for (int64_t p = starts[j]; p < starts[j + 1]; ++p) sum += dy[positions[p] + k];
    weight_grad[rows[j] * dim + k] = sum;
  }
}

// One thread per output element, as EmbeddingForwardKernel.
__global__ void ColumnEmbeddingForwardKernel(const float* x, int64_t batch, int64_t in, int64_t numeric,
                                             const int64_t* offsets, const float* weight, int64_t dim, float* y) {
  const int64_t out = numeric + (in - numeric) * dim;
  const int64_t total = batch * out;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e / out, o = e - b * out;
    if (o < numeric) {
      y[e] = x[b * in + o];
      continue;
    }
    const int64_t c = (o - numeric) / dim, k = (o - numeric) - c * dim;
    const int64_t rows = offsets[c + 1] - offsets[c];
    const int64_t id = DeviceEmbeddingId(x[b * in + numeric + c], static_cast<float>(rows));
    y[e] = id >= 0 && id < rows ? weight[(offsets[c] + id) * dim + k] : 0.0f;
  }
}

// SparseEmbedding::RowOf on the device: NaN, fractions and values outside
// [0, n_rows) read no row.
__device__ int64_t DeviceSparseRow(float value, float n_rows_f) {
  if (!(value >= 0.0f && value < n_rows_f) || value != floorf(value)) return -1;
  return static_cast<int64_t>(value);
}

// One thread per output element; each loops over its bag's slots in order.
__global__ void SparseEmbeddingForwardKernel(const float* x, int64_t batch, int64_t numeric, int64_t fields,
                                             int64_t values_per_field, const float* rows, int64_t n_rows,
                                             float n_rows_f, int64_t dim, bool mean, float* y) {
  const int64_t in = numeric + fields * values_per_field, out = numeric + fields * dim;
  const int64_t total = batch * out;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e / out, o = e - b * out;
    if (o < numeric) {
      y[e] = x[b * in + o];
      continue;
    }
    const int64_t f = (o - numeric) / dim, k = (o - numeric) - f * dim;
    const float* slots = x + b * in + numeric + f * values_per_field;
    float sum = 0.0f;
    int64_t count = 0;
    for (int64_t v = 0; v < values_per_field; ++v) {
      const int64_t row = DeviceSparseRow(slots[v], n_rows_f);
      if (row < 0 || row >= n_rows) continue;
      // The first row copied, as the CPU's memcpy (-0.0 stays -0.0).
      sum = count == 0 ? rows[row * dim + k] : sum + rows[row * dim + k];
      ++count;
    }
    y[e] = count == 0 ? 0.0f : mean ? sum / static_cast<float>(count) : sum;
  }
}

// As EmbeddingBackwardKernel, each use's dy divided by its divisor.
__global__ void SparseEmbeddingBackwardKernel(const float* dy, const int64_t* rows, const int64_t* starts,
                                              const int64_t* positions, const float* divisors, int64_t count,
                                              int64_t dim, float* row_grad) {
  const int64_t total = count * dim;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = e / dim, k = e - j * dim;
    float sum = 0.0f;
    for (int64_t p = starts[j]; p < starts[j + 1]; ++p) sum += dy[positions[p] + k] / divisors[p];
    row_grad[rows[j] * dim + k] = sum;
  }
}

}  // namespace

cudaError_t LaunchSparseEmbeddingForward(const float* x, int64_t batch, int64_t numeric, int64_t fields,
                                         int64_t values_per_field, const float* rows, int64_t n_rows, int64_t dim,
                                         bool mean, float* y, cudaStream_t stream) {
  const int64_t n = batch * (numeric + fields * dim);
  if (n == 0) return cudaSuccess;
  SparseEmbeddingForwardKernel<<<Blocks(n), kThreads, 0, stream>>>(
      x, batch, numeric, fields, values_per_field, rows, n_rows, static_cast<float>(n_rows), dim, mean, y);
  return cudaGetLastError();
}

cudaError_t LaunchSparseEmbeddingBackward(const float* dy, const int64_t* rows, const int64_t* starts,
                                          const int64_t* positions, const float* divisors, int64_t count, int64_t dim,
                                          float* row_grad, cudaStream_t stream) {
  if (count * dim == 0) return cudaSuccess;
  SparseEmbeddingBackwardKernel<<<Blocks(count * dim), kThreads, 0, stream>>>(dy, rows, starts, positions, divisors,
                                                                             count, dim, row_grad);
  return cudaGetLastError();
}

cudaError_t LaunchDropout(const float* x, float* y, int64_t n, uint64_t seed, float p, float keep, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  DropoutKernel<<<Blocks(n), kThreads, 0, stream>>>(x, y, n, seed, p, keep);
  return cudaGetLastError();
}

cudaError_t LaunchSoftmaxCrossEntropy(const float* logits, const float* logp, const float* labels, int64_t batch,
                                      int classes, float* losses, int32_t* correct, float* dlogits,
                                      cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  SoftmaxCrossEntropyKernel<<<static_cast<int>((batch + 127) / 128), 128, 0, stream>>>(logits, logp, labels, batch,
                                                                                      classes, losses, correct, dlogits);
  return cudaGetLastError();
}

cudaError_t LaunchSigmoidBinaryCrossEntropy(const float* logits, const float* labels, int64_t batch, float* losses,
                                            int32_t* correct, float* dlogits, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  SigmoidBinaryCrossEntropyKernel<<<static_cast<int>((batch + 127) / 128), 128, 0, stream>>>(logits, labels, batch,
                                                                                            losses, correct, dlogits);
  return cudaGetLastError();
}

cudaError_t LaunchMeanSquaredError(const float* outputs, const float* labels, int64_t batch, float* losses,
                                   int32_t* correct, float* doutputs, cudaStream_t stream) {
  if (batch == 0) return cudaSuccess;
  MeanSquaredErrorKernel<<<static_cast<int>((batch + 127) / 128), 128, 0, stream>>>(outputs, labels, batch, losses,
                                                                                   correct, doutputs);
  return cudaGetLastError();
}

cudaError_t LaunchEmbeddingForward(const float* x, int64_t n, const float* weight, int64_t rows, float rows_f,
                                   int64_t dim, float* y, cudaStream_t stream) {
  if (n == 0 || dim == 0) return cudaSuccess;
  EmbeddingForwardKernel<<<Blocks(n * dim), kThreads, 0, stream>>>(x, n, weight, rows, rows_f, dim, y);
  return cudaGetLastError();
}

cudaError_t LaunchEmbeddingBackward(const float* dy, const int64_t* rows, const int64_t* starts,
                                    const int64_t* positions, int64_t count, int64_t dim, float* weight_grad,
                                    cudaStream_t stream) {
  if (count == 0 || dim == 0) return cudaSuccess;
  EmbeddingBackwardKernel<<<Blocks(count * dim), kThreads, 0, stream>>>(dy, rows, starts, positions, count, dim,
                                                                       weight_grad);
  return cudaGetLastError();
}

cudaError_t LaunchColumnEmbeddingForward(const float* x, int64_t batch, int64_t in, int64_t numeric,
                                         const int64_t* offsets, const float* weight, int64_t dim, float* y,
                                         cudaStream_t stream) {
  const int64_t total = batch * (numeric + (in - numeric) * dim);
  if (total == 0) return cudaSuccess;
  ColumnEmbeddingForwardKernel<<<Blocks(total), kThreads, 0, stream>>>(x, batch, in, numeric, offsets, weight, dim, y);
  return cudaGetLastError();
}

}  // namespace tessera::cuda
