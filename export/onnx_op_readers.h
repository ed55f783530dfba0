// ONNX import's readers, one per op kind Tessera exports: each maps a node
// of the graph's chain (and, for the forms that take several nodes, the
// nodes after it) to a layer of the ModelSpec, or to what the next layer
// needs (an int8 input's quantization, an embedding's ids). ImportOnnxModel
// (export/onnx_import.cc) walks the chain, checks what every node shares,
// and looks the reader up by op type. Not part of the export library's
// interface: only the importer includes it.
#ifndef TESSERA_EXPORT_ONNX_OP_READERS_H_
#define TESSERA_EXPORT_ONNX_OP_READERS_H_

#include <onnx/onnx_pb.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "export/onnx_import.h"
#include "export/onnx_import_util.h"
#include "models/layer.h"
#include "proto/job.pb.h"

namespace tessera {
namespace onnx_import {

// What the walk over the chain has read so far. The readers update it.
struct ChainState {
  const onnx::GraphProto* graph = nullptr;
  GraphConstants* constants = nullptr;
  ImportedModel* out = nullptr;  // its spec gets the layers

  int next_node = 0;    // index of the node the walk reads next
  std::string current;  // the value the next node of the chain must read
  Shape shape;          // one example's shape of the last layer's output
  std::vector<std::vector<std::string>> layer_params;  // initializer names per layer, in param order
  std::string logits_value;  // the value the last layer (or an Identity) produced
  // The input quantization a QuantizeLinear/DequantizeLinear pair set for
  // the next Conv or Gemm.
  std::optional<proto::Int8Spec> pending_int8;
  // An embedding's ids (the output of Round and Cast to int64), which the
  // next node must Gather by.
  std::optional<std::string> pending_ids;
  bool softmax_seen = false;  // the head (a Softmax or a Sigmoid), after which nothing may come
  bool sigmoid_seen = false;  // the head is a binary model's Sigmoid
  bool any_int8 = false;
};

// A node of the chain, checked by the walk: it reads `current` (a Gather as
// its indices), has one output, and its other inputs are initializers or
// derived weights, each used once.
struct ChainNode {
  const onnx::NodeProto* node = nullptr;
  int index = 0;
  std::string where;                // NodeWhere
  std::vector<std::string> params;  // the parameter inputs, in input order
};

// Reads one node (maybe with the nodes after it, advancing
// state->next_node past them). InvalidArgument naming the node when it is
// not in a form Tessera reads.
using OpReader = Status (*)(ChainNode* node, ChainState* state);

// A sparse_linear first layer: the Reshape of the input and the twelve
// nodes after it that export/onnx_export.cc writes, exactly
// (export/onnx_sparse_linear_reader.cc). Sets out->sparse_features.
Status ReadSparseLinear(ChainNode* node, ChainState* state);

// A sparse_embedding first layer: the graph's "rows" input `rows_input` and
// the three nodes export/onnx_export.cc's AddSparseEmbedding writes first,
// exactly (export/onnx_sparse_embedding_reader.cc). Sets out->sparse_table,
// the layer and its table in out->spec, and out->input_shape
// [numeric + fields]; the walk goes on after the Concat.
Status ReadSparseEmbedding(const onnx::ValueInfoProto& rows_input, ChainState* state);

// The reader for nodes of op type `op`; null for an op Tessera does not read.
OpReader FindOpReader(const std::string& op);

// Appends `layer` (read from `node`, whose params are its parameters) to the
// spec, checked against the node's parameters' shapes; the chain then reads
// the node's output. A layer number in the node name ("layer4.relu") fills
// Tessera's dropout layers (no node) back in where numbers skip.
// InvalidArgument naming the node when the layer does not build or a
// parameter's shape is not the layer's.
Status AddLayer(const ChainNode& node, const proto::LayerSpec& layer, ChainState* state);

// The reader of a column_embedding first layer, from its first Slice
// (export/onnx_column_embedding_reader.cc): the whole pattern of nodes, the
// tables' rows into state->out->categorical_rows.
Status ReadColumnEmbedding(ChainNode* node, ChainState* state);

}  // namespace onnx_import
}  // namespace tessera

#endif  // TESSERA_EXPORT_ONNX_OP_READERS_H_
