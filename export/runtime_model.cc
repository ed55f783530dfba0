#include "export/runtime_model.h"

#include <algorithm>
#include <string>

#include "export/fold_batch_norm.h"

namespace tessera {

Device RuntimeDevice(const ImportedModel& imported, Device wanted) {
  // int8 kernels: oneDNN's, CPU only; sparse_linear, sparse_embedding: CPU only (CheckDeviceLayers).
  return imported.precision == "int8" || imported.sparse_features > 0 || imported.sparse_table != nullptr
             ? Device::kCpu
             : wanted;
}

namespace {

// A sparse_linear model (libsvm data): its layers as they are, on the
// [K, 2] pairs its first layer takes (the graph's [2K], the same floats);
// a sparse_embedding model (a sparse table) on its [numeric + fields]. Their
// batch norms stay unfolded, as training's evaluation computed them
// (folding needs each layer's shape, and CreateLayer knows neither layer).
StatusOr<std::unique_ptr<Model>> BuildSparseModel(const ImportedModel& imported) {
  const Shape input =
      imported.sparse_features > 0 ? Shape{imported.input_shape[0] / 2, 2} : imported.input_shape;
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                   Model::Create(imported.spec, input, imported.num_classes, Device::kCpu,
                                 /*categorical_rows=*/{}, imported.sparse_features));
  if (model->num_keys() != imported.params.size()) {
    return InvalidArgumentError("the model has " + std::to_string(model->num_keys()) + " parameters, the file " +
                                std::to_string(imported.params.size()));
  }
  std::copy(imported.params.begin(), imported.params.end(), model->params());
  model->PrepareForInference();
  return model;
}

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildRuntimeModel(const ImportedModel& imported, Device device) {
  if (imported.sparse_features > 0 || imported.sparse_table != nullptr) return BuildSparseModel(imported);
  // Batch norms after a convolution or linear layer become part of it: one
  // pass less, and the convolution fuses the ReLU and pooling after it.
  ASSIGN_OR_RETURN(FoldedModel folded,
                   FoldBatchNorms(imported.spec, imported.input_shape, imported.params, imported.categorical_rows));
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Create(folded.spec, imported.input_shape,
                                                               imported.num_classes, RuntimeDevice(imported, device),
                                                               imported.categorical_rows));
  if (model->num_keys() != folded.params.size()) {  // FoldBatchNorms checked the count: not reached
    return InvalidArgumentError("the model has " + std::to_string(model->num_keys()) + " parameters, the file " +
                                std::to_string(folded.params.size()) + " (batch norms folded)");
  }
  std::copy(folded.params.begin(), folded.params.end(), model->params());
  model->PrepareForInference();  // fused convolutions; the model never trains
  return model;
}

}  // namespace tessera
