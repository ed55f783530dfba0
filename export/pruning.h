// Pruning a trained model for export (`tessera export --prune-sparsity S
// --prune-mode unstructured|structured`): pure functions on a ModelSpec, its
// tensors and its flat parameters (key order), no files, no processes.
//
// Unstructured: global magnitude pruning. Over every prunable weight (the
// weight tensors of Conv2d and Linear layers: trainable, rank >= 2; never a
// bias nor BatchNorm's tensors) the fraction S with the smallest |w| becomes
// exactly 0, under one threshold for the whole model. The model keeps its
// shapes.
//
// Structured: each Conv2d loses the fraction S of its output channels and
// each hidden Linear the fraction S of its neurons (never the last Conv2d or
// Linear, whose outputs are the classes), those of the smallest L1 norm of
// their weights within the layer. The layers really shrink: a smaller
// ModelSpec, and the parameters remapped through the layers that follow (the
// next Conv2d's input channels, BatchNorm's channels, a Linear's inputs; after
// Flatten, a channel is H*W consecutive features).
#ifndef TESSERA_EXPORT_PRUNING_H_
#define TESSERA_EXPORT_PRUNING_H_

#include <cstdint>
#include <vector>

#include "core/key_range.h"
#include "core/status.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {

// A weight that pruning applies to: trainable, of rank >= 2 (Conv2d's and
// Linear's weights), never an embedding's table.
bool IsPrunableWeight(const TensorInfo& tensor);

// floor(sparsity * n), with sparsity * n first rounded to 6 decimals so that
// 0.29 * 100 gives 29 and not 28 (0.29 is not exact in binary).
int64_t PruneCount(double sparsity, int64_t n);

struct UnstructuredPruning {
  int64_t weights = 0;  // elements of the prunable tensors
  int64_t pruned = 0;   // set to 0: PruneCount(sparsity, weights)
  int64_t zeros = 0;    // prunable elements exactly 0 afterwards
  float threshold = 0;  // the largest |w| pruned (0 when none)
};

// Global magnitude pruning of `params` (the model of `tensors`, in key
// order), in place: the PruneCount(sparsity, weights) prunable weights of
// smallest |w| become +0.0f. Equal magnitudes are taken in key order (the
// lower key first), so the count is exact and the result deterministic; NaN
// counts as the largest magnitude. InvalidArgument unless 0 <= sparsity < 1
// and the tensors lie within params.
StatusOr<UnstructuredPruning> PruneUnstructured(const std::vector<TensorInfo>& tensors, double sparsity,
                                                std::vector<float>* params);

struct StructuredPruning {
  proto::ModelSpec spec;      // the smaller model (loss and other fields kept)
  std::vector<float> params;  // its parameters, key order
  // Per layer of the original spec: the output channels (Conv2d) or features
  // (Linear) it keeps, as original indices in increasing order; empty for
  // the layers that are not pruned.
  std::vector<std::vector<int64_t>> kept;
  uint64_t params_before = 0, params_after = 0;
  int64_t weights_before = 0, weights_after = 0;  // prunable weights (IsPrunableWeight)
};

// Structured pruning of the model `spec` for examples of `input_shape` with
// `num_classes` outputs, whose parameters are `params`: in each prunable
// layer the PruneCount(sparsity, units) output units of the smallest L1 norm
// (of the unit's whole weight row in the original model; equal norms: the
// lower index goes first) are removed, keeping at least one. InvalidArgument
// when the spec does not build, params has another size, sparsity is outside
// [0, 1), or a layer kind is unknown to the remapping (an embedding: such
// models are refused).
StatusOr<StructuredPruning> PruneStructured(const proto::ModelSpec& spec, const Shape& input_shape, int num_classes,
                                            const std::vector<float>& params, double sparsity);

// The original model's parameters with every unit `pruning` removed silenced:
// its weights and bias and, in any BatchNorm it feeds (directly or through
// ReLU, MaxPool, Dropout, Flatten), the scale and shift of its channels set
// to 0. Such a model computes what the pruned one does (a silenced unit
// outputs 0 everywhere), which is how the tests check the remapping.
// REQUIRES: `pruning` came from PruneStructured(spec, input_shape, ...,
// params, ...).
std::vector<float> SilenceRemovedUnits(const proto::ModelSpec& spec, const Shape& input_shape,
                                       const std::vector<float>& params, const StructuredPruning& pruning);

}  // namespace tessera

#endif  // TESSERA_EXPORT_PRUNING_H_
