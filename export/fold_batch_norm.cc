#include "export/fold_batch_norm.h"

#include <cmath>
#include <memory>
#include <string>

#include "models/model.h"

namespace tessera {
namespace {

// A float Conv2d or Linear: the layers a following BatchNorm folds into.
bool CanAbsorbBatchNorm(const proto::LayerSpec& l) {
  return (l.has_conv2d() && !l.conv2d().has_int8()) || (l.has_linear() && !l.linear().has_int8());
}

int64_t ParamCount(const Layer& layer) {
  int64_t n = 0;
  for (const ParamShape& p : layer.param_shapes()) n += NumElements(p.shape);
  return n;
}

}  // namespace

StatusOr<FoldedModel> FoldBatchNorms(const proto::ModelSpec& spec, const Shape& input_shape,
                                     const std::vector<float>& params, const std::vector<int64_t>& categorical_rows) {
  FoldedModel out;
  out.spec = spec;
  out.spec.clear_layer();
  Shape shape = input_shape;
  size_t offset = 0;  // of the current layer's parameters in params
  for (int i = 0; i < spec.layer_size(); ++i) {
    const std::string where = "model.layer[" + std::to_string(i) + "]";
    auto created = CreateModelLayer(spec.layer(i), shape, categorical_rows);
    if (!created.ok()) return created.status().WithContext(where);
    std::unique_ptr<Layer> layer = std::move(created).value();
    const int64_t count = ParamCount(*layer);
    if (offset + count > params.size()) {
      return InvalidArgumentError(where + " needs parameters beyond the " + std::to_string(params.size()) + " given");
    }
    const bool fold = CanAbsorbBatchNorm(spec.layer(i)) && i + 1 < spec.layer_size() &&
                      spec.layer(i + 1).has_batch_norm();
    if (!fold) {
      *out.spec.add_layer() = spec.layer(i);
      out.params.insert(out.params.end(), params.begin() + offset, params.begin() + offset + count);
      offset += count;
      shape = layer->out_shape();
      continue;
    }
    auto created_norm = CreateLayer(spec.layer(i + 1), layer->out_shape());
    if (!created_norm.ok()) {
      return created_norm.status().WithContext("model.layer[" + std::to_string(i + 1) + "]");
    }
    std::unique_ptr<Layer> norm = std::move(created_norm).value();
    const int64_t norm_count = ParamCount(*norm);
    const int64_t channels = layer->out_shape()[0];
    if (offset + count + norm_count > params.size() || norm_count != 4 * channels) {
      return InvalidArgumentError(where + "'s batch norm needs parameters beyond the " +
                                  std::to_string(params.size()) + " given");
    }
    proto::LayerSpec folded = spec.layer(i);
    const bool had_bias = folded.has_conv2d() ? folded.conv2d().bias() : folded.linear().bias();
    if (folded.has_conv2d()) {
      folded.mutable_conv2d()->set_bias(true);
    } else {
      folded.mutable_linear()->set_bias(true);
    }
    *out.spec.add_layer() = folded;
    // The layer's weight (channel after channel), then its bias when it has one;
    // the batch norm's weight, bias, running mean and running variance.
    const int64_t weights = count - (had_bias ? channels : 0);
    const int64_t per_channel = weights / channels;
    const float* w = params.data() + offset;
    const float* bias = had_bias ? w + weights : nullptr;
    const float* norm_params = params.data() + offset + count;
    const float* gamma = norm_params;
    const float* beta = norm_params + channels;
    const float* mean = norm_params + 2 * channels;
    const float* variance = norm_params + 3 * channels;
    const float epsilon = spec.layer(i + 1).batch_norm().epsilon();
    std::vector<float> a(channels), b(channels);
    for (int64_t c = 0; c < channels; ++c) {
      // As BatchNorm::Forward computes them in evaluation.
      a[c] = gamma[c] / std::sqrt(variance[c] + epsilon);
      b[c] = beta[c] - mean[c] * a[c];
    }
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t k = 0; k < per_channel; ++k) out.params.push_back(w[c * per_channel + k] * a[c]);
    }
    for (int64_t c = 0; c < channels; ++c) out.params.push_back((bias != nullptr ? bias[c] * a[c] : 0.0f) + b[c]);
    ++out.folded;
    offset += count + norm_count;
    shape = norm->out_shape();
    ++i;  // the batch norm is done
  }
  if (offset != params.size()) {
    return InvalidArgumentError("the model has " + std::to_string(offset) + " parameters, not the " +
                                std::to_string(params.size()) + " given");
  }
  return out;
}

}  // namespace tessera
