#include "models/cuda/cuda_sparse_embedding.h"

#include <algorithm>
#include <tuple>
#include <utility>
#include <vector>

#include "models/cuda/kernels.h"

namespace tessera::cuda {
namespace {

class CudaSparseEmbedding : public SparseEmbedding {
 public:
  CudaSparseEmbedding(const SparseEmbedding& cpu, std::shared_ptr<CudaContext> context)
      : SparseEmbedding(cpu.numeric(), cpu.fields(), cpu.values_per_field(), cpu.dim(),
                        cpu.mean() ? proto::SparseEmbeddingSpec::MEAN : proto::SparseEmbeddingSpec::SUM),
        context_(std::move(context)) {}
  // The host buffers may still be in a copy on the stream.
  ~CudaSparseEmbedding() override { cudaStreamSynchronize(context_->stream()); }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    cudaStream_t stream = context_->stream();
    const size_t row_bytes = bound_rows() * dim() * sizeof(float);
    rows_.Reserve(std::max<size_t>(row_bytes, sizeof(float)));
    // From the caller's (pageable) buffer: done before the call returns, so it may change afterwards.
    if (row_bytes > 0)
      TESSERA_CUDA_CHECK(cudaMemcpyAsync(rows_.get(), rows(), row_bytes, cudaMemcpyHostToDevice, stream));
    TESSERA_CUDA_CHECK(LaunchSparseEmbeddingForward(x, batch, numeric(), fields(), values_per_field(), rows_.f(),
                                                    bound_rows(), dim(), mean(), y, stream));
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    cudaStream_t stream = context_->stream();
    const int64_t in = in_features(), out = out_features();
    if (dx != nullptr && batch > 0) {
      TESSERA_CUDA_CHECK(cudaMemsetAsync(dx, 0, batch * in * sizeof(float), stream));
      if (numeric() > 0) {
        TESSERA_CUDA_CHECK(cudaMemcpy2DAsync(dx, in * sizeof(float), dy, out * sizeof(float), numeric() * sizeof(float),
                                             batch, cudaMemcpyDeviceToDevice, stream));
      }
    }
    if (row_grads() == nullptr) return;
    const size_t grad_bytes = bound_rows() * dim() * sizeof(float);
    row_grad_.Reserve(std::max<size_t>(grad_bytes, sizeof(float)));
    // Every bound row's gradient, as the CPU layer writes them all.
    TESSERA_CUDA_CHECK(cudaMemsetAsync(row_grad_.get(), 0, grad_bytes, stream));
    if (batch > 0) {
      host_x_.Reserve(batch * in * sizeof(float));
      TESSERA_CUDA_CHECK(
          cudaMemcpyAsync(host_x_.as<float>(), x, batch * in * sizeof(float), cudaMemcpyDeviceToHost, stream));
      context_->Synchronize();
      FindUses(host_x_.as<float>(), batch);
      if (!uses_.empty()) UploadCsrAndScatter(dy, batch);
    }
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(row_grads(), row_grad_.get(), grad_bytes, cudaMemcpyDeviceToHost, stream));
    context_->Synchronize();  // the caller pushes them once Backward returns
  }

 private:
  // (row, offset in dy, divisor) of every slot that reads a row, sorted: by
  // row, then in the CPU layer's order of additions.
  void FindUses(const float* values, int64_t batch) {
    const int64_t in = in_features(), out = out_features();
    uses_.clear();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t f = 0; f < fields(); ++f) {
        const float* slots = values + b * in + numeric() + f * values_per_field();
        int64_t count = 0;
        for (int64_t v = 0; v < values_per_field(); ++v) count += RowOf(slots[v]) >= 0 ? 1 : 0;
        const float divisor = mean() ? static_cast<float>(count) : 1.0f;
        for (int64_t v = 0; v < values_per_field(); ++v) {
          const int64_t row = RowOf(slots[v]);
          if (row >= 0) uses_.emplace_back(row, b * out + numeric() + f * dim(), divisor);
        }
      }
    }
    std::sort(uses_.begin(), uses_.end());
  }

  // The uses as CSR lists (rows [count], starts [count + 1], positions
  // [uses]) and the divisors [uses], uploaded, then the scatter kernel.
  void UploadCsrAndScatter(const float* dy, int64_t batch) {
    const int64_t used = static_cast<int64_t>(uses_.size());
    int64_t count = 1;
    for (int64_t u = 1; u < used; ++u) count += std::get<0>(uses_[u]) != std::get<0>(uses_[u - 1]) ? 1 : 0;
    const int64_t capacity = 3 * batch * in_features() + 1;  // count <= uses <= batch * in
    host_csr_.Reserve(capacity * sizeof(int64_t));
    host_divisors_.Reserve(std::max<int64_t>(used, 1) * sizeof(float));
    csr_.Reserve(capacity * sizeof(int64_t));
    divisors_.Reserve(std::max<int64_t>(used, 1) * sizeof(float));
    int64_t* rows = host_csr_.as<int64_t>();
    int64_t* starts = rows + count;
    int64_t* positions = starts + count + 1;
    float* divisors = host_divisors_.as<float>();
    int64_t j = 0;
    for (int64_t u = 0; u < used; ++u) {
      if (u == 0 || std::get<0>(uses_[u]) != std::get<0>(uses_[u - 1])) {
        rows[j] = std::get<0>(uses_[u]);
        starts[j] = u;
        ++j;
      }
      positions[u] = std::get<1>(uses_[u]);
      divisors[u] = std::get<2>(uses_[u]);
    }
    starts[count] = used;
    cudaStream_t stream = context_->stream();
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(csr_.get(), rows, (2 * count + 1 + used) * sizeof(int64_t), cudaMemcpyHostToDevice, stream));
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(divisors_.get(), divisors, used * sizeof(float), cudaMemcpyHostToDevice, stream));
    const int64_t* device = csr_.as<int64_t>();
    TESSERA_CUDA_CHECK(LaunchSparseEmbeddingBackward(dy, device, device + count, device + 2 * count + 1, divisors_.f(),
                                                     count, dim(), row_grad_.f(), stream));
  }

  std::shared_ptr<CudaContext> context_;
  // The bound rows and their gradients on the device, grown only.
  DeviceBuffer rows_, row_grad_;
  // Backward's scratch, grown only: the slots on the host, the uses, and the
  // CSR lists and divisors on the host (pinned) and on the device.
  PinnedBuffer host_x_, host_csr_, host_divisors_;
  std::vector<std::tuple<int64_t, int64_t, float>> uses_;
  DeviceBuffer csr_, divisors_;
};

}  // namespace

std::unique_ptr<Layer> CreateCudaSparseEmbedding(const SparseEmbedding& cpu, std::shared_ptr<CudaContext> context) {
  return std::unique_ptr<Layer>(new CudaSparseEmbedding(cpu, std::move(context)));
}

}  // namespace tessera::cuda
