// The CUDA layers against their CPU twins: for every layer, outputs and
// gradients on random inputs agree within float rounding (dropout's masks
// bitwise), numerical gradient checks on the GPU, and a few training steps of
// small CNNs from the same seed agree across devices. Tests that need a GPU
// skip, saying why, in a build without CUDA or on a machine without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "models/column_embedding.h"
#include "models/device.h"
#include "models/embedding.h"
#include "models/layer.h"
#include "models/model.h"
#include "models/softmax_cross_entropy.h"
#include "models/sparse_embedding.h"
#include "tests/gradient_check.h"
#include "tests/test_util.h"

#ifdef TESSERA_WITH_CUDA
#include "models/cuda/cuda_column_embedding.h"
#include "models/cuda/cuda_context.h"
#include "models/cuda/cuda_layers.h"
#include "models/cuda/cuda_sparse_embedding.h"
#endif

namespace tessera {
namespace {

using ::testing::HasSubstr;

// Skips the calling test where there is no GPU to run it on.
#define REQUIRE_CUDA()                                              \
  do {                                                              \
    std::string why;                                                \
    if (!CudaAvailable(&why)) GTEST_SKIP() << "needs a CUDA GPU: " << why; \
  } while (0)

TEST(CudaDeviceTest, ResolveDevice) {
  EXPECT_EQ(*ResolveDevice("cpu"), Device::kCpu);
  std::string why;
  const bool available = CudaAvailable(&why);
  EXPECT_EQ(why.empty(), available);
  EXPECT_EQ(*ResolveDevice("auto"), available ? Device::kCuda : Device::kCpu);
  auto cuda = ResolveDevice("cuda");
  if (available) {
    EXPECT_EQ(*cuda, Device::kCuda);
  } else {
    EXPECT_EQ(cuda.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(cuda.status().message(), HasSubstr("--device=cuda: " + why));
  }
  EXPECT_THAT(ResolveDevice("gpu").status().message(), HasSubstr("--device must be auto, cpu or cuda, got 'gpu'"));
  if (!CudaBuilt()) {
    EXPECT_THAT(why, HasSubstr("no CUDA support"));
  }
}

TEST(CudaDeviceTest, DeviceFlag) {
  CommandResult bad = RunTessera({"worker", "--scheduler", "127.0.0.1:1", "--device", "gpu"}, 60);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.output, HasSubstr("tessera worker: --device must be auto, cpu or cuda, got 'gpu'"));
  std::string why;
  if (!CudaAvailable(&why)) {
    // One line and exit 2, before any process starts.
    CommandResult cuda = RunTessera({"train", TESSERA_SOURCE_DIR "/examples/fmnist-mlp.pbtxt", "--device", "cuda",
                                     "--run_dir", MakeTempDir("device") + "/run"},
                                    60);
    EXPECT_EQ(cuda.exit_code, 2);
    EXPECT_THAT(cuda.output, HasSubstr("tessera train: --device=cuda: " + why));
  }
}

proto::ModelSpec TinyMlp() {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(4);
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_linear()->set_out_features(3);
  return spec;
}

TEST(CudaDeviceTest, CudaModelWithoutGpuIsAnError) {
  std::string why;
  auto model = Model::Create(TinyMlp(), Shape{5}, 3, Device::kCuda);
  if (CudaAvailable(&why)) {
    ASSERT_OK(model.status());
    EXPECT_EQ((*model)->device(), Device::kCuda);
  } else {
    ASSERT_FALSE(model.ok());
    EXPECT_THAT(model.status().message(), HasSubstr(why));
  }
}

// embedding [rows, dim] -> flatten -> linear(3): ids in, as the first layer.
proto::ModelSpec EmbeddingMlp(int rows, int dim, bool sparse_gradients) {
  proto::ModelSpec spec;
  proto::EmbeddingSpec* e = spec.add_layer()->mutable_embedding();
  e->set_num_embeddings(rows);
  e->set_embedding_dim(dim);
  e->set_sparse_gradients(sparse_gradients);
  spec.add_layer()->mutable_flatten();
  spec.add_layer()->mutable_linear()->set_out_features(3);
  return spec;
}

// An embedding first layer runs on CUDA too: where there is a GPU, the model
// is created; without one, the error is the missing GPU, not the layer.
TEST(CudaDeviceTest, CudaModelTakesAnEmbedding) {
  std::string why;
  for (bool sparse : {false, true}) {
    auto model = Model::Create(EmbeddingMlp(10, 4, sparse), Shape{6}, 3, Device::kCuda);
    if (CudaAvailable(&why)) {
      ASSERT_OK(model.status());
      EXPECT_EQ((*model)->device(), Device::kCuda);
      EXPECT_EQ((*model)->num_keys(), 10u * 4 + 6 * 4 * 3 + 3);
      EXPECT_EQ((*model)->sparse_tensors().size(), sparse ? 1u : 0u);
    } else {
      ASSERT_FALSE(model.ok());
      EXPECT_THAT(model.status().message(), HasSubstr(why));
      EXPECT_THAT(model.status().message(), ::testing::Not(HasSubstr("embedding")));
    }
  }
}

#ifdef TESSERA_WITH_CUDA

// |cuda - cpu| <= tol * (1 + |cpu|) everywhere; reports the worst element.
void ExpectClose(const std::vector<float>& cpu, const std::vector<float>& cuda, double tol, const std::string& what) {
  ASSERT_EQ(cpu.size(), cuda.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    const double err = std::fabs(static_cast<double>(cuda[i]) - cpu[i]) / (1.0 + std::fabs(cpu[i]));
    if (!(err <= worst)) {  // NaN counts as worst
      worst = err;
      at = i;
    }
  }
  EXPECT_LE(worst, tol) << what << ": element " << at << " cpu " << cpu[at] << " cuda " << cuda[at];
}

int64_t ParamCount(const Layer& layer) {
  int64_t n = 0;
  for (const ParamShape& p : layer.param_shapes()) n += NumElements(p.shape);
  return n;
}

// A CUDA layer driven with host vectors: every call uploads its inputs and
// downloads its results.
class CudaRunner {
 public:
  using MakeLayer = std::function<std::unique_ptr<Layer>(std::shared_ptr<cuda::CudaContext>)>;
  CudaRunner(const proto::LayerSpec& spec, const Shape& in_shape)
      : CudaRunner([&](std::shared_ptr<cuda::CudaContext> context) -> std::unique_ptr<Layer> {
          auto layer = cuda::CreateCudaLayer(spec, in_shape, std::move(context));
          EXPECT_TRUE(layer.ok()) << layer.status().ToString();
          return layer.ok() ? std::move(layer).value() : nullptr;
        }) {}
  // A layer CreateCudaLayer does not make (a column_embedding needs the table's columns).
  explicit CudaRunner(const MakeLayer& make) {
    auto context = cuda::CudaContext::Create();
    EXPECT_TRUE(context.ok()) << context.status().ToString();
    context_ = *context;
    layer_ = make(context_);
    nparams_ = ParamCount(*layer_);
    params_.Reserve(std::max<int64_t>(nparams_, 1) * sizeof(float));
    grads_.Reserve(std::max<int64_t>(nparams_, 1) * sizeof(float));
    layer_->Bind(params_.f(), grads_.f());
  }
  Layer& layer() { return *layer_; }

  std::vector<float> Forward(const std::vector<float>& params, const std::vector<float>& x, int64_t batch,
                             const Pass& pass) {
    batch_ = batch;
    context_->Upload(params.data(), params.size(), params_.f());
    x_.Reserve(std::max<size_t>(x.size(), 1) * sizeof(float));
    context_->Upload(x.data(), x.size(), x_.f());
    const size_t ny = batch * layer_->out_features();
    y_.Reserve(std::max<size_t>(ny, 1) * sizeof(float));
    layer_->Forward(x_.f(), batch, y_.f(), pass);
    return context_->Download(y_.f(), ny);
  }

  // After Forward: *grads and, when dx is not null, *dx for dL/dy = dy.
  void Backward(const std::vector<float>& dy, std::vector<float>* grads, std::vector<float>* dx) {
    dy_.Reserve(std::max<size_t>(dy.size(), 1) * sizeof(float));
    context_->Upload(dy.data(), dy.size(), dy_.f());
    const size_t nx = batch_ * layer_->in_features();
    dx_.Reserve(std::max<size_t>(nx, 1) * sizeof(float));
    // Garbage in the gradients: Backward must overwrite them.
    const std::vector<float> garbage(nparams_, 1e6f);
    context_->Upload(garbage.data(), garbage.size(), grads_.f());
    layer_->Backward(x_.f(), y_.f(), dy_.f(), batch_, dx != nullptr ? dx_.f() : nullptr);
    *grads = context_->Download(grads_.f(), nparams_);
    if (dx != nullptr) *dx = context_->Download(dx_.f(), nx);
  }

 private:
  std::shared_ptr<cuda::CudaContext> context_;
  std::unique_ptr<Layer> layer_;
  int64_t nparams_ = 0, batch_ = 0;
  cuda::DeviceBuffer params_, grads_, x_, y_, dy_, dx_;
};

struct LayerCase {
  std::string name;
  proto::LayerSpec spec;
  Shape in_shape;
  int64_t batch = 3;
  bool distinct = false;  // inputs without near ties (max pooling)
  float lo = -1.0f, hi = 1.0f;
};

LayerCase Linear(int64_t out, bool bias, Shape in) {
  LayerCase c{"linear", {}, std::move(in)};
  c.spec.mutable_linear()->set_out_features(out);
  c.spec.mutable_linear()->set_bias(bias);
  return c;
}

LayerCase Conv(Shape in, int64_t oc, int64_t k, int64_t stride, int64_t pad, bool bias) {
  LayerCase c{"conv2d", {}, std::move(in)};
  proto::Conv2dSpec* s = c.spec.mutable_conv2d();
  s->set_out_channels(oc);
  s->set_kernel_size(k);
  s->set_stride(stride);
  s->set_padding(pad);
  s->set_bias(bias);
  return c;
}

LayerCase Pool(Shape in, int64_t k, int64_t stride) {
  LayerCase c{"max_pool2d", {}, std::move(in)};
  c.spec.mutable_max_pool2d()->set_kernel_size(k);
  c.spec.mutable_max_pool2d()->set_stride(stride);
  c.distinct = true;
  return c;
}

LayerCase BatchNorm(Shape in, int64_t batch) {
  LayerCase c{"batch_norm", {}, std::move(in), batch};
  c.spec.mutable_batch_norm()->set_momentum(0.25f);
  c.lo = -2.0f;
  c.hi = 2.0f;
  return c;
}

std::vector<LayerCase> AllLayers() {
  std::vector<LayerCase> cases;
  cases.push_back(Linear(7, true, {3, 4, 5}));
  cases.push_back(Linear(4, false, {6}));
  cases.push_back(Conv({1, 28, 28}, 32, 5, 1, 2, true));
  cases.push_back(Conv({3, 9, 7}, 4, 3, 2, 1, false));
  cases.push_back(Conv({2, 5, 5}, 3, 5, 1, 0, true));
  cases.push_back(Pool({2, 6, 7}, 2, 0));
  cases.push_back(Pool({1, 5, 5}, 3, 1));
  LayerCase relu{"relu", {}, {2, 3, 4}};
  relu.spec.mutable_relu();
  cases.push_back(relu);
  LayerCase flatten{"flatten", {}, {2, 3, 4}};
  flatten.spec.mutable_flatten();
  cases.push_back(flatten);
  LayerCase dropout{"dropout", {}, {5, 7}, 4};
  dropout.spec.mutable_dropout()->set_p(0.3f);
  cases.push_back(dropout);
  cases.push_back(BatchNorm({3, 4, 5}, 4));
  cases.push_back(BatchNorm({6}, 8));
  // One example of BatchNorm1d: one value per channel, whose unbiased
  // variance (cuDNN's running-variance update) is 0/0; the CPU's running
  // variance is (1 - momentum) * running_var. Small inputs: y = x * a + b
  // with a = scale / sqrt(epsilon) on the CPU rounds by ulp(x * a).
  LayerCase single = BatchNorm({6}, 1);
  single.lo = -0.5f;
  single.hi = 0.5f;
  cases.push_back(single);
  return cases;
}

std::vector<float> Inputs(const LayerCase& c, std::mt19937& rng, int64_t features) {
  return c.distinct ? DistinctVector(rng, c.batch * features) : RandomVector(rng, c.batch * features, c.lo, c.hi);
}

TEST(CudaLayersTest, OutputsAndGradientsMatchTheCpu) {
  REQUIRE_CUDA();
  for (const LayerCase& c : AllLayers()) {
    SCOPED_TRACE(c.name + " on " + ShapeText(c.in_shape));
    auto cpu_layer = CreateLayer(c.spec, c.in_shape);
    ASSERT_OK(cpu_layer.status());
    Layer& cpu = **cpu_layer;
    CudaRunner gpu(c.spec, c.in_shape);
    ASSERT_EQ(gpu.layer().type(), cpu.type());
    ASSERT_EQ(gpu.layer().out_shape(), cpu.out_shape());
    ASSERT_EQ(gpu.layer().param_shapes().size(), cpu.param_shapes().size());

    std::mt19937 rng(17);
    const int64_t nparams = ParamCount(cpu);
    std::vector<float> params = RandomVector(rng, nparams, 0.5f, 1.5f);
    std::vector<float> cpu_grads(nparams, 1e6f);
    cpu.Bind(params.data(), cpu_grads.data());
    const std::vector<float> x = Inputs(c, rng, cpu.in_features());
    const std::vector<float> dy = RandomVector(rng, c.batch * cpu.out_features());
    // Training pass.
    const Pass pass{true, 1234};
    std::vector<float> cpu_y(c.batch * cpu.out_features());
    cpu.Forward(x.data(), c.batch, cpu_y.data(), pass);
    const std::vector<float> gpu_y = gpu.Forward(params, x, c.batch, pass);
    std::vector<float> cpu_dx(x.size());
    cpu.Backward(x.data(), cpu_y.data(), dy.data(), c.batch, cpu_dx.data());
    std::vector<float> gpu_grads, gpu_dx;
    gpu.Backward(dy, &gpu_grads, &gpu_dx);
    if (c.name == "dropout" || c.name == "flatten") {
      EXPECT_EQ(gpu_y, cpu_y);  // the same mask, bitwise
      EXPECT_EQ(gpu_dx, cpu_dx);
    }
    const double tol = c.name == "batch_norm" ? 1e-4 : 2e-5;
    ExpectClose(cpu_y, gpu_y, tol, "y");
    ExpectClose(cpu_grads, gpu_grads, tol, "parameter gradients");
    ExpectClose(cpu_dx, gpu_dx, tol, "dx");
    // Without dx (a first layer), the parameter gradients are the same.
    std::vector<float> first_layer_grads;
    gpu.Forward(params, x, c.batch, pass);
    gpu.Backward(dy, &first_layer_grads, nullptr);
    ExpectClose(cpu_grads, first_layer_grads, tol, "parameter gradients without dx");
    // Evaluation pass (dropout off, batch norm on the running statistics).
    cpu.Forward(x.data(), c.batch, cpu_y.data(), Pass{false, 0});
    ExpectClose(cpu_y, gpu.Forward(params, x, c.batch, Pass{false, 0}), tol, "evaluation y");
  }
}

TEST(CudaLayersTest, DropoutMasksFollowTheSeed) {
  REQUIRE_CUDA();
  proto::LayerSpec spec;
  spec.mutable_dropout()->set_p(0.3f);
  CudaRunner gpu(spec, {100, 100});
  const std::vector<float> x(10000, 2.0f);
  const std::vector<float> y5 = gpu.Forward({}, x, 1, Pass{true, 5});
  const int64_t zeros = std::count(y5.begin(), y5.end(), 0.0f);
  EXPECT_NEAR(static_cast<double>(zeros) / 10000, 0.3, 0.03);
  EXPECT_EQ(gpu.Forward({}, x, 1, Pass{true, 5}), y5);
  EXPECT_NE(gpu.Forward({}, x, 1, Pass{true, 6}), y5);
  EXPECT_EQ(gpu.Forward({}, x, 1, Pass{false, 6}), x);
}

// n embedding inputs for a table of `rows`: near-integer ids in [-1, rows]
// (so repeats, rounding, and the invalid -1 and rows), led by `fixed`.
std::vector<float> EmbeddingInputs(std::mt19937& rng, int64_t n, int rows, const std::vector<float>& fixed = {}) {
  std::uniform_int_distribution<int> id(-1, rows);
  std::uniform_real_distribution<float> jitter(-0.3f, 0.3f);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = i < static_cast<int64_t>(fixed.size()) ? fixed[i] : static_cast<float>(id(rng)) + jitter(rng);
  }
  return x;
}

// Gather and scatter are exact on both devices (and the scatter adds in the
// same order), so the CUDA layer is bitwise the CPU's, over batches that
// grow, shrink and are empty; the CPU layer's gradient buffer carries the
// rows it zeroes from one step to the next, the CUDA one starts from garbage.
TEST(CudaLayersTest, EmbeddingMatchesTheCpuBitwise) {
  REQUIRE_CUDA();
  const int rows = 7, dim = 5;
  proto::LayerSpec spec;
  spec.mutable_embedding()->set_num_embeddings(rows);
  spec.mutable_embedding()->set_embedding_dim(dim);
  const Shape in_shape{2, 3};
  auto cpu_layer = CreateLayer(spec, in_shape);
  ASSERT_OK(cpu_layer.status());
  Layer& cpu = **cpu_layer;
  CudaRunner gpu(spec, in_shape);
  ASSERT_EQ(gpu.layer().type(), "embedding");
  ASSERT_EQ(gpu.layer().out_shape(), (Shape{2, 3, dim}));
  ASSERT_EQ(ParamCount(gpu.layer()), rows * dim);

  std::mt19937 rng(31);
  const std::vector<float> params = RandomVector(rng, rows * dim);
  std::vector<float> cpu_grads(rows * dim, 1e6f);
  cpu.Bind(params.data(), cpu_grads.data());
  // The first batch (3 examples of 6 values) is every special case: repeats
  // (3 three times, 0 twice), rounding (3.2 and 2.9 -> 3, -0.4 -> -0 -> 0,
  // ties to even: 2.5 -> 2, 6.5 -> 6), and invalid ids (7, -1, 6.6 -> 7,
  // -0.6 -> -1, NaN, infinity, 1e9).
  const std::vector<float> special = {3.0f, 0.0f, 3.2f, 2.5f, 6.5f, -0.4f, 7.0f, -1.0f, 6.6f, -0.6f,
                                      std::nanf(""), INFINITY, 1e9f, 2.9f, 1.0f, 4.0f, 5.0f, 4.4f};
  int step = 0;
  for (int64_t batch : {3, 5, 1, 0, 4, 2}) {
    SCOPED_TRACE("step " + std::to_string(step) + ", batch " + std::to_string(batch));
    const int64_t n = batch * cpu.in_features();
    const std::vector<float> x = EmbeddingInputs(rng, n, rows, step == 0 ? special : std::vector<float>{});
    const std::vector<float> dy = RandomVector(rng, n * dim);
    const Pass pass{true, 77};
    std::vector<float> cpu_y(n * dim, 1e6f);
    cpu.Forward(x.data(), batch, cpu_y.data(), pass);
    EXPECT_EQ(gpu.Forward(params, x, batch, pass), cpu_y);
    std::vector<float> cpu_dx(n, 1e6f);
    cpu.Backward(x.data(), cpu_y.data(), dy.data(), batch, cpu_dx.data());
    std::vector<float> gpu_grads, gpu_dx;
    gpu.Backward(dy, &gpu_grads, &gpu_dx);
    EXPECT_EQ(gpu_grads, cpu_grads);
    EXPECT_EQ(gpu_dx, std::vector<float>(n, 0.0f));
    // Rows no valid id used have a zero gradient (not the runner's garbage).
    const std::vector<int64_t> used = DistinctEmbeddingIds(x.data(), n, rows);
    for (int64_t r = 0; r < rows; ++r) {
      if (std::find(used.begin(), used.end(), r) != used.end()) continue;
      for (int64_t k = 0; k < dim; ++k) EXPECT_EQ(gpu_grads[r * dim + k], 0.0f) << "row " << r;
    }
    if (step == 0) {
      // Independent of the CPU layer: row 3 is dy[0] + dy[2] + dy[13] (3.0, 3.2, 2.9), in that order;
      // row 0 is dy[1] + dy[5]; the invalid ids' output rows are zero.
      for (int64_t k = 0; k < dim; ++k) {
        EXPECT_EQ(gpu_grads[3 * dim + k], (0.0f + dy[0 * dim + k] + dy[2 * dim + k]) + dy[13 * dim + k]);
        EXPECT_EQ(gpu_grads[0 * dim + k], (0.0f + dy[1 * dim + k]) + dy[5 * dim + k]);
        EXPECT_EQ(cpu_y[3 * dim + k], params[2 * dim + k]);
        EXPECT_EQ(cpu_y[4 * dim + k], params[6 * dim + k]);
        for (int64_t i = 6; i <= 12; ++i) EXPECT_EQ(cpu_y[i * dim + k], 0.0f) << "input " << i;
      }
    }
    // As a first layer (no dx): the same gradients.
    std::vector<float> first_layer_grads;
    gpu.Forward(params, x, batch, pass);
    gpu.Backward(dy, &first_layer_grads, nullptr);
    EXPECT_EQ(first_layer_grads, cpu_grads);
    // Evaluation pass: the same lookup.
    EXPECT_EQ(gpu.Forward(params, x, batch, Pass{false, 0}), cpu_y);
    ++step;
  }
}

// ColumnEmbedding's twin: copies and gathers are exact, and its scatter adds
// each row's dy in the CPU layer's order, so outputs, gradients and dx
// (numbers: dy passed through; ids: zero) are bitwise the CPU's, invalid ids
// (out of their column's range, NaN) included.
TEST(CudaLayersTest, ColumnEmbeddingMatchesTheCpuBitwise) {
  REQUIRE_CUDA();
  const std::vector<int64_t> rows = {4, 7, 3};
  const int64_t dim = 5, numeric = 2, features = numeric + 3;
  proto::ColumnEmbeddingSpec spec;
  spec.set_embedding_dim(dim);
  auto cpu_layer = CreateColumnEmbedding(spec, Shape{features}, rows);
  ASSERT_OK(cpu_layer.status());
  const auto& cpu = static_cast<const ColumnEmbedding&>(**cpu_layer);
  CudaRunner gpu([&](std::shared_ptr<cuda::CudaContext> context) {
    return cuda::CreateCudaColumnEmbedding(cpu, std::move(context));
  });
  ASSERT_EQ(gpu.layer().type(), "column_embedding");
  ASSERT_EQ(gpu.layer().out_shape(), (Shape{numeric + 3 * dim}));
  const int64_t total_rows = 4 + 7 + 3;
  std::mt19937 rng(41);
  const std::vector<float> params = RandomVector(rng, total_rows * dim);
  std::vector<float> cpu_grads(total_rows * dim, 1e6f);
  (*cpu_layer)->Bind(params.data(), cpu_grads.data());
  for (int64_t batch : {6, 1, 0, 9}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    std::vector<float> x = RandomVector(rng, batch * features);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t c = 0; c < 3; ++c) {
        // Ids in [-1, rows] with jitter: repeats, rounding and invalid ones.
        x[b * features + numeric + c] = static_cast<float>(static_cast<int64_t>(rng() % (rows[c] + 2)) - 1) +
                                        0.3f * (RandomVector(rng, 1)[0]);
      }
    }
    if (batch > 0) x[numeric] = std::nanf("");
    const int64_t ny = batch * (numeric + 3 * dim);
    const std::vector<float> dy = RandomVector(rng, ny);
    std::vector<float> cpu_y(ny, 1e6f);
    (*cpu_layer)->Forward(x.data(), batch, cpu_y.data(), Pass{});
    EXPECT_EQ(gpu.Forward(params, x, batch, Pass{}), cpu_y);
    std::vector<float> cpu_dx(batch * features, 1e6f);
    (*cpu_layer)->Backward(x.data(), cpu_y.data(), dy.data(), batch, cpu_dx.data());
    std::vector<float> gpu_grads, gpu_dx;
    gpu.Backward(dy, &gpu_grads, &gpu_dx);
    EXPECT_EQ(gpu_grads, cpu_grads);
    EXPECT_EQ(gpu_dx, cpu_dx);
  }
}

// Many uses of few rows in a larger batch (long position lists, a grid-stride
// loop over more elements than one block has threads): still bitwise.
TEST(CudaLayersTest, EmbeddingWithManyRepeatsMatchesTheCpuBitwise) {
  REQUIRE_CUDA();
  const int rows = 3, dim = 70;
  proto::LayerSpec spec;
  spec.mutable_embedding()->set_num_embeddings(rows);
  spec.mutable_embedding()->set_embedding_dim(dim);
  const Shape in_shape{50};
  auto cpu_layer = CreateLayer(spec, in_shape);
  ASSERT_OK(cpu_layer.status());
  Layer& cpu = **cpu_layer;
  CudaRunner gpu(spec, in_shape);
  std::mt19937 rng(37);
  const std::vector<float> params = RandomVector(rng, rows * dim);
  std::vector<float> cpu_grads(rows * dim, 1e6f);
  cpu.Bind(params.data(), cpu_grads.data());
  for (int64_t batch : {64, 17}) {
    SCOPED_TRACE(batch);
    const int64_t n = batch * cpu.in_features();
    const std::vector<float> x = EmbeddingInputs(rng, n, rows);
    const std::vector<float> dy = RandomVector(rng, n * dim);
    std::vector<float> cpu_y(n * dim);
    cpu.Forward(x.data(), batch, cpu_y.data(), Pass{true, 1});
    EXPECT_EQ(gpu.Forward(params, x, batch, Pass{true, 1}), cpu_y);
    cpu.Backward(x.data(), cpu_y.data(), dy.data(), batch, nullptr);
    std::vector<float> gpu_grads;
    gpu.Backward(dy, &gpu_grads, nullptr);
    EXPECT_EQ(gpu_grads, cpu_grads);
  }
}


// Small geometries: every parameter and input is perturbed.
std::vector<LayerCase> GradientCases() {
  std::vector<LayerCase> cases;
  cases.push_back(Linear(4, true, {5}));
  cases.push_back(Conv({2, 6, 5}, 3, 3, 1, 1, true));
  cases.push_back(Conv({1, 7, 7}, 2, 3, 2, 0, false));
  cases.push_back(Pool({2, 6, 7}, 2, 2));
  cases.push_back(Pool({1, 5, 5}, 3, 1));
  LayerCase relu{"relu", {}, {2, 3, 4}};
  relu.spec.mutable_relu();
  cases.push_back(relu);
  LayerCase flatten{"flatten", {}, {2, 2, 2}};
  flatten.spec.mutable_flatten();
  cases.push_back(flatten);
  LayerCase dropout{"dropout", {}, {6}, 2};
  dropout.spec.mutable_dropout()->set_p(0.5f);
  cases.push_back(dropout);
  cases.push_back(BatchNorm({3, 4, 5}, 4));
  cases.push_back(BatchNorm({6}, 8));
  for (LayerCase& c : cases) c.batch = std::min<int64_t>(c.batch, c.name == "batch_norm" ? c.batch : 2);
  return cases;
}

TEST(CudaLayersTest, NumericalGradients) {
  REQUIRE_CUDA();
  for (const LayerCase& c : GradientCases()) {
    SCOPED_TRACE(c.name + " on " + ShapeText(c.in_shape));
    CudaRunner gpu(c.spec, c.in_shape);
    Layer& layer = gpu.layer();
    std::mt19937 rng(23);
    std::vector<std::pair<int64_t, int64_t>> trainable;
    int64_t nparams = 0;
    for (const ParamShape& p : layer.param_shapes()) {
      if (p.trainable) trainable.push_back({nparams, nparams + NumElements(p.shape)});
      nparams += NumElements(p.shape);
    }
    std::vector<float> params = RandomVector(rng, nparams, 0.5f, 1.5f);
    std::vector<float> x = Inputs(c, rng, layer.in_features());
    // Relu: keep inputs away from the kink.
    if (c.name == "relu") {
      for (float& v : x) v = v < 0 ? v - 0.1f : v + 0.1f;
    }
    const std::vector<float> r = RandomVector(rng, c.batch * layer.out_features());
    const Pass pass{true, 42};
    gpu.Forward(params, x, c.batch, pass);
    std::vector<float> grads, dx;
    gpu.Backward(r, &grads, &dx);
    auto loss = [&] { return Weighted(gpu.Forward(params, x, c.batch, pass), r); };
    for (const auto& [begin, end] : trainable) {
      for (int64_t k = begin; k < end; ++k) {
        ExpectGradNear(grads[k], Numeric(&params[k], loss), "param[" + std::to_string(k) + "]");
      }
    }
    for (size_t k = 0; k < x.size(); ++k) ExpectGradNear(dx[k], Numeric(&x[k], loss), "dx[" + std::to_string(k) + "]");
  }
}

TEST(CudaLayersTest, SoftmaxCrossEntropyMatchesTheCpu) {
  REQUIRE_CUDA();
  auto context = cuda::CudaContext::Create();
  ASSERT_OK(context.status());
  cuda::CudaContext& c = **context;
  const int64_t batch = 6, classes = 10;
  std::mt19937 rng(5);
  std::vector<float> logits = RandomVector(rng, batch * classes, -5.0f, 5.0f);
  logits[classes + 3] = 80.0f;  // large logits stay finite
  const std::vector<float> labels = {0, 3, 9, 4, 4, 7};
  std::vector<float> cpu_grad(batch * classes);
  const LossResult cpu = SoftmaxCrossEntropy(logits.data(), labels.data(), batch, classes, cpu_grad.data());
  cuda::DeviceBuffer d_logits(logits.size() * 4), d_labels(batch * 4), logp(logits.size() * 4), losses(batch * 4),
      correct(batch * 4), grad(logits.size() * 4);
  c.Upload(logits.data(), logits.size(), d_logits.f());
  c.Upload(labels.data(), labels.size(), d_labels.f());
  cuda::SoftmaxCrossEntropy(c, d_logits.f(), d_labels.f(), batch, classes, logp.f(), losses.f(),
                            correct.as<int32_t>(), grad.f());
  const std::vector<float> gpu_losses = c.Download(losses.f(), batch);
  std::vector<int32_t> gpu_correct(batch);
  ASSERT_EQ(cudaMemcpy(gpu_correct.data(), correct.get(), batch * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  double loss_sum = 0;
  int64_t correct_sum = 0;
  for (int64_t b = 0; b < batch; ++b) {
    loss_sum += gpu_losses[b];
    correct_sum += gpu_correct[b];
  }
  EXPECT_NEAR(loss_sum, cpu.loss_sum, 1e-5 * (1 + cpu.loss_sum));
  EXPECT_EQ(correct_sum, cpu.correct);
  ExpectClose(cpu_grad, c.Download(grad.f(), grad.bytes() / 4), 1e-6, "dlogits");
}

// The binary and regression losses on the device against the CPU's: per
// example in double, so the sums agree to float rounding of each example's
// loss and the gradients to a float's rounding.
void ExpectOneOutputLossMatchesTheCpu(proto::Loss loss, const std::vector<float>& z, const std::vector<float>& y) {
  auto context = cuda::CudaContext::Create();
  ASSERT_OK(context.status());
  cuda::CudaContext& c = **context;
  const int64_t batch = static_cast<int64_t>(z.size());
  std::vector<float> cpu_grad(batch);
  const LossResult cpu = loss == proto::MEAN_SQUARED_ERROR
                             ? MeanSquaredError(z.data(), y.data(), batch, cpu_grad.data())
                             : SigmoidBinaryCrossEntropy(z.data(), y.data(), batch, cpu_grad.data());
  cuda::DeviceBuffer d_z(batch * 4), d_y(batch * 4), logp(batch * 4), losses(batch * 4), correct(batch * 4),
      grad(batch * 4);
  c.Upload(z.data(), z.size(), d_z.f());
  c.Upload(y.data(), y.size(), d_y.f());
  cuda::ComputeLoss(c, loss, d_z.f(), d_y.f(), batch, 1, logp.f(), losses.f(), correct.as<int32_t>(), grad.f());
  const std::vector<float> gpu_losses = c.Download(losses.f(), batch);
  std::vector<int32_t> gpu_correct(batch);
  ASSERT_EQ(cudaMemcpy(gpu_correct.data(), correct.get(), batch * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  double loss_sum = 0;
  int64_t correct_sum = 0;
  for (int64_t b = 0; b < batch; ++b) {
    loss_sum += gpu_losses[b];
    correct_sum += gpu_correct[b];
  }
  EXPECT_NEAR(loss_sum, cpu.loss_sum, 1e-6 * (1 + cpu.loss_sum));
  EXPECT_EQ(correct_sum, cpu.correct);
  ExpectClose(cpu_grad, c.Download(grad.f(), batch), 1e-6, "dlogits");
}

TEST(CudaLayersTest, SigmoidBinaryCrossEntropyMatchesTheCpu) {
  REQUIRE_CUDA();
  std::mt19937 rng(6);
  std::vector<float> z = RandomVector(rng, 64, -6.0f, 6.0f);
  z[0] = 0, z[1] = 90, z[2] = -90;  // p = 0.5 predicts 0; large logits stay finite
  std::vector<float> y(64);
  for (float& l : y) l = static_cast<float>(rng() % 2);
  ExpectOneOutputLossMatchesTheCpu(proto::SIGMOID_BINARY_CROSS_ENTROPY, z, y);
}

TEST(CudaLayersTest, MeanSquaredErrorMatchesTheCpu) {
  REQUIRE_CUDA();
  std::mt19937 rng(7);
  ExpectOneOutputLossMatchesTheCpu(proto::MEAN_SQUARED_ERROR, RandomVector(rng, 64, -10.0f, 10.0f),
                                   RandomVector(rng, 64, -10.0f, 10.0f));
}

// conv -> (batch_norm) -> relu -> pool -> conv -> relu -> pool -> flatten -> (dropout) -> linear -> relu -> linear:
// examples/fmnist-cnn.pbtxt's shape, narrower.
proto::ModelSpec Cnn(int64_t c1, int64_t c2, int64_t hidden, bool batch_norm, bool dropout) {
  proto::ModelSpec spec;
  auto conv = [&](int64_t channels) {
    proto::Conv2dSpec* s = spec.add_layer()->mutable_conv2d();
    s->set_out_channels(channels);
    s->set_kernel_size(5);
    s->set_padding(2);
    if (batch_norm) spec.add_layer()->mutable_batch_norm();
    spec.add_layer()->mutable_relu();
    spec.add_layer()->mutable_max_pool2d()->set_kernel_size(2);
  };
  conv(c1);
  conv(c2);
  spec.add_layer()->mutable_flatten();
  if (dropout) spec.add_layer()->mutable_dropout()->set_p(0.25f);
  spec.add_layer()->mutable_linear()->set_out_features(hidden);
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_linear()->set_out_features(10);
  return spec;
}

// Per tensor, ||cuda - cpu|| <= tol * ||cpu|| + 1e-5 * sqrt(size) (the
// floor for tensors whose gradient is zero up to rounding, as a conv bias
// before batch norm). Whole models are compared by norm, not element by
// element: a pre-activation within rounding of a ReLU's kink, or two
// near-equal values in a max-pool window, can route one element's gradient
// differently on each device (seen: 7e-4 relative in one of six steps; the
// layers themselves agree element by element, above).
void ExpectTensorsClose(const Model& model, const std::vector<float>& cpu, const std::vector<float>& cuda, double tol,
                        const std::string& what) {
  double largest = 0;  // of ||cuda - cpu|| / bound
  for (const TensorInfo& t : model.tensors()) {
    double diff = 0, norm = 0;
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
      const double d = static_cast<double>(cuda[k]) - cpu[k];
      diff += d * d;
      norm += static_cast<double>(cpu[k]) * cpu[k];
    }
    diff = std::sqrt(diff);
    norm = std::sqrt(norm);
    const double bound = tol * norm + 1e-5 * std::sqrt(static_cast<double>(t.size));
    largest = std::max(largest, diff / bound);
    EXPECT_LE(diff, bound) << what << " of " << t.name << ": ||cuda - cpu|| " << diff << ", ||cpu|| " << norm;
  }
  std::printf("  %s: the largest tensor difference is %.2g of its bound\n", what.c_str(), largest);
}

// What the servers do with a push of one worker: SGD on the mean gradient of
// trainable tensors; non-trainable ones (running statistics) take value*batch / batch.
void ApplyStep(const Model& model, const std::vector<float>& grads, int64_t batch, float lr, float* params) {
  for (const TensorInfo& t : model.tensors()) {
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) {
      params[k] = t.trainable ? params[k] - lr * grads[k] / batch : grads[k] / batch;
    }
  }
}

void ExpectTrainingAgrees(const proto::ModelSpec& spec, int64_t batch, int steps) {
  auto cpu = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCpu);
  auto gpu = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCuda);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  Model& c = **cpu;
  Model& g = **gpu;
  ASSERT_EQ(c.num_keys(), g.num_keys());
  ASSERT_EQ(c.tensors().size(), g.tensors().size());
  for (size_t t = 0; t < c.tensors().size(); ++t) EXPECT_EQ(c.tensors()[t].name, g.tensors()[t].name);
  InitializeParameters(c.tensors(), 7, c.params());
  InitializeParameters(g.tensors(), 7, g.params());
  std::mt19937 rng(99);
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    // Batches of varying size: 0..1 images, labels 0..9.
    const int64_t n = batch - step;  // a different batch size each step
    const std::vector<float> x = RandomVector(rng, n * 784, 0.0f, 1.0f);
    std::vector<float> labels(n);
    for (auto& l : labels) l = static_cast<float>(rng() % 10);
    const BatchStats cs = c.TrainBatch(x.data(), labels.data(), n, 1000 + step);
    const BatchStats gs = g.TrainBatch(x.data(), labels.data(), n, 1000 + step);
    EXPECT_EQ(gs.examples, cs.examples);
    EXPECT_NEAR(gs.loss_sum, cs.loss_sum, 1e-4 * (1 + cs.loss_sum));
    EXPECT_EQ(gs.correct, cs.correct);
    ExpectTensorsClose(c, *c.grads(), *g.grads(), 5e-3, "step " + std::to_string(step) + " gradients");
    ApplyStep(c, *c.grads(), n, 0.05f, c.params());
    ApplyStep(g, *g.grads(), n, 0.05f, g.params());
    ExpectTensorsClose(c, std::vector<float>(c.params(), c.params() + c.num_keys()),
                       std::vector<float>(g.params(), g.params() + g.num_keys()), 1e-4,
                       "step " + std::to_string(step) + " parameters");
  }
  // Evaluation in larger batches than training.
  const int64_t eval = 3 * batch;
  const std::vector<float> x = RandomVector(rng, eval * 784, 0.0f, 1.0f);
  std::vector<float> labels(eval);
  for (auto& l : labels) l = static_cast<float>(rng() % 10);
  const BatchStats ce = c.EvaluateBatch(x.data(), labels.data(), eval);
  const BatchStats ge = g.EvaluateBatch(x.data(), labels.data(), eval);
  EXPECT_NEAR(ge.loss_sum, ce.loss_sum, 1e-4 * (1 + ce.loss_sum));
  EXPECT_EQ(ge.correct, ce.correct);
}

// A one-output model trains the same on both devices with each loss.
void ExpectOneOutputTrainingAgrees(proto::Loss loss) {
  proto::ModelSpec spec;
  spec.add_layer()->mutable_linear()->set_out_features(32);
  spec.add_layer()->mutable_relu();
  spec.add_layer()->mutable_linear()->set_out_features(1);
  spec.set_loss(loss);
  auto cpu = Model::Create(spec, Shape{20}, 2, Device::kCpu);
  auto gpu = Model::Create(spec, Shape{20}, 2, Device::kCuda);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  Model& c = **cpu;
  Model& g = **gpu;
  InitializeParameters(c.tensors(), 7, c.params());
  InitializeParameters(g.tensors(), 7, g.params());
  std::mt19937 rng(17);
  const int64_t n = 24;
  const std::vector<float> x = RandomVector(rng, n * 20, -1.0f, 1.0f);
  std::vector<float> y = RandomVector(rng, n, -3.0f, 3.0f);
  if (loss == proto::SIGMOID_BINARY_CROSS_ENTROPY) {
    for (float& l : y) l = l > 0 ? 1.0f : 0.0f;
  }
  const BatchStats cs = c.TrainBatch(x.data(), y.data(), n, 3);
  const BatchStats gs = g.TrainBatch(x.data(), y.data(), n, 3);
  EXPECT_NEAR(gs.loss_sum, cs.loss_sum, 1e-4 * (1 + cs.loss_sum));
  EXPECT_EQ(gs.correct, cs.correct);
  ExpectTensorsClose(c, *c.grads(), *g.grads(), 5e-3, "gradients");
  std::vector<float> c_out(n), g_out(n);
  const BatchStats ce = c.EvaluateBatch(x.data(), y.data(), n, nullptr, c_out.data());
  const BatchStats ge = g.EvaluateBatch(x.data(), y.data(), n, nullptr, g_out.data());
  EXPECT_NEAR(ge.loss_sum, ce.loss_sum, 1e-4 * (1 + ce.loss_sum));
  ExpectClose(c_out, g_out, 1e-4, "outputs");
}

TEST(CudaModelTest, BinaryTrainingStepAgreesAcrossDevices) {
  REQUIRE_CUDA();
  ExpectOneOutputTrainingAgrees(proto::SIGMOID_BINARY_CROSS_ENTROPY);
}

TEST(CudaModelTest, RegressionTrainingStepAgreesAcrossDevices) {
  REQUIRE_CUDA();
  ExpectOneOutputTrainingAgrees(proto::MEAN_SQUARED_ERROR);
}

TEST(CudaModelTest, CnnTrainingStepsAgreeAcrossDevices) {
  REQUIRE_CUDA();
  ExpectTrainingAgrees(Cnn(32, 64, 128, /*batch_norm=*/false, /*dropout=*/false), 16, 3);
}

TEST(CudaModelTest, CnnWithBatchNormAndDropoutAgreesAcrossDevices) {
  REQUIRE_CUDA();
  ExpectTrainingAgrees(Cnn(8, 16, 32, /*batch_norm=*/true, /*dropout=*/true), 12, 3);
}

TEST(CudaModelTest, GradientsAreReadyLayerByLayer) {
  REQUIRE_CUDA();
  auto model = Model::Create(Cnn(4, 8, 16, /*batch_norm=*/true, /*dropout=*/false), Shape{1, 28, 28}, 10, Device::kCuda);
  ASSERT_OK(model.status());
  Model& m = **model;
  InitializeParameters(m.tensors(), 3, m.params());
  std::mt19937 rng(4);
  const int64_t batch = 5;
  const std::vector<float> x = RandomVector(rng, batch * 784, 0.0f, 1.0f);
  const std::vector<float> labels = {1, 0, 9, 3, 3};
  std::vector<KeyRange> ranges;
  std::vector<std::vector<float>> when_ready;
  m.TrainBatch(x.data(), labels.data(), batch, 1, [&](KeyRange keys) {
    ranges.push_back(keys);
    when_ready.emplace_back(m.grads()->begin() + keys.begin, m.grads()->begin() + keys.end);
  });
  // Every key once, the last layer's first; each range already final when reported.
  uint64_t end = m.num_keys();
  for (size_t r = 0; r < ranges.size(); ++r) {
    EXPECT_EQ(ranges[r].end, end);
    end = ranges[r].begin;
    EXPECT_EQ(when_ready[r], std::vector<float>(m.grads()->begin() + ranges[r].begin, m.grads()->begin() + ranges[r].end));
  }
  EXPECT_EQ(end, 0u);
  EXPECT_EQ(ranges.size(), 6u);  // conv, batch_norm, conv, batch_norm, linear, linear
}

// Model::ParamsArrived: slices copied up as their PARAMS come spare the
// pass its upload of every parameter, and give the same step.
TEST(CudaModelTest, ParametersUploadedAsTheyArriveGiveTheSameStep) {
  REQUIRE_CUDA();
  const proto::ModelSpec spec = Cnn(4, 8, 16, /*batch_norm=*/true, /*dropout=*/false);
  auto early = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCuda);
  auto plain = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCuda);
  ASSERT_OK(early.status());
  ASSERT_OK(plain.status());
  Model& a = **early;
  Model& b = **plain;
  std::mt19937 rng(8);
  const int64_t batch = 6;
  const std::vector<float> x = RandomVector(rng, batch * 784, 0.0f, 1.0f);
  const std::vector<float> labels = {1, 0, 9, 3, 3, 7};
  for (int step = 0; step < 3; ++step) {
    InitializeParameters(a.tensors(), 10 + step, a.params());
    InitializeParameters(b.tensors(), 10 + step, b.params());
    // In three pieces, the last first, as PARAMS of the last layers come first.
    const uint64_t n = a.num_keys(), third = n / 3;
    a.ParamsArrived({2 * third, n});
    a.ParamsArrived({third, 2 * third});
    a.ParamsArrived({0, third});
    const BatchStats sa = a.TrainBatch(x.data(), labels.data(), batch, 5);
    const BatchStats sb = b.TrainBatch(x.data(), labels.data(), batch, 5);
    EXPECT_EQ(sa.loss_sum, sb.loss_sum) << "step " << step;
    EXPECT_EQ(*a.grads(), *b.grads()) << "step " << step;
  }
  // Those passes sent no parameters of their own; b's sent them every time.
  EXPECT_EQ(a.parameter_uploads(), 0);
  EXPECT_EQ(b.parameter_uploads(), 3);
  // Some keys only: the pass uploads every parameter as usual.
  InitializeParameters(a.tensors(), 22, a.params());
  InitializeParameters(b.tensors(), 22, b.params());
  a.ParamsArrived({0, 10});
  a.TrainBatch(x.data(), labels.data(), batch, 5);
  b.TrainBatch(x.data(), labels.data(), batch, 5);
  EXPECT_EQ(*a.grads(), *b.grads());
  EXPECT_EQ(a.parameter_uploads(), 1);
  // Early uploads before a pass without a batch do not carry over to the next.
  a.ParamsArrived({0, a.num_keys()});
  a.TrainBatch(x.data(), labels.data(), 0);
  a.TrainBatch(x.data(), labels.data(), batch, 5);
  EXPECT_EQ(a.parameter_uploads(), 2);
}

TEST(CudaModelTest, EmptyBatchAndHeldGradients) {
  REQUIRE_CUDA();
  auto model = Model::Create(TinyMlp(), Shape{5}, 3, Device::kCuda);
  ASSERT_OK(model.status());
  Model& m = **model;
  InitializeParameters(m.tensors(), 1, m.params());
  const std::vector<float> x(10, 0.5f);
  const std::vector<float> labels = {1, 2};
  m.TrainBatch(x.data(), labels.data(), 2);
  // A push still holding the gradients gets a fresh buffer, as on the CPU.
  const std::shared_ptr<std::vector<float>> held = m.grads();
  const std::vector<float> before = *held;
  m.TrainBatch(x.data(), labels.data(), 0);
  EXPECT_EQ(*held, before);
  EXPECT_NE(m.grads(), held);
  for (float v : *m.grads()) EXPECT_EQ(v, 0.0f);
  m.TrainBatch(x.data(), labels.data(), 2);
  EXPECT_EQ(*m.grads(), before);
}

// An embedding model trains alike on both devices, over batch sizes that
// change: the same losses, gradients within rounding (the linear layer's dy
// differs by rounding), and exact zeros in the rows a batch did not use.
TEST(CudaModelTest, EmbeddingModelTrainsAsOnTheCpu) {
  REQUIRE_CUDA();
  const int rows = 12, dim = 4;
  const proto::ModelSpec spec = EmbeddingMlp(rows, dim, /*sparse_gradients=*/true);
  auto cpu = Model::Create(spec, Shape{6}, 3, Device::kCpu);
  auto gpu = Model::Create(spec, Shape{6}, 3, Device::kCuda);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  Model& c = **cpu;
  Model& g = **gpu;
  ASSERT_EQ(c.num_keys(), g.num_keys());
  InitializeParameters(c.tensors(), 11, c.params());
  InitializeParameters(g.tensors(), 11, g.params());
  std::mt19937 rng(12);
  std::uniform_int_distribution<int> id(0, rows - 1);
  int step = 0;
  for (int64_t batch : {8, 3, 5}) {
    SCOPED_TRACE("step " + std::to_string(step));
    std::vector<float> x(batch * 6);
    for (float& v : x) v = static_cast<float>(id(rng));
    ASSERT_OK(g.ValidateInputValues(x.data(), x.size()));
    std::vector<float> labels(batch);
    for (auto& l : labels) l = static_cast<float>(rng() % 3);
    const BatchStats cs = c.TrainBatch(x.data(), labels.data(), batch, 500 + step);
    const BatchStats gs = g.TrainBatch(x.data(), labels.data(), batch, 500 + step);
    EXPECT_EQ(gs.examples, cs.examples);
    EXPECT_NEAR(gs.loss_sum, cs.loss_sum, 1e-5 * (1 + cs.loss_sum));
    EXPECT_EQ(gs.correct, cs.correct);
    ExpectTensorsClose(c, *c.grads(), *g.grads(), 1e-5, "step " + std::to_string(step) + " gradients");
    EXPECT_EQ(g.touched_runs(), c.touched_runs());
    const std::vector<int64_t> used = DistinctEmbeddingIds(x.data(), x.size(), rows);
    for (int64_t r = 0; r < rows; ++r) {
      if (std::find(used.begin(), used.end(), r) != used.end()) continue;
      for (int64_t k = 0; k < dim; ++k) EXPECT_EQ((*g.grads())[r * dim + k], 0.0f) << "row " << r;
    }
    ApplyStep(c, *c.grads(), batch, 0.1f, c.params());
    ApplyStep(g, *g.grads(), batch, 0.1f, g.params());
    ++step;
  }
  std::vector<float> x(9 * 6);
  for (float& v : x) v = static_cast<float>(id(rng));
  const float* cl = c.Infer(x.data(), 9);
  const std::vector<float> want(cl, cl + 9 * 3);
  const float* gl = g.Infer(x.data(), 9);
  ASSERT_NE(gl, nullptr);
  for (int64_t i = 0; i < 9 * 3; ++i) EXPECT_NEAR(gl[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

// A column_embedding model (two numeric features, then columns of 5 and 9
// ids) trains alike on both devices: the same losses, gradients within
// rounding, the same touched rows and exact zeros in the table's rows a
// batch did not use; inference gives the CPU's logits.
TEST(CudaModelTest, ColumnEmbeddingModelTrainsAsOnTheCpu) {
  REQUIRE_CUDA();
  const std::vector<int64_t> rows = {5, 9};
  const int64_t dim = 3, features = 4;
  const proto::ModelSpec spec =
      ParseModel("layer { column_embedding { embedding_dim: 3 } } layer { linear { out_features: 3 } }");
  auto cpu = Model::Create(spec, Shape{features}, 3, Device::kCpu, rows);
  auto gpu = Model::Create(spec, Shape{features}, 3, Device::kCuda, rows);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  Model& c = **cpu;
  Model& g = **gpu;
  ASSERT_EQ(c.num_keys(), g.num_keys());
  InitializeParameters(c.tensors(), 13, c.params());
  InitializeParameters(g.tensors(), 13, g.params());
  std::mt19937 rng(14);
  std::normal_distribution<float> number(0.0f, 1.0f);
  const auto examples = [&](int64_t batch) {
    std::vector<float> x(batch * features);
    for (int64_t b = 0; b < batch; ++b) {
      x[b * features] = number(rng);
      x[b * features + 1] = number(rng);
      x[b * features + 2] = static_cast<float>(rng() % rows[0]);
      x[b * features + 3] = static_cast<float>(rng() % rows[1]);
    }
    return x;
  };
  int step = 0;
  for (int64_t batch : {8, 3, 5}) {
    SCOPED_TRACE("step " + std::to_string(step));
    const std::vector<float> x = examples(batch);
    ASSERT_OK(g.ValidateInputValues(x.data(), x.size()));
    std::vector<float> labels(batch);
    for (auto& l : labels) l = static_cast<float>(rng() % 3);
    const BatchStats cs = c.TrainBatch(x.data(), labels.data(), batch, 600 + step);
    const BatchStats gs = g.TrainBatch(x.data(), labels.data(), batch, 600 + step);
    EXPECT_NEAR(gs.loss_sum, cs.loss_sum, 1e-5 * (1 + cs.loss_sum));
    EXPECT_EQ(gs.correct, cs.correct);
    ExpectTensorsClose(c, *c.grads(), *g.grads(), 1e-5, "step " + std::to_string(step) + " gradients");
    EXPECT_EQ(g.touched_runs(), c.touched_runs());
    std::vector<bool> used(rows[0] + rows[1], false);
    for (int64_t b = 0; b < batch; ++b) {
      used[static_cast<int64_t>(x[b * features + 2])] = true;
      used[rows[0] + static_cast<int64_t>(x[b * features + 3])] = true;
    }
    for (int64_t r = 0; r < rows[0] + rows[1]; ++r) {
      if (used[r]) continue;
      for (int64_t k = 0; k < dim; ++k) EXPECT_EQ((*g.grads())[r * dim + k], 0.0f) << "row " << r;
    }
    ApplyStep(c, *c.grads(), batch, 0.1f, c.params());
    ApplyStep(g, *g.grads(), batch, 0.1f, g.params());
    ++step;
  }
  const std::vector<float> x = examples(9);
  const float* cl = c.Infer(x.data(), 9);
  const std::vector<float> want(cl, cl + 9 * 3);
  const float* gl = g.Infer(x.data(), 9);
  ASSERT_NE(gl, nullptr);
  for (int64_t i = 0; i < 9 * 3; ++i) EXPECT_NEAR(gl[i], want[i], 1e-4f * (1 + std::fabs(want[i]))) << i;
}

// Inference on the GPU (tessera serve and predict with --device cuda): the
// CPU's logits, over batch sizes that grow and shrink.
TEST(CudaModelTest, InferGivesTheCpuLogits) {
  REQUIRE_CUDA();
  const proto::ModelSpec spec = Cnn(8, 16, 32, /*batch_norm=*/true, /*dropout=*/true);
  auto cpu = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCpu);
  auto gpu = Model::Create(spec, Shape{1, 28, 28}, 10, Device::kCuda);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  InitializeParameters((*cpu)->tensors(), 5, (*cpu)->params());
  // A pass before the parameters are set (they are all 0 then): the pass
  // after PrepareForInference must still upload the ones set since.
  std::mt19937 rng(6);
  const std::vector<float> first = RandomVector(rng, 784, 0.0f, 1.0f);
  ASSERT_NE((*gpu)->Infer(first.data(), 1), nullptr);
  std::copy((*cpu)->params(), (*cpu)->params() + (*cpu)->num_keys(), (*gpu)->params());
  (*cpu)->PrepareForInference();
  (*gpu)->PrepareForInference();  // nothing to fuse on the GPU: still infers
  for (int64_t batch : {7, 33, 2}) {
    SCOPED_TRACE(batch);
    const std::vector<float> x = RandomVector(rng, batch * 784, 0.0f, 1.0f);
    const float* c = (*cpu)->Infer(x.data(), batch);
    const std::vector<float> want(c, c + batch * 10);
    const float* g = (*gpu)->Infer(x.data(), batch);
    ASSERT_NE(g, nullptr);
    for (int64_t i = 0; i < batch * 10; ++i) EXPECT_NEAR(g[i], want[i], 1e-3f * (1 + std::fabs(want[i]))) << i;
  }
}

// Slots of a sparse_embedding of `fields` bags of `per_field` slots over
// n_rows bound rows: repeats, empty slots, and values no row has (a
// fraction, one past the rows, NaN), which read nothing on either device.
std::vector<float> SparseEmbeddingInputs(std::mt19937& rng, int64_t batch, int64_t numeric, int64_t slots,
                                         int64_t n_rows) {
  std::vector<float> x = RandomVector(rng, batch * (numeric + slots));
  const float odd[] = {-1.0f, 0.5f, static_cast<float>(n_rows), std::nanf("")};
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t s = 0; s < slots; ++s) {
      const uint32_t pick = rng() % 8;
      x[b * (numeric + slots) + numeric + s] = pick < 4 ? odd[pick] : static_cast<float>(rng() % n_rows);
    }
  }
  return x;
}

// SparseEmbedding's twin, SUM and MEAN: the bags, dx and the bound rows'
// gradients (written into the host buffer) are bitwise the CPU layer's.
TEST(CudaLayersTest, SparseEmbeddingMatchesTheCpuBitwise) {
  REQUIRE_CUDA();
  const int64_t numeric = 2, fields = 3, per_field = 3, dim = 5, n_rows = 6;
  for (const auto combiner : {proto::SparseEmbeddingSpec::SUM, proto::SparseEmbeddingSpec::MEAN}) {
    SCOPED_TRACE(proto::SparseEmbeddingSpec::Combiner_Name(combiner));
    SparseEmbedding cpu(numeric, fields, per_field, dim, combiner);
    CudaRunner gpu([&](std::shared_ptr<cuda::CudaContext> context) {
      return cuda::CreateCudaSparseEmbedding(cpu, std::move(context));
    });
    auto& twin = static_cast<SparseEmbedding&>(gpu.layer());
    ASSERT_EQ(twin.out_shape(), cpu.out_shape());
    std::mt19937 rng(43);
    const std::vector<float> rows = RandomVector(rng, n_rows * dim);
    for (int64_t batch : {7, 1, 0, 40}) {
      SCOPED_TRACE("batch " + std::to_string(batch));
      std::vector<float> cpu_grads(n_rows * dim, 1e6f), gpu_grads(n_rows * dim, -1e6f);
      cpu.BindRows(rows.data(), cpu_grads.data(), n_rows);
      twin.BindRows(rows.data(), gpu_grads.data(), n_rows);
      const std::vector<float> x = SparseEmbeddingInputs(rng, batch, numeric, fields * per_field, n_rows);
      const int64_t ny = batch * cpu.out_features();
      std::vector<float> cpu_y(ny, 1e6f);
      cpu.Forward(x.data(), batch, cpu_y.data(), Pass{});
      EXPECT_EQ(gpu.Forward({}, x, batch, Pass{}), cpu_y);
      const std::vector<float> dy = RandomVector(rng, ny);
      std::vector<float> cpu_dx(x.size(), 1e6f);
      cpu.Backward(x.data(), cpu_y.data(), dy.data(), batch, cpu_dx.data());
      std::vector<float> no_params, gpu_dx;
      gpu.Backward(dy, &no_params, &gpu_dx);
      EXPECT_EQ(gpu_grads, cpu_grads);
      EXPECT_EQ(gpu_dx, cpu_dx);
    }
  }
}

// A sparse_embedding model on CUDA trains as on the CPU: the same loss and
// dense gradients within float rounding (cuBLAS against oneDNN), the rows'
// gradients in the bound host buffer when TrainBatch returns.
TEST(CudaModelTest, SparseEmbeddingModelTrainsAsOnTheCpu) {
  REQUIRE_CUDA();
  const proto::ModelSpec spec = ParseModel(R"(sparse_table { name: "ids" dim: 4 }
      layer { sparse_embedding { table: "ids" fields: 3 values_per_field: 2 combiner: MEAN } }
      layer { linear { out_features: 8 } } layer { relu {} } layer { linear { out_features: 1 } }
      loss: SIGMOID_BINARY_CROSS_ENTROPY)");
  auto cpu = Model::Create(spec, Shape{2 + 6}, 2, Device::kCpu);
  auto gpu = Model::Create(spec, Shape{2 + 6}, 2, Device::kCuda);
  ASSERT_OK(cpu.status());
  ASSERT_OK(gpu.status());
  Model& c = **cpu;
  Model& g = **gpu;
  InitializeParameters(c.tensors(), 17, c.params());
  InitializeParameters(g.tensors(), 17, g.params());
  std::mt19937 rng(18);
  const int64_t n_rows = 10;
  const std::vector<float> rows = RandomVector(rng, n_rows * 4);
  for (int64_t batch : {8, 3, 33}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    std::vector<float> x = SparseEmbeddingInputs(rng, batch, 2, 6, n_rows);
    for (float& v : x) {
      if (std::isnan(v) || v == 0.5f || v == static_cast<float>(n_rows)) v = -1.0f;  // what ValidateInputValues takes
    }
    std::vector<float> labels(batch);
    for (auto& l : labels) l = static_cast<float>(rng() % 2);
    std::vector<float> cpu_rows(rows.size(), 1e6f), gpu_rows(rows.size(), -1e6f);
    c.BindSparseRows(rows.data(), cpu_rows.data(), n_rows);
    g.BindSparseRows(rows.data(), gpu_rows.data(), n_rows);
    ASSERT_OK(g.ValidateInputValues(x.data(), x.size()));
    const BatchStats cs = c.TrainBatch(x.data(), labels.data(), batch, 1);
    const BatchStats gs = g.TrainBatch(x.data(), labels.data(), batch, 1);
    EXPECT_NEAR(gs.loss_sum, cs.loss_sum, 1e-5 * (1 + cs.loss_sum));
    ExpectTensorsClose(c, *c.grads(), *g.grads(), 1e-5, "dense gradients");
    ExpectClose(cpu_rows, gpu_rows, 1e-5, "the rows' gradients");
  }
}

#else  // !TESSERA_WITH_CUDA

TEST(CudaLayersTest, OutputsAndGradientsMatchTheCpu) { REQUIRE_CUDA(); }
TEST(CudaLayersTest, SparseEmbeddingMatchesTheCpuBitwise) { REQUIRE_CUDA(); }
TEST(CudaModelTest, SparseEmbeddingModelTrainsAsOnTheCpu) { REQUIRE_CUDA(); }

#endif  // TESSERA_WITH_CUDA

}  // namespace
}  // namespace tessera
