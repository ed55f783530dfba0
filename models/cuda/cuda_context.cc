#include "models/cuda/cuda_context.h"

#include <glog/logging.h>

#include <string>
#include <utility>

#include "models/device.h"

namespace tessera::cuda {

void Fail(const char* call, const char* error, const char* file, int line) {
  LOG(FATAL) << file << ":" << line << ": " << call << " failed: " << error;
  std::abort();
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  std::swap(ptr_, other.ptr_);
  std::swap(bytes_, other.bytes_);
  return *this;
}

void DeviceBuffer::Reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  if (ptr_ != nullptr) {
    TESSERA_CUDA_CHECK(cudaDeviceSynchronize());
    TESSERA_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
  }
  TESSERA_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
  bytes_ = bytes;
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_ != nullptr) cudaFreeHost(ptr_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  std::swap(ptr_, other.ptr_);
  std::swap(bytes_, other.bytes_);
  return *this;
}

void PinnedBuffer::Reserve(size_t bytes) {
  if (bytes <= bytes_) return;
  if (ptr_ != nullptr) {
    TESSERA_CUDA_CHECK(cudaDeviceSynchronize());
    TESSERA_CUDA_CHECK(cudaFreeHost(ptr_));
    ptr_ = nullptr;
  }
  TESSERA_CUDA_CHECK(cudaMallocHost(&ptr_, bytes));
  bytes_ = bytes;
}

StatusOr<std::shared_ptr<CudaContext>> CudaContext::Create() {
  std::string why;
  if (!CudaAvailable(&why)) return UnavailableError(why);
  std::shared_ptr<CudaContext> c(new CudaContext());
  if (cudaError_t e = cudaStreamCreate(&c->stream_); e != cudaSuccess) {
    return UnavailableError(std::string("cudaStreamCreate: ") + cudaGetErrorString(e));
  }
  if (cublasStatus_t s = cublasCreate(&c->cublas_); s != CUBLAS_STATUS_SUCCESS) {
    return UnavailableError(std::string("cublasCreate: ") + cublasGetStatusString(s));
  }
  if (cudnnStatus_t s = cudnnCreate(&c->cudnn_); s != CUDNN_STATUS_SUCCESS) {
    return UnavailableError(std::string("cudnnCreate: ") + cudnnGetErrorString(s));
  }
  TESSERA_CUBLAS_CHECK(cublasSetStream(c->cublas_, c->stream_));
  // Plain FP32 (no TF32 tensor cores), as on the CPU: devices agree within float rounding.
  TESSERA_CUBLAS_CHECK(cublasSetMathMode(c->cublas_, CUBLAS_PEDANTIC_MATH));
  TESSERA_CUDNN_CHECK(cudnnSetStream(c->cudnn_, c->stream_));
  return c;
}

CudaContext::~CudaContext() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void* CudaContext::Workspace(size_t bytes) {
  workspace_.Reserve(std::max<size_t>(bytes, 1));
  return workspace_.get();
}

const float* CudaContext::Ones(int64_t n) {
  if (n > ones_count_) {
    const int64_t count = std::max<int64_t>(n, 1024);
    std::vector<float> ones(count, 1.0f);
    ones_.Reserve(count * sizeof(float));
    Upload(ones.data(), count, ones_.f());
    ones_count_ = count;
  }
  return ones_.f();
}

void CudaContext::Synchronize() { TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaContext::Upload(const float* host, size_t n, float* device) {
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(device, host, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
  Synchronize();
}

std::vector<float> CudaContext::Download(const float* device, size_t n) {
  std::vector<float> host(n);
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(host.data(), device, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  Synchronize();
  return host;
}

}  // namespace tessera::cuda
