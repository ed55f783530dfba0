// CUDA plumbing shared by the CUDA layers and the model: error checks, device
// and pinned buffers, and the context (one stream with a cuBLAS and a cuDNN
// handle bound to it) every CUDA layer enqueues its work on, in order.
// Built only with TESSERA_WITH_CUDA.
#ifndef TESSERA_MODELS_CUDA_CUDA_CONTEXT_H_
#define TESSERA_MODELS_CUDA_CUDA_CONTEXT_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"

namespace tessera::cuda {

// Ends the process naming the failed call: a CUDA error inside a pass leaves
// nothing to recover (as a failed oneDNN primitive on the CPU).
[[noreturn]] void Fail(const char* call, const char* error, const char* file, int line);

#define TESSERA_CUDA_CHECK(call)                                                                  \
  do {                                                                                            \
    const cudaError_t tessera_e = (call);                                                         \
    if (tessera_e != cudaSuccess) ::tessera::cuda::Fail(#call, cudaGetErrorString(tessera_e), __FILE__, __LINE__); \
  } while (0)
#define TESSERA_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                                  \
    const cublasStatus_t tessera_s = (call);                                                            \
    if (tessera_s != CUBLAS_STATUS_SUCCESS) ::tessera::cuda::Fail(#call, cublasGetStatusString(tessera_s), __FILE__, __LINE__); \
  } while (0)
#define TESSERA_CUDNN_CHECK(call)                                                                   \
  do {                                                                                              \
    const cudnnStatus_t tessera_s = (call);                                                         \
    if (tessera_s != CUDNN_STATUS_SUCCESS) ::tessera::cuda::Fail(#call, cudnnGetErrorString(tessera_s), __FILE__, __LINE__); \
  } while (0)

// Device memory that only grows. Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { Reserve(bytes); }
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  // At least `bytes`; when it has to grow, the old contents are lost (and the
  // device is drained first, so no queued work still uses them).
  void Reserve(size_t bytes);
  size_t bytes() const { return bytes_; }
  void* get() const { return ptr_; }
  float* f() const { return static_cast<float*>(ptr_); }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (fast, asynchronous copies). Move-only.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;

  // As DeviceBuffer::Reserve.
  void Reserve(size_t bytes);
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class CudaContext {
 public:
  // On the current device (device 0 unless cudaSetDevice chose another).
  // Unavailable, with the reason, when there is no usable GPU.
  static StatusOr<std::shared_ptr<CudaContext>> Create();
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  cudnnHandle_t cudnn() const { return cudnn_; }

  // Scratch space for cuDNN; valid until the next call (work on the one
  // stream runs in order, so layers can share it).
  void* Workspace(size_t bytes);
  // At least n ones (bias sums as matrix products).
  const float* Ones(int64_t n);
  // Waits for everything enqueued so far.
  void Synchronize();

  // Copies between host and device memory on the stream, and waits.
  void Upload(const float* host, size_t n, float* device);
  std::vector<float> Download(const float* device, size_t n);

 private:
  CudaContext() = default;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  DeviceBuffer workspace_, ones_;
  int64_t ones_count_ = 0;
};

}  // namespace tessera::cuda

#endif  // TESSERA_MODELS_CUDA_CUDA_CONTEXT_H_
