#include "export/runtime_model.h"

#include <algorithm>
#include <string>

#include "export/fold_batch_norm.h"

namespace tessera {

Device RuntimeDevice(const ImportedModel& imported, Device wanted) {
  return imported.precision == "int8" ? Device::kCpu : wanted;  // int8 kernels: oneDNN's, CPU only
}

StatusOr<std::unique_ptr<Model>> BuildRuntimeModel(const ImportedModel& imported, Device device) {
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
