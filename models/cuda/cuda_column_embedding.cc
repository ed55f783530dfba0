#include "models/cuda/cuda_column_embedding.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "models/cuda/kernels.h"

namespace tessera::cuda {
namespace {

class CudaColumnEmbedding : public Layer {
 public:
  CudaColumnEmbedding(const ColumnEmbedding& cpu, std::shared_ptr<CudaContext> context)
      : Layer(cpu.in_shape(), cpu.out_shape()),
        param_shapes_(cpu.param_shapes()),
        layout_(cpu.layout()),
        dim_(cpu.dim()),
        context_(std::move(context)) {
    // The columns' first rows, for the forward kernel: uploaded once.
    const std::vector<int64_t>& offsets = layout_.offsets();
    offsets_.Reserve(offsets.size() * sizeof(int64_t));
    TESSERA_CUDA_CHECK(
        cudaMemcpy(offsets_.get(), offsets.data(), offsets.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
  }
  // The host buffers may still be in an upload on the stream.
  ~CudaColumnEmbedding() override { cudaStreamSynchronize(context_->stream()); }

  std::string type() const override { return "column_embedding"; }
  std::vector<ParamShape> param_shapes() const override { return param_shapes_; }

  void Bind(const float* params, float* grads) override {
    weight_ = params;
    weight_grad_ = grads;
  }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    TESSERA_CUDA_CHECK(LaunchColumnEmbeddingForward(x, batch, in_features(), layout_.numeric(),
                                                    offsets_.as<int64_t>(), weight_, dim_, y, context_->stream()));
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    cudaStream_t stream = context_->stream();
    const int64_t in = in_features(), out = out_features(), numeric = layout_.numeric();
    // The whole table (the CPU layer zeroes only the rows it last wrote): one cheap memset.
    TESSERA_CUDA_CHECK(cudaMemsetAsync(weight_grad_, 0, layout_.total_rows() * dim_ * sizeof(float), stream));
    if (dx != nullptr && batch > 0) {
      TESSERA_CUDA_CHECK(cudaMemsetAsync(dx, 0, batch * in * sizeof(float), stream));
      if (numeric > 0) {
        TESSERA_CUDA_CHECK(cudaMemcpy2DAsync(dx, in * sizeof(float), dy, out * sizeof(float), numeric * sizeof(float),
                                             batch, cudaMemcpyDeviceToDevice, stream));
      }
    }
    if (batch == 0) return;
    const int64_t n = batch * in;
    // The ids, on the host. Waiting for the stream also means the previous
    // Backward's upload from host_csr_ is done before it is rewritten.
    host_x_.Reserve(n * sizeof(float));
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(host_x_.as<float>(), x, n * sizeof(float), cudaMemcpyDeviceToHost, stream));
    context_->Synchronize();
    FindUses(host_x_.as<float>(), batch);
    if (uses_.empty()) return;
    UploadCsrAndScatter(dy, batch);
  }

 private:
  // (row, offset in dy) for every valid id, sorted: by row, then in the CPU layer's order of additions.
  void FindUses(const float* values, int64_t batch) {
    const int64_t in = in_features(), out = out_features(), numeric = layout_.numeric();
    uses_.clear();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = numeric; i < in; ++i) {
        const int64_t row = layout_.RowOf(i, values[b * in + i]);
        if (row >= 0) uses_.push_back({row, b * out + numeric + (i - numeric) * dim_});
      }
    }
    std::sort(uses_.begin(), uses_.end());
  }

  // The uses as CSR lists (rows [count], starts [count + 1], positions
  // [uses]), uploaded in one copy, then the scatter kernel.
  void UploadCsrAndScatter(const float* dy, int64_t batch) {
    const int64_t used = static_cast<int64_t>(uses_.size());
    int64_t count = 1;
    for (int64_t u = 1; u < used; ++u) count += uses_[u].first != uses_[u - 1].first ? 1 : 0;
    const int64_t capacity = 3 * batch * in_features() + 1;  // count <= uses <= batch * in
    host_csr_.Reserve(capacity * sizeof(int64_t));
    csr_.Reserve(capacity * sizeof(int64_t));
    int64_t* rows = host_csr_.as<int64_t>();
    int64_t* starts = rows + count;
    int64_t* positions = starts + count + 1;
    int64_t j = 0;
    for (int64_t u = 0; u < used; ++u) {
      if (u == 0 || uses_[u].first != uses_[u - 1].first) {
        rows[j] = uses_[u].first;
        starts[j] = u;
        ++j;
      }
      positions[u] = uses_[u].second;
    }
    starts[count] = used;
    const size_t bytes = (2 * count + 1 + used) * sizeof(int64_t);
    cudaStream_t stream = context_->stream();
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(csr_.get(), host_csr_.as<int64_t>(), bytes, cudaMemcpyHostToDevice, stream));
    const int64_t* device = csr_.as<int64_t>();
    TESSERA_CUDA_CHECK(
        LaunchEmbeddingBackward(dy, device, device + count, device + 2 * count + 1, count, dim_, weight_grad_, stream));
  }

  std::vector<ParamShape> param_shapes_;
  IdLayout layout_;
  int64_t dim_;
  std::shared_ptr<CudaContext> context_;
  DeviceBuffer offsets_;  // the columns' first rows, then the total
  const float* weight_ = nullptr;
  float* weight_grad_ = nullptr;
  // Backward's scratch, grown only: the ids on the host, (row, offset) pairs,
  // and the CSR lists on the host (pinned) and on the device.
  PinnedBuffer host_x_, host_csr_;
  std::vector<std::pair<int64_t, int64_t>> uses_;
  DeviceBuffer csr_;
};

}  // namespace

std::unique_ptr<Layer> CreateCudaColumnEmbedding(const ColumnEmbedding& cpu, std::shared_ptr<CudaContext> context) {
  return std::unique_ptr<Layer>(new CudaColumnEmbedding(cpu, std::move(context)));
}

}  // namespace tessera::cuda
