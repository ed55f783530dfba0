#include "models/dot_interaction.h"

#include <cstring>
#include <string>

#include "core/sparse_table_spec.h"
#include "models/linear.h"
#include "models/relu.h"

namespace tessera {
namespace {

float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = 0; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// acc += scale * v, elementwise.
void AddScaled(float* acc, float scale, const float* v, int64_t n) {
  for (int64_t k = 0; k < n; ++k) acc[k] += scale * v[k];
}

}  // namespace

DotInteraction::DotInteraction(int64_t numeric, int64_t fields, int64_t dim,
                               const std::vector<int64_t>& bottom_features)
    : Layer(Shape{numeric + fields * dim}, Shape{OutputsOf(fields, dim)}),
      numeric_(numeric),
      fields_(fields),
      dim_(dim) {
  Shape shape{numeric};
  for (const int64_t width : bottom_features) {
    bottom_.push_back(std::make_unique<Linear>(shape, width, /*bias=*/true));
    shape = Shape{width};
    bottom_.push_back(std::make_unique<Relu>(shape));
  }
}

DotInteraction::~DotInteraction() = default;

std::vector<ParamShape> DotInteraction::param_shapes() const {
  std::vector<ParamShape> shapes;
  for (size_t k = 0; k < bottom_.size(); k += 2) {  // the Linears; the ReLUs have none
    for (ParamShape p : bottom_[k]->param_shapes()) {
      p.name = "bottom" + std::to_string(k / 2) + "." + p.name;
      shapes.push_back(std::move(p));
    }
  }
  return shapes;
}

void DotInteraction::Bind(const float* params, float* grads) {
  for (const auto& layer : bottom_) {
    layer->Bind(params, grads);
    int64_t size = 0;
    for (const ParamShape& p : layer->param_shapes()) size += NumElements(p.shape);
    params += size;
    grads += size;
  }
}

void DotInteraction::EnsureBuffers(int64_t batch) {
  if (batch <= buffer_batch_) return;
  numeric_in_.resize(batch * numeric_);
  d_bottom_in_.resize(batch * numeric_);
  acts_.resize(bottom_.size());
  grad_acts_.resize(bottom_.size());
  for (size_t k = 0; k < bottom_.size(); ++k) {
    acts_[k].resize(batch * bottom_[k]->out_features());
    grad_acts_[k].resize(batch * bottom_[k]->out_features());
  }
  buffer_batch_ = batch;
}

void DotInteraction::GatherNumeric(const float* x, int64_t batch) {
  for (int64_t e = 0; e < batch; ++e) {
    std::memcpy(numeric_in_.data() + e * numeric_, x + e * in_features(), numeric_ * sizeof(float));
  }
}

const float* DotInteraction::BottomOutput() const { return bottom_.empty() ? numeric_in_.data() : acts_.back().data(); }

void DotInteraction::Forward(const float* x, int64_t batch, float* y, const Pass& pass) {
  EnsureBuffers(batch);
  GatherNumeric(x, batch);
  const float* in = numeric_in_.data();
  for (size_t k = 0; k < bottom_.size(); ++k) {
    bottom_[k]->Forward(in, batch, acts_[k].data(), pass);
    in = acts_[k].data();
  }
  const float* b = BottomOutput();
  for (int64_t e = 0; e < batch; ++e) {
    const float* bags = x + e * in_features() + numeric_;
    // z_0 is b; z_i (i >= 1) is bag i - 1.
    auto z = [&](int64_t i) { return i == 0 ? b + e * dim_ : bags + (i - 1) * dim_; };
    float* out = y + e * out_features();
    std::memcpy(out, z(0), dim_ * sizeof(float));
    int64_t p = dim_;
    for (int64_t i = 1; i <= fields_; ++i) {
      for (int64_t j = 0; j < i; ++j) out[p++] = Dot(z(i), z(j), dim_);
    }
  }
}

void DotInteraction::Backward(const float* x, const float* /*y*/, const float* dy, int64_t batch, float* dx) {
  const float* b = BottomOutput();
  // dL/db per example: the bottom MLP's output gradient, or (no bottom) the numeric features'.
  float* db = bottom_.empty() ? d_bottom_in_.data() : grad_acts_.back().data();
  std::vector<float> dz((fields_ + 1) * dim_);
  for (int64_t e = 0; e < batch; ++e) {
    const float* bags = x + e * in_features() + numeric_;
    auto z = [&](int64_t i) { return i == 0 ? b + e * dim_ : bags + (i - 1) * dim_; };
    const float* d = dy + e * out_features();
    std::memcpy(dz.data(), d, dim_ * sizeof(float));
    std::memset(dz.data() + dim_, 0, fields_ * dim_ * sizeof(float));
    int64_t p = dim_;
    for (int64_t i = 1; i <= fields_; ++i) {
      for (int64_t j = 0; j < i; ++j, ++p) {
        AddScaled(dz.data() + i * dim_, d[p], z(j), dim_);
        AddScaled(dz.data() + j * dim_, d[p], z(i), dim_);
      }
    }
    std::memcpy(db + e * dim_, dz.data(), dim_ * sizeof(float));
    if (dx != nullptr) {
      std::memcpy(dx + e * in_features() + numeric_, dz.data() + dim_, fields_ * dim_ * sizeof(float));
    }
  }
  for (size_t k = bottom_.size(); k-- > 0;) {
    const float* in = k == 0 ? numeric_in_.data() : acts_[k - 1].data();
    float* d_in = k == 0 ? d_bottom_in_.data() : grad_acts_[k - 1].data();
    bottom_[k]->Backward(in, acts_[k].data(), grad_acts_[k].data(), batch, d_in);
  }
  if (dx == nullptr) return;
  for (int64_t e = 0; e < batch; ++e) {
    std::memcpy(dx + e * in_features(), d_bottom_in_.data() + e * numeric_, numeric_ * sizeof(float));
  }
}

StatusOr<std::unique_ptr<Layer>> CreateDotInteraction(const proto::ModelSpec& model, int index, const Shape& in_shape) {
  const std::string where = "dot_interaction";
  if (index != 1 || !model.layer(0).has_sparse_embedding()) {
    return InvalidArgumentError(where +
                                " must come right after a sparse_embedding first layer (model.layer[1]), "
                                "got model.layer[" +
                                std::to_string(index) + "]");
  }
  const proto::SparseEmbeddingSpec& bags = model.layer(0).sparse_embedding();
  const proto::SparseTableSpec* table = FindSparseTable(model, bags.table());
  if (table == nullptr) {
    return InvalidArgumentError(where + ": the sparse_embedding's table '" + bags.table() +
                                "' is no model.sparse_table's name");
  }
  const int64_t dim = table->dim();
  const int64_t fields = bags.fields();
  const int64_t numeric = in_shape.size() == 1 ? in_shape[0] - fields * dim : -1;
  if (numeric < 1 || fields < 1 || dim < 1) {
    return InvalidArgumentError(where + " needs numeric features and " + std::to_string(fields) + " bags of " +
                                std::to_string(dim) + " values, got inputs of " + ShapeText(in_shape));
  }
  std::vector<int64_t> widths;
  const auto& bottom = model.layer(index).dot_interaction().bottom_features();
  for (int k = 0; k < bottom.size(); ++k) {
    if (bottom[k] < 1 || bottom[k] > (1 << 24)) {
      return InvalidArgumentError(where + ".bottom_features[" + std::to_string(k) + "] must be in [1, 16777216], got " +
                                  std::to_string(bottom[k]));
    }
    widths.push_back(bottom[k]);
  }
  const int64_t b = widths.empty() ? numeric : widths.back();
  if (b != dim) {
    return InvalidArgumentError(
        where +
        (widths.empty() ? " without bottom_features takes the " + std::to_string(numeric) + " numeric features"
                        : ".bottom_features ends at " + std::to_string(b)) +
        " as the vector dotted with the bags, which needs the table's dim, " + std::to_string(dim));
  }
  return std::unique_ptr<Layer>(new DotInteraction(numeric, fields, dim, widths));
}

}  // namespace tessera
