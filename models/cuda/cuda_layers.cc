#include "models/cuda/cuda_layers.h"

#include <glog/logging.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "models/conv2d.h"
#include "models/cuda/kernels.h"
#include "models/embedding.h"

namespace tessera::cuda {
namespace {

const float kOne = 1.0f, kZero = 0.0f;

// Largest cuDNN workspace an algorithm may ask for.
constexpr size_t kMaxWorkspaceBytes = size_t{512} << 20;

class TensorDesc {
 public:
  TensorDesc() { TESSERA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  void Set(int64_t n, int64_t c, int64_t h, int64_t w) {
    TESSERA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, static_cast<int>(n),
                                                   static_cast<int>(c), static_cast<int>(h), static_cast<int>(w)));
  }
  // A batch of `shape` examples: [C, H, W] as NCHW, anything else as [N, features, 1, 1].
  void SetBatch(int64_t batch, const Shape& shape) {
    if (shape.size() == 3) {
      Set(batch, shape[0], shape[1], shape[2]);
    } else {
      Set(batch, NumElements(shape), 1, 1);
    }
  }
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

// Descriptors of one layer's input and output for each batch size seen.
class BatchDescs {
 public:
  BatchDescs(Shape in, Shape out) : in_(std::move(in)), out_(std::move(out)) {}
  struct Pair {
    TensorDesc x, y;
  };
  const Pair& For(int64_t batch) {
    auto it = descs_.find(batch);
    if (it != descs_.end()) return *it->second;
    auto p = std::make_unique<Pair>();
    p->x.SetBatch(batch, in_);
    p->y.SetBatch(batch, out_);
    return *descs_.emplace(batch, std::move(p)).first->second;
  }

 private:
  Shape in_, out_;
  std::map<int64_t, std::unique_ptr<Pair>> descs_;
};

// Shapes, type and parameters come from the CPU twin, so the key space is
// the same on every device.
class CudaLayer : public Layer {
 public:
  CudaLayer(const Layer& cpu, std::shared_ptr<CudaContext> context)
      : Layer(cpu.in_shape(), cpu.out_shape()),
        type_(cpu.type()),
        param_shapes_(cpu.param_shapes()),
        context_(std::move(context)),
        descs_(cpu.in_shape(), cpu.out_shape()) {}
  std::string type() const override { return type_; }
  std::vector<ParamShape> param_shapes() const override { return param_shapes_; }

 protected:
  CudaContext& ctx() const { return *context_; }
  cudnnHandle_t cudnn() const { return context_->cudnn(); }
  cublasHandle_t cublas() const { return context_->cublas(); }
  cudaStream_t stream() const { return context_->stream(); }
  const BatchDescs::Pair& Descs(int64_t batch) { return descs_.For(batch); }
  void Copy(float* to, const float* from, int64_t n) const {
    if (n > 0) TESSERA_CUDA_CHECK(cudaMemcpyAsync(to, from, n * sizeof(float), cudaMemcpyDeviceToDevice, stream()));
  }
  void Zero(float* to, int64_t n) const {
    if (n > 0) TESSERA_CUDA_CHECK(cudaMemsetAsync(to, 0, n * sizeof(float), stream()));
  }

 private:
  std::string type_;
  std::vector<ParamShape> param_shapes_;
  std::shared_ptr<CudaContext> context_;
  BatchDescs descs_;
};

// y = x W^T + b with cuBLAS. Row-major [batch, n] is column-major [n, batch],
// so y^T = W x^T is one column-major GEMM with W transposed.
class CudaLinear : public CudaLayer {
 public:
  CudaLinear(const Layer& cpu, std::shared_ptr<CudaContext> context, bool bias)
      : CudaLayer(cpu, std::move(context)), in_(cpu.in_features()), out_(cpu.out_features()), has_bias_(bias) {}

  void Bind(const float* params, float* grads) override {
    weight_ = params;
    weight_grad_ = grads;
    bias_ = has_bias_ ? params + out_ * in_ : nullptr;
    bias_grad_ = has_bias_ ? grads + out_ * in_ : nullptr;
  }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    if (batch == 0) return;
    const int n = static_cast<int>(batch), in = static_cast<int>(in_), out = static_cast<int>(out_);
    TESSERA_CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &kOne, weight_, in, x, in, &kZero, y, out));
    if (has_bias_) {
      // y += b 1^T (a rank-1 product).
      TESSERA_CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, out, n, 1, &kOne, bias_, out, ctx().Ones(n), 1,
                                       &kOne, y, out));
    }
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    if (batch == 0) {
      Zero(weight_grad_, out_ * in_);
      if (has_bias_) Zero(bias_grad_, out_);
      return;
    }
    const int n = static_cast<int>(batch), in = static_cast<int>(in_), out = static_cast<int>(out_);
    // dW^T [in, out] = x^T dy
    TESSERA_CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &kOne, x, in, dy, out, &kZero,
                                     weight_grad_, in));
    // db = dy^T 1
    if (has_bias_) {
      TESSERA_CUBLAS_CHECK(cublasSgemv(cublas(), CUBLAS_OP_N, out, n, &kOne, dy, out, ctx().Ones(n), 1, &kZero,
                                       bias_grad_, 1));
    }
    // dx^T [in, batch] = W^T dy^T
    if (dx != nullptr) {
      TESSERA_CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &kOne, weight_, in, dy, out, &kZero,
                                       dx, in));
    }
  }

 private:
  int64_t in_, out_;
  bool has_bias_;
  const float* weight_ = nullptr;
  const float* bias_ = nullptr;
  float* weight_grad_ = nullptr;
  float* bias_grad_ = nullptr;
};

// FFT and Winograd convolutions trade accuracy for speed (errors around 1e-4
// relative where the direct and GEMM-based ones stay at float rounding).
bool Approximate(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool Approximate(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool Approximate(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// The first of cuDNN's heuristic choices (best first) that is deterministic,
// exact (no FFT or Winograd), plain FP32 and within the workspace limit;
// failing that, the conditions are dropped from the last.
template <typename Perf>
Perf PickAlgorithm(const Perf* perf, int count, const char* what) {
  for (int pass = 0; pass < 4; ++pass) {
    for (int i = 0; i < count; ++i) {
      const Perf& p = perf[i];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspaceBytes) continue;
      if (pass < 3 && p.determinism != CUDNN_DETERMINISTIC) continue;
      if (pass < 2 && Approximate(p.algo)) continue;
      if (pass < 1 && p.mathType != CUDNN_FMA_MATH) continue;
      return p;
    }
  }
  Fail(what, "no usable algorithm", __FILE__, __LINE__);
}

class CudaConv2d : public CudaLayer {
 public:
  CudaConv2d(const Layer& cpu, std::shared_ptr<CudaContext> context, const ConvGeometry& g)
      : CudaLayer(cpu, std::move(context)), g_(g) {
    TESSERA_CUDNN_CHECK(cudnnCreateFilterDescriptor(&filter_));
    TESSERA_CUDNN_CHECK(cudnnSetFilter4dDescriptor(filter_, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                   static_cast<int>(g.out_channels), static_cast<int>(g.in_channels),
                                                   static_cast<int>(g.kernel), static_cast<int>(g.kernel)));
    TESSERA_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv_));
    TESSERA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv_, static_cast<int>(g.padding), static_cast<int>(g.padding),
                                                        static_cast<int>(g.stride), static_cast<int>(g.stride), 1, 1,
                                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    TESSERA_CUDNN_CHECK(cudnnSetConvolutionMathType(conv_, CUDNN_FMA_MATH));
    bias_desc_.Set(1, g.out_channels, 1, 1);
  }
  ~CudaConv2d() override {
    cudnnDestroyConvolutionDescriptor(conv_);
    cudnnDestroyFilterDescriptor(filter_);
  }

  void Bind(const float* params, float* grads) override {
    const int64_t wsize = g_.out_channels * g_.in_channels * g_.kernel * g_.kernel;
    weight_ = params;
    weight_grad_ = grads;
    bias_ = g_.bias ? params + wsize : nullptr;
    bias_grad_ = g_.bias ? grads + wsize : nullptr;
  }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    if (batch == 0) return;
    const Plan& p = For(batch);
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &kOne, d.x.get(), x, filter_, weight_, conv_, p.fwd,
                                                ctx().Workspace(p.fwd_bytes), p.fwd_bytes, &kZero, d.y.get(), y));
    if (g_.bias) TESSERA_CUDNN_CHECK(cudnnAddTensor(cudnn(), &kOne, bias_desc_.get(), bias_, &kOne, d.y.get(), y));
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    if (batch == 0) {
      Zero(weight_grad_, g_.out_channels * g_.in_channels * g_.kernel * g_.kernel);
      if (g_.bias) Zero(bias_grad_, g_.out_channels);
      return;
    }
    const Plan& p = For(batch);
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &kOne, d.x.get(), x, d.y.get(), dy, conv_, p.filter,
                                                       ctx().Workspace(p.filter_bytes), p.filter_bytes, &kZero, filter_,
                                                       weight_grad_));
    if (g_.bias) {
      TESSERA_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn(), &kOne, d.y.get(), dy, &kZero, bias_desc_.get(), bias_grad_));
    }
    if (dx != nullptr) {
      TESSERA_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &kOne, filter_, weight_, d.y.get(), dy, conv_, p.data,
                                                       ctx().Workspace(p.data_bytes), p.data_bytes, &kZero, d.x.get(), dx));
    }
  }

 private:
  struct Plan {
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t data;
    cudnnConvolutionBwdFilterAlgo_t filter;
    size_t fwd_bytes = 0, data_bytes = 0, filter_bytes = 0;
  };

  const Plan& For(int64_t batch) {
    auto it = plans_.find(batch);
    if (it != plans_.end()) return it->second;
    const auto& d = Descs(batch);
    Plan p;
    int count = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), d.x.get(), filter_, conv_, d.y.get(),
                                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, fwd));
    const auto f = PickAlgorithm(fwd, count, "conv2d forward");
    p.fwd = f.algo;
    p.fwd_bytes = f.memory;
    cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), filter_, d.y.get(), conv_, d.x.get(),
                                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, data));
    const auto b = PickAlgorithm(data, count, "conv2d backward data");
    p.data = b.algo;
    p.data_bytes = b.memory;
    cudnnConvolutionBwdFilterAlgoPerf_t filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        cudnn(), d.x.get(), d.y.get(), conv_, filter_, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, filter));
    const auto w = PickAlgorithm(filter, count, "conv2d backward filter");
    p.filter = w.algo;
    p.filter_bytes = w.memory;
    // The heuristics' memory figures are estimates; ask for the exact sizes.
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn(), d.x.get(), filter_, conv_, d.y.get(), p.fwd,
                                                                &p.fwd_bytes));
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), filter_, d.y.get(), conv_, d.x.get(),
                                                                     p.data, &p.data_bytes));
    TESSERA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), d.x.get(), d.y.get(), conv_, filter_,
                                                                       p.filter, &p.filter_bytes));
    LOG(INFO) << "conv2d " << ShapeText(in_shape()) << " -> " << ShapeText(out_shape()) << ", batch " << batch
              << ": cuDNN algorithms forward " << p.fwd << ", backward data " << p.data << ", backward filter "
              << p.filter << "; workspace " << std::max({p.fwd_bytes, p.data_bytes, p.filter_bytes}) << " bytes";
    return plans_.emplace(batch, p).first->second;
  }

  ConvGeometry g_;
  cudnnFilterDescriptor_t filter_ = nullptr;
  cudnnConvolutionDescriptor_t conv_ = nullptr;
  TensorDesc bias_desc_;
  std::map<int64_t, Plan> plans_;
  const float* weight_ = nullptr;
  const float* bias_ = nullptr;
  float* weight_grad_ = nullptr;
  float* bias_grad_ = nullptr;
};

class CudaMaxPool2d : public CudaLayer {
 public:
  CudaMaxPool2d(const Layer& cpu, std::shared_ptr<CudaContext> context, int64_t kernel, int64_t stride)
      : CudaLayer(cpu, std::move(context)) {
    TESSERA_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool_));
    const int k = static_cast<int>(kernel), s = static_cast<int>(stride);
    TESSERA_CUDNN_CHECK(cudnnSetPooling2dDescriptor(pool_, CUDNN_POOLING_MAX_DETERMINISTIC, CUDNN_NOT_PROPAGATE_NAN, k,
                                                    k, 0, 0, s, s));
  }
  ~CudaMaxPool2d() override { cudnnDestroyPoolingDescriptor(pool_); }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    if (batch == 0) return;
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnPoolingForward(cudnn(), pool_, &kOne, d.x.get(), x, &kZero, d.y.get(), y));
  }

  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override {
    if (dx == nullptr || batch == 0) return;
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnPoolingBackward(cudnn(), pool_, &kOne, d.y.get(), y, d.y.get(), dy, d.x.get(), x, &kZero,
                                             d.x.get(), dx));
  }

 private:
  cudnnPoolingDescriptor_t pool_ = nullptr;
};

class CudaRelu : public CudaLayer {
 public:
  CudaRelu(const Layer& cpu, std::shared_ptr<CudaContext> context) : CudaLayer(cpu, std::move(context)) {
    TESSERA_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act_));
    TESSERA_CUDNN_CHECK(cudnnSetActivationDescriptor(act_, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  ~CudaRelu() override { cudnnDestroyActivationDescriptor(act_); }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    if (batch == 0) return;
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnActivationForward(cudnn(), act_, &kOne, d.x.get(), x, &kZero, d.y.get(), y));
  }

  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override {
    if (dx == nullptr || batch == 0) return;
    const auto& d = Descs(batch);
    TESSERA_CUDNN_CHECK(cudnnActivationBackward(cudnn(), act_, &kOne, d.y.get(), y, d.y.get(), dy, d.x.get(), x, &kZero,
                                                d.x.get(), dx));
  }

 private:
  cudnnActivationDescriptor_t act_ = nullptr;
};

class CudaFlatten : public CudaLayer {
 public:
  using CudaLayer::CudaLayer;
  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    Copy(y, x, batch * in_features());
  }
  void Backward(const float* /*x*/, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    if (dx != nullptr) Copy(dx, dy, batch * in_features());
  }
};

// The mask is recomputed from the seed in Backward rather than stored.
class CudaDropout : public CudaLayer {
 public:
  CudaDropout(const Layer& cpu, std::shared_ptr<CudaContext> context, float p)
      : CudaLayer(cpu, std::move(context)), p_(p), keep_(1.0f / (1.0f - p)) {}

  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override {
    const int64_t n = batch * in_features();
    masked_ = pass.training && p_ != 0.0f;
    seed_ = pass.seed;
    if (masked_) {
      TESSERA_CUDA_CHECK(LaunchDropout(x, y, n, seed_, p_, keep_, stream()));
    } else {
      Copy(y, x, n);
    }
  }

  void Backward(const float* /*x*/, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    if (dx == nullptr) return;
    const int64_t n = batch * in_features();
    if (masked_) {
      TESSERA_CUDA_CHECK(LaunchDropout(dy, dx, n, seed_, p_, keep_, stream()));
    } else {
      Copy(dx, dy, n);
    }
  }

 private:
  float p_, keep_;
  bool masked_ = false;
  uint64_t seed_ = 0;
};

// cuDNN's spatial batch norm (features are 1x1 images). The running
// statistics follow the CPU layer: a training Forward updates a copy of them
// (cuDNN keeps the unbiased variance, as PyTorch), and Backward writes that
// copy times the batch into their gradient slots.
class CudaBatchNorm : public CudaLayer {
 public:
  CudaBatchNorm(const Layer& cpu, std::shared_ptr<CudaContext> context, float momentum, float epsilon)
      : CudaLayer(cpu, std::move(context)), channels_(cpu.in_shape()[0]), momentum_(momentum), epsilon_(epsilon) {
    TensorDesc one;
    one.SetBatch(1, cpu.in_shape());
    TESSERA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&channel_desc_));
    TESSERA_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(channel_desc_, one.get(), CUDNN_BATCHNORM_SPATIAL));
    statistics_.Reserve(4 * channels_ * sizeof(float));  // saved mean, saved 1/stddev, running mean, running var
  }
  ~CudaBatchNorm() override { cudnnDestroyTensorDescriptor(channel_desc_); }

  void Bind(const float* params, float* grads) override {
    params_ = params;
    grads_ = grads;
  }

  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override {
    if (batch == 0) return;
    const auto& d = Descs(batch);
    const float* scale = params_;
    const float* shift = params_ + channels_;
    const float* running_mean = params_ + 2 * channels_;
    const float* running_var = params_ + 3 * channels_;
    if (!pass.training) {
      TESSERA_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
          cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.x.get(), x, d.y.get(), y, channel_desc_, scale, shift,
          running_mean, running_var, static_cast<double>(epsilon_)));
      return;
    }
    float* stats = statistics_.f();
    Copy(stats + 2 * channels_, running_mean, 2 * channels_);
    TESSERA_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
        cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, d.x.get(), x, d.y.get(), y, channel_desc_, scale, shift,
        static_cast<double>(momentum_), stats + 2 * channels_, stats + 3 * channels_, static_cast<double>(epsilon_),
        stats, stats + channels_));
    if (batch * (in_features() / channels_) == 1) {
      // One value per channel (a BatchNorm1d batch of one example): cuDNN's
      // unbiased variance 0 * 1 / (1 - 1) is not finite, where the CPU layer
      // takes the biased 0 (unbias factor 1), so the running variance
      // becomes (1 - momentum) * running_var. Overwrite cuDNN's.
      const float keep = static_cast<float>(1.0 - static_cast<double>(momentum_));
      Copy(stats + 3 * channels_, running_var, channels_);
      TESSERA_CUBLAS_CHECK(cublasSscal(cublas(), static_cast<int>(channels_), &keep, stats + 3 * channels_, 1));
    }
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    if (batch == 0) {
      Zero(grads_, 4 * channels_);
      return;
    }
    const auto& d = Descs(batch);
    // dx is needed for the parameter gradients too; scratch stands in for a first layer.
    float* diff_src = dx;
    if (diff_src == nullptr) {
      scratch_.Reserve(batch * in_features() * sizeof(float));
      diff_src = scratch_.f();
    }
    const float* stats = statistics_.f();
    TESSERA_CUDNN_CHECK(cudnnBatchNormalizationBackward(cudnn(), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero,
                                                        d.x.get(), x, d.y.get(), dy, d.x.get(), diff_src, channel_desc_,
                                                        params_, grads_, grads_ + channels_, static_cast<double>(epsilon_),
                                                        stats, stats + channels_));
    const int n = static_cast<int>(2 * channels_);
    const float examples = static_cast<float>(batch);
    TESSERA_CUBLAS_CHECK(cublasScopy(cublas(), n, stats + 2 * channels_, 1, grads_ + 2 * channels_, 1));
    TESSERA_CUBLAS_CHECK(cublasSscal(cublas(), n, &examples, grads_ + 2 * channels_, 1));
  }

 private:
  int64_t channels_;
  float momentum_, epsilon_;
  cudnnTensorDescriptor_t channel_desc_ = nullptr;
  DeviceBuffer statistics_, scratch_;
  const float* params_ = nullptr;
  float* grads_ = nullptr;
};

// Embedding: a gather in an own kernel. Backward scatters without atomics
// (whose order of additions varies from run to run): the input values, few
// next to dy, are read back to the host and grouped there by row (CSR: the
// distinct rows in increasing order, and for each the input positions that
// use it in increasing order), then one kernel thread per (row, k) adds up its
// dy elements in the CPU layer's order: only additions, in the same order, so
// the gradient is bitwise the CPU's.
class CudaEmbedding : public CudaLayer {
 public:
  CudaEmbedding(const Layer& cpu, std::shared_ptr<CudaContext> context, int64_t rows, int64_t dim)
      : CudaLayer(cpu, std::move(context)), rows_(rows), dim_(dim) {}
  // The host buffers may still be in an upload on the stream.
  ~CudaEmbedding() override { cudaStreamSynchronize(stream()); }

  void Bind(const float* params, float* grads) override {
    weight_ = params;
    weight_grad_ = grads;
  }

  void Forward(const float* x, int64_t batch, float* y, const Pass& /*pass*/) override {
    TESSERA_CUDA_CHECK(LaunchEmbeddingForward(x, batch * in_features(), weight_, rows_, static_cast<float>(rows_),
                                              dim_, y, stream()));
  }

  void Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) override {
    const int64_t n = batch * in_features();
    // The whole table, where the CPU layer zeroes only the rows it last
    // wrote: on the device that is one cheap memset (and the model copies
    // the whole gradient back anyway).
    Zero(weight_grad_, rows_ * dim_);
    if (dx != nullptr) Zero(dx, n);  // ids have no gradient
    if (n == 0) return;

    // The ids, on the host. Waiting for the stream here also means the
    // previous Backward's upload from host_csr_ is done before it is rewritten.
    host_x_.Reserve(n * sizeof(float));
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(host_x_.as<float>(), x, n * sizeof(float), cudaMemcpyDeviceToHost, stream()));
    ctx().Synchronize();
    const float* values = host_x_.as<float>();
    uses_.clear();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = EmbeddingId(values[i], rows_);  // the CPU layer's ids, invalid ones left out
      if (id >= 0) uses_.push_back({id, i});
    }
    if (uses_.empty()) return;
    // By row, then by position: every pair is distinct, so the order is unique.
    std::sort(uses_.begin(), uses_.end());

    // One upload, laid out as rows [count], starts [count + 1], positions
    // [uses]; count <= uses <= n, so 3n + 1 entries always suffice.
    const int64_t used = static_cast<int64_t>(uses_.size());
    int64_t count = 1;
    for (int64_t u = 1; u < used; ++u) count += uses_[u].first != uses_[u - 1].first ? 1 : 0;
    const size_t bytes = (2 * count + 1 + used) * sizeof(int64_t);
    host_csr_.Reserve((3 * n + 1) * sizeof(int64_t));
    csr_.Reserve((3 * n + 1) * sizeof(int64_t));
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
      positions[u] = uses_[u].second * dim_;  // input i's dy floats start there
    }
    starts[count] = used;
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(csr_.get(), host_csr_.as<int64_t>(), bytes, cudaMemcpyHostToDevice, stream()));
    const int64_t* device_rows = csr_.as<int64_t>();
    TESSERA_CUDA_CHECK(LaunchEmbeddingBackward(dy, device_rows, device_rows + count, device_rows + 2 * count + 1, count,
                                               dim_, weight_grad_, stream()));
  }

 private:
  int64_t rows_, dim_;
  const float* weight_ = nullptr;
  float* weight_grad_ = nullptr;
  // Backward's scratch, grown only: the ids on the host, (row, position)
  // pairs, and the CSR lists on the host (pinned) and on the device.
  PinnedBuffer host_x_, host_csr_;
  std::vector<std::pair<int64_t, int64_t>> uses_;
  DeviceBuffer csr_;
};

}  // namespace

StatusOr<std::unique_ptr<Layer>> CreateCudaLayer(const proto::LayerSpec& spec, const Shape& in_shape,
                                                 std::shared_ptr<CudaContext> context) {
  // The CPU layer checks the spec and gives the shapes and parameters.
  ASSIGN_OR_RETURN(std::unique_ptr<Layer> cpu, CreateLayer(spec, in_shape));
  switch (spec.kind_case()) {
    case proto::LayerSpec::kLinear:
      return std::unique_ptr<Layer>(new CudaLinear(*cpu, std::move(context), spec.linear().bias()));
    case proto::LayerSpec::kRelu:
      return std::unique_ptr<Layer>(new CudaRelu(*cpu, std::move(context)));
    case proto::LayerSpec::kConv2D:
      return std::unique_ptr<Layer>(new CudaConv2d(*cpu, std::move(context), ConvGeometryOf(spec.conv2d(), in_shape)));
    case proto::LayerSpec::kMaxPool2D: {
      const int64_t kernel = spec.max_pool2d().kernel_size();
      const int64_t stride = spec.max_pool2d().stride() == 0 ? kernel : spec.max_pool2d().stride();
      return std::unique_ptr<Layer>(new CudaMaxPool2d(*cpu, std::move(context), kernel, stride));
    }
    case proto::LayerSpec::kFlatten:
      return std::unique_ptr<Layer>(new CudaFlatten(*cpu, std::move(context)));
    case proto::LayerSpec::kDropout:
      return std::unique_ptr<Layer>(new CudaDropout(*cpu, std::move(context), spec.dropout().p()));
    case proto::LayerSpec::kBatchNorm:
      return std::unique_ptr<Layer>(
          new CudaBatchNorm(*cpu, std::move(context), spec.batch_norm().momentum(), spec.batch_norm().epsilon()));
    case proto::LayerSpec::kEmbedding:
      return std::unique_ptr<Layer>(new CudaEmbedding(*cpu, std::move(context), spec.embedding().num_embeddings(),
                                                      spec.embedding().embedding_dim()));
    case proto::LayerSpec::kColumnEmbedding:  // CreateLayer refused it: CreateCudaColumnEmbedding makes it
    case proto::LayerSpec::kSparseLinear:     // CPU only: Model::Create refuses it on CUDA
    case proto::LayerSpec::kSparseEmbedding:  // CPU only: Model::Create refuses it on CUDA
    case proto::LayerSpec::kDotInteraction:   // CPU only: Model::Create refuses it on CUDA
    case proto::LayerSpec::KIND_NOT_SET:
      break;
  }
  return InternalError("no CUDA twin for layer " + cpu->type());
}

void SoftmaxCrossEntropy(CudaContext& context, const float* logits, const float* labels, int64_t batch,
                         int64_t classes, float* logp, float* losses, int32_t* correct, float* dlogits) {
  if (batch == 0) return;
  TensorDesc d;
  d.Set(batch, classes, 1, 1);
  TESSERA_CUDNN_CHECK(cudnnSoftmaxForward(context.cudnn(), CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &kOne, d.get(),
                                          logits, &kZero, d.get(), logp));
  TESSERA_CUDA_CHECK(LaunchSoftmaxCrossEntropy(logits, logp, labels, batch, static_cast<int>(classes), losses, correct,
                                               dlogits, context.stream()));
}

void ComputeLoss(CudaContext& context, proto::Loss loss, const float* logits, const float* labels, int64_t batch,
                 int64_t outputs, float* logp, float* losses, int32_t* correct, float* dlogits) {
  switch (loss) {
    case proto::SIGMOID_BINARY_CROSS_ENTROPY:
      TESSERA_CUDA_CHECK(
          LaunchSigmoidBinaryCrossEntropy(logits, labels, batch, losses, correct, dlogits, context.stream()));
      return;
    case proto::MEAN_SQUARED_ERROR:
      TESSERA_CUDA_CHECK(LaunchMeanSquaredError(logits, labels, batch, losses, correct, dlogits, context.stream()));
      return;
    default:
      SoftmaxCrossEntropy(context, logits, labels, batch, outputs, logp, losses, correct, dlogits);
  }
}

}  // namespace tessera::cuda
