#include "models/layer.h"

#include "models/linear.h"
#include "models/relu.h"

namespace tessera {

StatusOr<std::unique_ptr<Layer>> CreateLayer(const proto::LayerSpec& spec, int64_t in_features) {
  switch (spec.kind_case()) {
    case proto::LayerSpec::kLinear: {
      const int64_t out = spec.linear().out_features();
      if (out < 1) return InvalidArgumentError("linear.out_features must be >= 1, got " + std::to_string(out));
      if (in_features * out > (int64_t{1} << 31)) {
        return InvalidArgumentError("linear layer of " + std::to_string(in_features) + "x" + std::to_string(out) +
                                    " weights is too large");
      }
      return std::unique_ptr<Layer>(new Linear(in_features, out, spec.linear().bias()));
    }
    case proto::LayerSpec::kRelu:
      return std::unique_ptr<Layer>(new Relu(in_features));
    case proto::LayerSpec::KIND_NOT_SET:
      break;
  }
  return InvalidArgumentError("layer sets no kind");
}

}  // namespace tessera
