#include "models/layer.h"

#include "models/batch_norm.h"
#include "models/conv2d.h"
#include "models/dropout.h"
#include "models/embedding.h"
#include "models/flatten.h"
#include "models/int8_layers.h"
#include "models/linear.h"
#include "models/max_pool2d.h"
#include "models/relu.h"

namespace tessera {

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeText(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

namespace {

// Large enough for any real layer, small enough that products stay far from overflow.
constexpr int64_t kMaxTensorElements = int64_t{1} << 31;

Status NeedImage(const char* layer, const Shape& in) {
  if (in.size() != 3) {
    return InvalidArgumentError(std::string(layer) + " needs [channels, height, width] inputs, got " + ShapeText(in) +
                                " (a linear or flatten layer came before it?)");
  }
  return OkStatus();
}

StatusOr<std::unique_ptr<Layer>> CreateConv2d(const proto::Conv2dSpec& s, const Shape& in) {
  RETURN_IF_ERROR(NeedImage("conv2d", in));
  if (s.out_channels() < 1) return InvalidArgumentError("conv2d.out_channels must be >= 1, got " + std::to_string(s.out_channels()));
  if (s.kernel_size() < 1) return InvalidArgumentError("conv2d.kernel_size must be >= 1, got " + std::to_string(s.kernel_size()));
  if (s.stride() < 1) return InvalidArgumentError("conv2d.stride must be >= 1, got " + std::to_string(s.stride()));
  if (s.padding() < 0 || s.padding() >= s.kernel_size()) {
    return InvalidArgumentError("conv2d.padding must be in [0, kernel_size), got " + std::to_string(s.padding()));
  }
  const ConvGeometry g = ConvGeometryOf(s, in);
  if (g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel) {
    return InvalidArgumentError("conv2d kernel " + std::to_string(g.kernel) + " is larger than its padded input " +
                                ShapeText(in));
  }
  if (g.out_channels * g.in_channels * g.kernel * g.kernel > kMaxTensorElements ||
      g.out_channels * g.out_height() * g.out_width() > kMaxTensorElements) {
    return InvalidArgumentError("conv2d of " + ShapeText(in) + " is too large");
  }
  if (s.has_int8()) {
    RETURN_IF_ERROR(ValidateInt8Spec(s.int8()).WithContext("conv2d"));
    return std::unique_ptr<Layer>(new Int8Conv2d(g, s.int8()));
  }
  return std::unique_ptr<Layer>(new Conv2d(g));
}

StatusOr<std::unique_ptr<Layer>> CreateMaxPool2d(const proto::MaxPool2dSpec& s, const Shape& in) {
  RETURN_IF_ERROR(NeedImage("max_pool2d", in));
  if (s.kernel_size() < 1) return InvalidArgumentError("max_pool2d.kernel_size must be >= 1, got " + std::to_string(s.kernel_size()));
  if (s.stride() < 0) return InvalidArgumentError("max_pool2d.stride must be >= 0, got " + std::to_string(s.stride()));
  const int64_t stride = s.stride() == 0 ? s.kernel_size() : s.stride();
  if (in[1] < s.kernel_size() || in[2] < s.kernel_size()) {
    return InvalidArgumentError("max_pool2d kernel " + std::to_string(s.kernel_size()) + " is larger than its input " +
                                ShapeText(in));
  }
  return std::unique_ptr<Layer>(new MaxPool2d(in, s.kernel_size(), stride));
}

}  // namespace

StatusOr<std::unique_ptr<Layer>> CreateLayer(const proto::LayerSpec& spec, const Shape& in_shape) {
  switch (spec.kind_case()) {
    case proto::LayerSpec::kLinear: {
      const int64_t in = NumElements(in_shape);
      const int64_t out = spec.linear().out_features();
      if (out < 1) return InvalidArgumentError("linear.out_features must be >= 1, got " + std::to_string(out));
      if (in * out > kMaxTensorElements) {
        return InvalidArgumentError("linear layer of " + std::to_string(in) + "x" + std::to_string(out) +
                                    " weights is too large");
      }
      if (spec.linear().has_int8()) {
        RETURN_IF_ERROR(ValidateInt8Spec(spec.linear().int8()).WithContext("linear"));
        return std::unique_ptr<Layer>(new Int8Linear(in_shape, out, spec.linear().bias(), spec.linear().int8()));
      }
      return std::unique_ptr<Layer>(new Linear(in_shape, out, spec.linear().bias()));
    }
    case proto::LayerSpec::kRelu:
      return std::unique_ptr<Layer>(new Relu(in_shape));
    case proto::LayerSpec::kConv2D:
      return CreateConv2d(spec.conv2d(), in_shape);
    case proto::LayerSpec::kMaxPool2D:
      return CreateMaxPool2d(spec.max_pool2d(), in_shape);
    case proto::LayerSpec::kFlatten:
      return std::unique_ptr<Layer>(new Flatten(in_shape));
    case proto::LayerSpec::kDropout: {
      const float p = spec.dropout().p();
      if (!(p >= 0.0f && p < 1.0f)) return InvalidArgumentError("dropout.p must be in [0, 1), got " + std::to_string(p));
      return std::unique_ptr<Layer>(new Dropout(in_shape, p));
    }
    case proto::LayerSpec::kBatchNorm: {
      const proto::BatchNormSpec& s = spec.batch_norm();
      if (in_shape.size() != 1 && in_shape.size() != 3) {
        return InvalidArgumentError("batch_norm needs [channels, height, width] or [features] inputs, got " +
                                    ShapeText(in_shape));
      }
      if (!(s.momentum() > 0.0f && s.momentum() <= 1.0f)) {
        return InvalidArgumentError("batch_norm.momentum must be in (0, 1], got " + std::to_string(s.momentum()));
      }
      if (!(s.epsilon() > 0.0f)) return InvalidArgumentError("batch_norm.epsilon must be > 0, got " + std::to_string(s.epsilon()));
      return std::unique_ptr<Layer>(new BatchNorm(in_shape, s.momentum(), s.epsilon()));
    }
    case proto::LayerSpec::kEmbedding: {
      const proto::EmbeddingSpec& s = spec.embedding();
      if (s.num_embeddings() < 1) {
        return InvalidArgumentError("embedding.num_embeddings must be >= 1, got " + std::to_string(s.num_embeddings()));
      }
      if (s.embedding_dim() < 1) {
        return InvalidArgumentError("embedding.embedding_dim must be >= 1, got " + std::to_string(s.embedding_dim()));
      }
      // Ids travel as float32, which holds every integer only up to 2^24.
      if (s.num_embeddings() > (1 << 24)) {
        return InvalidArgumentError("embedding.num_embeddings must be <= 16777216 (2^24: ids travel as float32), got " +
                                    std::to_string(s.num_embeddings()));
      }
      if (int64_t{s.num_embeddings()} * s.embedding_dim() > kMaxTensorElements ||
          NumElements(in_shape) * s.embedding_dim() > kMaxTensorElements) {
        return InvalidArgumentError("embedding of " + std::to_string(s.num_embeddings()) + "x" +
                                    std::to_string(s.embedding_dim()) + " for inputs " + ShapeText(in_shape) +
                                    " is too large");
      }
      return std::unique_ptr<Layer>(new Embedding(in_shape, s.num_embeddings(), s.embedding_dim()));
    }
    case proto::LayerSpec::kColumnEmbedding:
      // It needs the table's categorical columns, which Model::Create gives CreateColumnEmbedding.
      return InvalidArgumentError("column_embedding must be the first layer of a model over a table with "
                                  "categorical columns");
    case proto::LayerSpec::kSparseLinear:
      // It needs the data's number of features, which Model::Create gives CreateSparseLinear.
      return InvalidArgumentError("sparse_linear must be the first layer of a model over libsvm data");
    case proto::LayerSpec::kSparseEmbedding:
      // It needs the job's sparse table, which Model::Create gives it.
      return InvalidArgumentError("sparse_embedding must be the first layer of a model over a sparse table");
    case proto::LayerSpec::kDotInteraction:
      // It needs the sparse_embedding before it, which Model::Create gives CreateDotInteraction.
      return InvalidArgumentError("dot_interaction must come right after a sparse_embedding first layer");
    case proto::LayerSpec::KIND_NOT_SET:
      break;
  }
  return InvalidArgumentError("layer sets no kind");
}

}  // namespace tessera
