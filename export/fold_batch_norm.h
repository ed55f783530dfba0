// Folds each BatchNorm that directly follows a float Conv2d or Linear into
// that layer, for inference: in evaluation BatchNorm is y = x * a + b per
// channel (a = weight / sqrt(running_var + epsilon), b = bias - running_mean
// * a), so the layer before it can compute it instead, with each output
// channel's weights times a and its bias times a plus b. The model loses a
// pass over its activations, and the convolution can fuse the ReLU and max
// pooling after it (Model::PrepareForInference), or become one int8 layer
// (export/quantize.h folds before it quantizes).
//
// The folded model's outputs equal the original's up to float rounding.
#ifndef TESSERA_EXPORT_FOLD_BATCH_NORM_H_
#define TESSERA_EXPORT_FOLD_BATCH_NORM_H_

#include <vector>

#include "core/status.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

struct FoldedModel {
  proto::ModelSpec spec;  // without the folded BatchNorms; their layers have a bias
  std::vector<float> params;  // in that spec's key order
  int folded = 0;             // BatchNorms folded away
};

// `params` in `spec`'s key order for inputs of `input_shape` (with
// `categorical_rows` as Model::Create takes them, for a column_embedding).
// Other layers (int8 ones included) and other BatchNorms are kept as they
// are. InvalidArgument when the spec does not build or params do not fit it.
StatusOr<FoldedModel> FoldBatchNorms(const proto::ModelSpec& spec, const Shape& input_shape,
                                     const std::vector<float>& params,
                                     const std::vector<int64_t>& categorical_rows = {});

}  // namespace tessera

#endif  // TESSERA_EXPORT_FOLD_BATCH_NORM_H_
