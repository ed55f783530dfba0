// DotInteraction: DLRM's pairwise dot interaction (DotInteractionSpec,
// issue 16), the layer right after a sparse_embedding. Its input is that
// layer's output, [numeric + fields * dim]: the numeric features, then the
// fields' bags. The numeric features go through the bottom MLP (a Linear and
// a ReLU per width) to b, of dim values; with z_0 = b and z_1..z_F the bags,
// the output is b followed by z_i . z_j for i in 1..F, j in 0..i-1, in that
// order: [dim + F (F + 1) / 2].
//
// The bottom MLP's tensors are this layer's parameters ("bottom0.weight",
// "bottom0.bias", ...; Linear's initialization). Every sum runs in a fixed
// order, so a pass gives the same bits every time. Not thread-safe, as every
// layer.
#ifndef TESSERA_MODELS_DOT_INTERACTION_H_
#define TESSERA_MODELS_DOT_INTERACTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

class DotInteraction : public Layer {
 public:
  // REQUIRES: numeric >= 1, fields >= 1, dim >= 1; bottom_features each >= 1,
  // the last equal to dim (or empty, and numeric == dim).
  DotInteraction(int64_t numeric, int64_t fields, int64_t dim, const std::vector<int64_t>& bottom_features);
  ~DotInteraction() override;

  std::string type() const override { return "dot_interaction"; }
  std::vector<ParamShape> param_shapes() const override;
  void Bind(const float* params, float* grads) override;
  void Forward(const float* x, int64_t batch, float* y, const Pass& pass) override;
  void Backward(const float* x, const float* y, const float* dy, int64_t batch, float* dx) override;

  // The output's values per example: dim + F (F + 1) / 2.
  static int64_t OutputsOf(int64_t fields, int64_t dim) { return dim + fields * (fields + 1) / 2; }

 private:
  // The numeric features of x[batch, in] as a dense [batch, numeric] block.
  void GatherNumeric(const float* x, int64_t batch);
  // acts_[k]: the output of bottom_[k] over the last batch.
  void EnsureBuffers(int64_t batch);
  const float* BottomOutput() const;

  const int64_t numeric_, fields_, dim_;
  std::vector<std::unique_ptr<Layer>> bottom_;  // Linear, Relu, Linear, Relu, ...
  std::vector<float> numeric_in_;               // [batch, numeric]
  std::vector<std::vector<float>> acts_, grad_acts_;
  std::vector<float> d_bottom_in_;  // [batch, numeric]: dL/d numeric (for dx)
  int64_t buffer_batch_ = 0;
};

// The layer `spec` (layer `index` of `model`) describes for examples of
// `in_shape`: it must come right after the model's sparse_embedding (layer
// 0), and the bottom MLP must end at the table's dim. InvalidArgument
// naming the field otherwise.
StatusOr<std::unique_ptr<Layer>> CreateDotInteraction(const proto::ModelSpec& model, int index, const Shape& in_shape);

}  // namespace tessera

#endif  // TESSERA_MODELS_DOT_INTERACTION_H_
