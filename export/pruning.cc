#include "export/pruning.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>

#include "models/model.h"

namespace tessera {
namespace {

// |w| for ordering, NaN as the largest.
float Magnitude(float w) { return std::isnan(w) ? INFINITY : std::fabs(w); }

std::vector<int64_t> AllIndices(int64_t n) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), int64_t{0});
  return all;
}

// One layer of the original model as the structured walk sees it.
struct LayerWalk {
  Shape in_shape;                 // original
  std::vector<int64_t> in_kept;   // kept indices of in_shape[0] (channels or features)
  std::vector<int64_t> out_kept;  // kept indices of the output's first dimension
  bool pruned = false;            // a Conv2d or Linear that loses output units
  std::vector<TensorInfo> tensors;  // its parameters, offsets into the original params
};

// Chooses the output units a prunable layer keeps, given its weight rows.
using ChooseKept = std::function<std::vector<int64_t>(int layer, const float* weight, int64_t units, int64_t row)>;

// Walks the layers, following which channels or features of each layer's
// input survive. Conv2d and Linear layers before the last of them are pruned
// with `choose`; BatchNorm, ReLU, MaxPool and Dropout keep their input's
// channels; Flatten turns a kept channel into its H*W features.
StatusOr<std::vector<LayerWalk>> Walk(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                      const std::vector<float>& params, const ChooseKept& choose) {
  ASSIGN_OR_RETURN(auto model, Model::Create(spec, input_shape, num_classes));
  if (model->num_keys() != params.size()) {
    return InvalidArgumentError("the model has " + std::to_string(model->num_keys()) + " parameters, got " +
                                std::to_string(params.size()));
  }
  int last = -1;  // the last Conv2d or Linear: its outputs are the classes
  for (int i = 0; i < spec.layer_size(); ++i) {
    const auto kind = spec.layer(i).kind_case();
    if (kind == proto::LayerSpec::kConv2D || kind == proto::LayerSpec::kLinear) last = i;
  }
  std::vector<LayerWalk> walk;
  Shape shape = input_shape;
  std::vector<int64_t> kept = AllIndices(shape[0]);
  size_t next_tensor = 0;
  for (int i = 0; i < spec.layer_size(); ++i) {
    ASSIGN_OR_RETURN(auto layer, CreateLayer(spec.layer(i), shape));
    LayerWalk w;
    w.in_shape = shape;
    w.in_kept = kept;
    for (size_t p = 0; p < layer->param_shapes().size(); ++p) w.tensors.push_back(model->tensors()[next_tensor++]);
    const Shape& out = layer->out_shape();
    switch (spec.layer(i).kind_case()) {
      case proto::LayerSpec::kConv2D:
      case proto::LayerSpec::kLinear: {
        const TensorInfo& weight = w.tensors[0];
        const int64_t units = weight.shape[0];
        if (i < last) {
          w.pruned = true;
          w.out_kept = choose(i, params.data() + weight.offset, units, static_cast<int64_t>(weight.size) / units);
        } else {
          w.out_kept = AllIndices(units);
        }
        break;
      }
      case proto::LayerSpec::kBatchNorm:
      case proto::LayerSpec::kRelu:
      case proto::LayerSpec::kDropout:
      case proto::LayerSpec::kMaxPool2D:
        w.out_kept = kept;  // per channel (or feature): the same ones survive
        break;
      case proto::LayerSpec::kFlatten: {
        const int64_t inner = NumElements(shape) / shape[0];
        for (int64_t c : kept) {
          for (int64_t j = 0; j < inner; ++j) w.out_kept.push_back(c * inner + j);
        }
        break;
      }
      case proto::LayerSpec::kEmbedding:
        return InvalidArgumentError("model.layer[" + std::to_string(i) + "] is an embedding: structured pruning does "
                                    "not support embedding models (use --prune-mode unstructured, which leaves the "
                                    "embedding as it is)");
      default:
        return InvalidArgumentError("model.layer[" + std::to_string(i) + "]: structured pruning does not know " +
                                    layer->type() + " layers");
    }
    kept = w.out_kept;
    shape = out;
    walk.push_back(std::move(w));
  }
  return walk;
}

// The units of the smallest L1 norm go, the lower index first among equals.
std::vector<int64_t> KeepByL1(double sparsity, const float* weight, int64_t units, int64_t row) {
  std::vector<double> norm(static_cast<size_t>(units), 0.0);
  for (int64_t o = 0; o < units; ++o) {
    for (int64_t k = 0; k < row; ++k) norm[o] += std::fabs(static_cast<double>(weight[o * row + k]));
    if (std::isnan(norm[o])) norm[o] = INFINITY;
  }
  std::vector<int64_t> order = AllIndices(units);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return norm[a] != norm[b] ? norm[a] < norm[b] : a < b; });
  const int64_t remove = std::min(PruneCount(sparsity, units), units - 1);
  std::vector<int64_t> kept(order.begin() + remove, order.end());
  std::sort(kept.begin(), kept.end());
  return kept;
}

int64_t CountPrunable(const std::vector<TensorInfo>& tensors) {
  int64_t n = 0;
  for (const TensorInfo& t : tensors) n += IsPrunableWeight(t) ? static_cast<int64_t>(t.size) : 0;
  return n;
}

}  // namespace

bool IsPrunableWeight(const TensorInfo& tensor) {
  // An embedding's table ("layer0.embedding.weight") is a lookup, not a
  // product: a zeroed entry changes what its id means, and the layer runs no
  // faster. Tensors are named "layerI.TYPE.NAME" (Model::Create).
  if (tensor.name.find(".embedding.") != std::string::npos) return false;
  return tensor.trainable && tensor.shape.size() >= 2;
}

int64_t PruneCount(double sparsity, int64_t n) {
  if (!(sparsity > 0) || n <= 0) return 0;
  const double product = std::round(sparsity * static_cast<double>(n) * 1e6) / 1e6;
  return std::min<int64_t>(n, static_cast<int64_t>(std::floor(product)));
}

StatusOr<UnstructuredPruning> PruneUnstructured(const std::vector<TensorInfo>& tensors, double sparsity,
                                                std::vector<float>* params) {
  if (!(sparsity >= 0 && sparsity < 1)) {
    return InvalidArgumentError("the sparsity must be in [0, 1), got " + std::to_string(sparsity));
  }
  std::vector<uint64_t> keys;
  for (const TensorInfo& t : tensors) {
    if (!IsPrunableWeight(t)) continue;
    if (t.offset + t.size > params->size()) {
      return InvalidArgumentError("tensor " + t.name + " lies past the " + std::to_string(params->size()) +
                                  " parameters");
    }
    for (uint64_t k = t.offset; k < t.offset + t.size; ++k) keys.push_back(k);
  }
  UnstructuredPruning result;
  result.weights = static_cast<int64_t>(keys.size());
  result.pruned = PruneCount(sparsity, result.weights);
  float* w = params->data();
  if (result.pruned > 0) {
    // (|w|, key) is a strict total order: exactly `pruned` keys come before the nth.
    auto smaller = [w](uint64_t a, uint64_t b) {
      const float ma = Magnitude(w[a]), mb = Magnitude(w[b]);
      return ma != mb ? ma < mb : a < b;
    };
    std::nth_element(keys.begin(), keys.begin() + (result.pruned - 1), keys.end(), smaller);
    result.threshold = Magnitude(w[keys[result.pruned - 1]]);
    for (int64_t i = 0; i < result.pruned; ++i) w[keys[i]] = 0.0f;
  }
  for (uint64_t k : keys) result.zeros += w[k] == 0.0f;
  return result;
}

StatusOr<StructuredPruning> PruneStructured(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                            const std::vector<float>& params, double sparsity) {
  if (!(sparsity >= 0 && sparsity < 1)) {
    return InvalidArgumentError("the sparsity must be in [0, 1), got " + std::to_string(sparsity));
  }
  auto choose = [sparsity](int, const float* weight, int64_t units, int64_t row) {
    return KeepByL1(sparsity, weight, units, row);
  };
  ASSIGN_OR_RETURN(std::vector<LayerWalk> walk, Walk(spec, input_shape, num_classes, params, choose));
  StructuredPruning result;
  result.spec = spec;
  result.params.reserve(params.size());
  for (size_t i = 0; i < walk.size(); ++i) {
    const LayerWalk& w = walk[i];
    result.kept.push_back(w.pruned ? w.out_kept : std::vector<int64_t>());
    proto::LayerSpec* layer = result.spec.mutable_layer(static_cast<int>(i));
    if (w.pruned && layer->has_conv2d()) layer->mutable_conv2d()->set_out_channels(static_cast<int32_t>(w.out_kept.size()));
    if (w.pruned && layer->has_linear()) layer->mutable_linear()->set_out_features(static_cast<int32_t>(w.out_kept.size()));
    for (const TensorInfo& t : w.tensors) {
      const float* from = params.data() + t.offset;
      if (t.shape.size() >= 2) {
        // [out, in_shape[0] * inner]: the kept rows, and in each the kept
        // input channels' (or features') blocks of `inner` values (Conv2d:
        // k*k; Linear: a channel's H*W after Flatten, else 1).
        const int64_t row = static_cast<int64_t>(t.size) / t.shape[0];
        const int64_t inner = row / w.in_shape[0];
        for (int64_t o : w.out_kept) {
          for (int64_t c : w.in_kept) {
            const float* block = from + o * row + c * inner;
            result.params.insert(result.params.end(), block, block + inner);
          }
        }
      } else {
        // A bias follows its layer's outputs; BatchNorm's tensors its channels (the same).
        for (int64_t o : w.out_kept) result.params.push_back(from[o]);
      }
    }
  }
  auto pruned_model = Model::Create(result.spec, input_shape, num_classes);
  if (!pruned_model.ok()) return InternalError("the pruned model does not build: " + pruned_model.status().message());
  if ((*pruned_model)->num_keys() != result.params.size()) {
    return InternalError("the pruned model has " + std::to_string((*pruned_model)->num_keys()) +
                         " parameters, the remapping gave " + std::to_string(result.params.size()));
  }
  auto original = Model::Create(spec, input_shape, num_classes);
  result.params_before = params.size();
  result.params_after = result.params.size();
  result.weights_before = CountPrunable((*original)->tensors());
  result.weights_after = CountPrunable((*pruned_model)->tensors());
  return result;
}

std::vector<float> SilenceRemovedUnits(const proto::ModelSpec& spec, const Shape& input_shape,
                                       const std::vector<float>& params, const StructuredPruning& pruning) {
  auto choose = [&](int layer, const float*, int64_t, int64_t) { return pruning.kept[layer]; };
  std::vector<float> out = params;
  // The class count: what the last layer gives.
  Shape shape = input_shape;
  for (const proto::LayerSpec& l : spec.layer()) {
    auto layer = CreateLayer(l, shape);
    if (!layer.ok()) return out;
    shape = (*layer)->out_shape();
  }
  const int num_classes = static_cast<int>(NumElements(shape));
  auto walk = Walk(spec, input_shape, num_classes, params, choose);
  if (!walk.ok()) return out;
  for (const LayerWalk& w : *walk) {
    for (const TensorInfo& t : w.tensors) {
      if (!t.trainable) continue;  // running statistics: a zero scale silences the channel anyway
      const int64_t units = t.shape[0];
      const int64_t row = static_cast<int64_t>(t.size) / units;
      std::vector<bool> keep(static_cast<size_t>(units), false);
      for (int64_t o : w.out_kept) keep[o] = true;
      for (int64_t o = 0; o < units; ++o) {
        if (!keep[o]) std::fill(out.begin() + t.offset + o * row, out.begin() + t.offset + (o + 1) * row, 0.0f);
      }
    }
  }
  return out;
}

}  // namespace tessera
