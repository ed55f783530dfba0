// SparseLinear: the first layer of a model over libsvm data
// (SparseLinearSpec). An example is K (index, value) pairs, shape [K, 2],
// the indexes features in [0, num_features) as floats or -1 for a padding
// pair; the layer gives y = bias + sum_k value_k * weight[index_k] of
// [out_features], with weight [num_features, out_features] (one row per
// feature): an embedding bag with per-example weights, sum mode. Its input
// never holds a dense vector of num_features values.
//
// The weight's rows are the ids of IdLayout::Pairs, so the model's sparse
// pushes (Model::sparse_tensors, touched_runs) send only the rows a batch
// read. Backward, as Embedding's, zeroes only the rows the previous
// Backward wrote (the whole weight after Bind() gave it a new buffer), then
// adds value * dy into each pair's row; the bias gradient is dense. Inputs
// get no gradient (dx, when asked, is zero). Not thread-safe, as every layer.
#ifndef TESSERA_MODELS_SPARSE_LINEAR_H_
#define TESSERA_MODELS_SPARSE_LINEAR_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "models/id_layout.h"
#include "models/layer.h"

namespace tessera {

class SparseLinear : public Layer {
 public:
  // REQUIRES: pairs >= 1, num_features in [1, 2^24], out >= 1.
  SparseLinear(int64_t pairs, int64_t num_features, int64_t out);

  std::string type() const override { return "sparse_linear"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  // A pair whose index is not a feature (padding, or invalid, which the
  // worker refuses before a pass) adds nothing and gets no gradient.
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

  const IdLayout& layout() const { return layout_; }
  int64_t num_features() const { return layout_.total_rows(); }

 private:
  IdLayout layout_;
  const float* weight_ = nullptr;  // [num_features, out], borrowed; the bias follows it
  float* weight_grad_ = nullptr;   // the same layout in the gradient buffer
  std::vector<int64_t> dirty_rows_;  // rows of weight_grad_ holding a gradient; all when whole_dirty_
  bool whole_dirty_ = true;
};

// The layer `spec` describes for examples of `in_shape` ([K, 2] pairs) over
// `num_features` features (LibsvmData.num_features). InvalidArgument naming
// the problem: no libsvm data (num_features 0), a shape that is not [K, 2],
// out_features < 1, num_features over 2^24, or a weight too large.
StatusOr<std::unique_ptr<Layer>> CreateSparseLinear(const proto::SparseLinearSpec& spec, const Shape& in_shape,
                                                    int64_t num_features);

}  // namespace tessera

#endif  // TESSERA_MODELS_SPARSE_LINEAR_H_
