// ONNX import of a column_embedding first layer (onnx_export.cc's
// AddColumnEmbedding): one pattern of nodes, read whole, each node checked
// here as the walk checks a chain node (op, inputs, one output, attributes,
// initializers each used once).
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/categorical.h"
#include "export/onnx_op_readers.h"

namespace tessera {
namespace onnx_import {
namespace {

// The graph's next node, state->next_node (which moves past it), as the
// pattern's `op`: in the default domain, `inputs` inputs, input `data_input`
// reading `reads`, one output, no attribute but `attributes`. `after` names
// the node before, for a node that is missing.
StatusOr<ChainNode> NextPatternNode(ChainState* state, const std::string& op, int inputs, int data_input,
                                    const std::string& reads, const std::set<std::string>& attributes,
                                    const std::string& after) {
  if (state->next_node >= state->graph->node_size()) {
    return InvalidArgumentError(after + ": the graph ends where a column_embedding's " + op + " must follow");
  }
  ChainNode node;
  node.index = state->next_node;
  node.node = &state->graph->node(node.index);
  node.where = NodeWhere(*node.node, node.index);
  const onnx::NodeProto& n = *node.node;
  if (n.op_type() != op || (!n.domain().empty() && n.domain() != "ai.onnx")) {
    return InvalidArgumentError(node.where + ": a column_embedding's " + op + " must follow " + after);
  }
  if (n.input_size() != inputs || n.input(data_input) != reads || n.output_size() != 1) {
    return InvalidArgumentError(node.where + ": a column_embedding's " + op + " has " + std::to_string(inputs) +
                                " inputs, input " + std::to_string(data_input) + " reading '" + reads +
                                "', and one output");
  }
  RETURN_IF_ERROR(OnlyAttributes(n, attributes, node.where));
  ++state->next_node;
  return node;
}

// Takes the initializer (or float16 weight) `name` for the node at `where`:
// it must exist, be no int8 weight, and not be used yet.
Status TakeConstant(const std::string& name, const std::string& where, ChainState* state) {
  GraphConstants& constants = *state->constants;
  if (!constants.Has(name)) return InvalidArgumentError(where + ": input '" + name + "' is not an initializer");
  if (constants.Int8Weight(name) != nullptr) {
    return InvalidArgumentError(where + ": '" + name + "' is an int8 weight, which a column_embedding cannot read");
  }
  auto derived = constants.derived.find(name);
  if (!constants.used.insert(name).second ||
      (derived != constants.derived.end() && !constants.used.insert(derived->second.values->name()).second)) {
    return InvalidArgumentError(where + ": initializer '" + name + "' is used twice");
  }
  return OkStatus();
}

// An int64 [1] initializer's one value.
StatusOr<int64_t> ScalarInt64(const std::string& name, const std::string& where, const ChainState& state) {
  auto it = state.constants->initializers.find(name);
  if (it == state.constants->initializers.end()) {
    return InvalidArgumentError(where + ": '" + name + "' must be an int64 [1] initializer");
  }
  auto values = TensorInt64s(*it->second);
  if (!values.ok()) return values.status().WithContext(where);
  if (values->size() != 1) return InvalidArgumentError(where + ": '" + name + "' must hold one value");
  return values->front();
}

// The [begin, end) of a column_embedding's Slice `node` over [N, features]:
// inputs data, starts, ends, axes (initializers `params`, no steps), axes
// [1], 0 <= begin < end <= features.
StatusOr<std::pair<int64_t, int64_t>> SliceRange(const ChainNode& node, const std::vector<std::string>& params,
                                                 int64_t features, const ChainState& state) {
  RETURN_IF_ERROR(OnlyAttributes(*node.node, {}, node.where));
  if (params.size() != 3) {
    return InvalidArgumentError(node.where + ": a column_embedding's Slice has inputs data, starts, ends and axes");
  }
  ASSIGN_OR_RETURN(const int64_t begin, ScalarInt64(params[0], node.where, state));
  ASSIGN_OR_RETURN(const int64_t end, ScalarInt64(params[1], node.where, state));
  ASSIGN_OR_RETURN(const int64_t axis, ScalarInt64(params[2], node.where, state));
  if (axis != 1) {
    return InvalidArgumentError(node.where + ": must slice axis 1 (the features), not " + std::to_string(axis));
  }
  if (begin < 0 || end <= begin || end > features) {
    return InvalidArgumentError(node.where + ": slices [" + std::to_string(begin) + ", " + std::to_string(end) +
                                "), not a part of the " + std::to_string(features) + " features");
  }
  return std::make_pair(begin, end);
}

// Each column's table's rows from its first rows in the weight (`offsets`,
// one per column, from 0, rising) and the weight's `total_rows`. Each table
// holds 1 to 2^24 rows, as training's columns (ids travel as float32).
StatusOr<std::vector<int64_t>> RowsOfOffsets(const std::vector<int64_t>& offsets, int64_t total_rows,
                                             int64_t columns, const std::string& where) {
  if (static_cast<int64_t>(offsets.size()) != columns || columns < 1) {
    return InvalidArgumentError(where + ": the row offsets must hold one per categorical column (" +
                                std::to_string(columns) + "), not " + std::to_string(offsets.size()));
  }
  if (offsets[0] != 0) return InvalidArgumentError(where + ": the first column's row offset must be 0");
  std::vector<int64_t> rows;
  for (size_t c = 0; c < offsets.size(); ++c) {
    const int64_t next = c + 1 < offsets.size() ? offsets[c + 1] : total_rows;
    // offsets[c] is in [0, total_rows) here (the check before), so once next
    // is in (offsets[c], total_rows] the difference cannot overflow.
    if (next > total_rows || next <= offsets[c] || next - offsets[c] > kMaxCategoricalIds) {
      return InvalidArgumentError(where + ": column " + std::to_string(c) + "'s table, rows [" +
                                  std::to_string(offsets[c]) + ", " + std::to_string(next) + ") of the weight's " +
                                  std::to_string(total_rows) + ", must hold 1 to 2^24 rows (offsets rising from 0)");
    }
    rows.push_back(next - offsets[c]);
  }
  return rows;
}

}  // namespace

// Tessera's column_embedding, the first layer, over [N, numeric + columns]:
// [Slice numeric,] Slice ids, Round, Cast to int64, Add row offsets, Gather
// (weight, axis 0), Flatten (axis 1)[, Concat (numeric, embedded, axis 1)].
// `node` is the first Slice, which the walk checked and took the initializers of.
Status ReadColumnEmbedding(ChainNode* node, ChainState* state) {
  const std::string& where = node->where;
  if (state->out->spec.layer_size() != 0 || state->shape.size() != 1 || LayerNumber(node->node->name()) > 0) {
    return InvalidArgumentError(where + ": a Slice is read only as the start of a column_embedding first layer "
                                "(over [N, features] inputs)");
  }
  const std::string input = state->current;
  const int64_t features = state->shape[0];
  ASSIGN_OR_RETURN(const auto first, SliceRange(*node, node->params, features, *state));
  // With numeric features, the first Slice takes them and a second one the ids.
  int64_t numeric = 0;
  ChainNode ids = *node;
  const bool numeric_slice = node->index + 1 < state->graph->node_size() &&
                             state->graph->node(node->index + 1).op_type() == "Slice";
  if (numeric_slice) {
    if (first.first != 0) return InvalidArgumentError(where + ": the numeric features' Slice must start at 0");
    numeric = first.second;
    ASSIGN_OR_RETURN(ids, NextPatternNode(state, "Slice", 4, 0, input, {}, where));
    for (int k = 1; k < 4; ++k) {
      RETURN_IF_ERROR(TakeConstant(ids.node->input(k), ids.where, state));
      ids.params.push_back(ids.node->input(k));
    }
    ASSIGN_OR_RETURN(const auto second, SliceRange(ids, ids.params, features, *state));
    if (second.first != numeric || second.second != features) {
      return InvalidArgumentError(ids.where + ": the ids' Slice must take [" + std::to_string(numeric) + ", " +
                                  std::to_string(features) + "), what the numeric features leave");
    }
  } else if (first.first != 0 || first.second != features) {
    return InvalidArgumentError(where + ": the ids' Slice must take every feature [0, " + std::to_string(features) +
                                ") when no numeric Slice comes before it");
  }
  ASSIGN_OR_RETURN(const ChainNode round, NextPatternNode(state, "Round", 1, 0, ids.node->output(0), {}, ids.where));
  ASSIGN_OR_RETURN(const ChainNode cast,
                   NextPatternNode(state, "Cast", 1, 0, round.node->output(0), {"to"}, round.where));
  ASSIGN_OR_RETURN(const int64_t to, IntAttr(*cast.node, "to", -1, cast.where));
  if (to != onnx::TensorProto::INT64) return InvalidArgumentError(cast.where + ": the ids must be cast to int64");
  ASSIGN_OR_RETURN(const ChainNode add, NextPatternNode(state, "Add", 2, 0, cast.node->output(0), {}, cast.where));
  const std::string& offsets_name = add.node->input(1);
  RETURN_IF_ERROR(TakeConstant(offsets_name, add.where, state));
  auto offsets_tensor = state->constants->initializers.find(offsets_name);
  if (offsets_tensor == state->constants->initializers.end()) {
    return InvalidArgumentError(add.where + ": the row offsets '" + offsets_name + "' must be an int64 initializer");
  }
  auto offsets = TensorInt64s(*offsets_tensor->second);
  if (!offsets.ok()) return offsets.status().WithContext(add.where);
  ASSIGN_OR_RETURN(const ChainNode gather,
                   NextPatternNode(state, "Gather", 2, 1, add.node->output(0), {"axis"}, add.where));
  ASSIGN_OR_RETURN(const int64_t gather_axis, IntAttr(*gather.node, "axis", 0, gather.where));
  if (gather_axis != 0) return InvalidArgumentError(gather.where + ": must gather rows (axis 0)");
  const std::string& weight = gather.node->input(0);
  RETURN_IF_ERROR(TakeConstant(weight, gather.where, state));
  const Shape w = state->constants->Dims(weight);
  if (w.size() != 2 || w[0] < 1 || w[1] < 1 || w[1] > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError(gather.where + ": the weight '" + weight + "' must be [rows, dim], got " +
                                ShapeText(w));
  }
  ASSIGN_OR_RETURN(state->out->categorical_rows, RowsOfOffsets(*offsets, w[0], features - numeric, add.where));
  ASSIGN_OR_RETURN(ChainNode last,
                   NextPatternNode(state, "Flatten", 1, 0, gather.node->output(0), {"axis"}, gather.where));
  ASSIGN_OR_RETURN(const int64_t flatten_axis, IntAttr(*last.node, "axis", 1, last.where));
  if (flatten_axis != 1) return InvalidArgumentError(last.where + ": must flatten from axis 1");
  if (numeric > 0) {
    const ChainNode flatten = last;
    ASSIGN_OR_RETURN(last, NextPatternNode(state, "Concat", 2, 0, node->node->output(0), {"axis"}, flatten.where));
    ASSIGN_OR_RETURN(const int64_t concat_axis, IntAttr(*last.node, "axis", -1, last.where));
    if (last.node->input(1) != flatten.node->output(0) || concat_axis != 1) {
      return InvalidArgumentError(last.where + ": must join the numeric features and '" + flatten.node->output(0) +
                                  "' along axis 1");
    }
  }
  proto::LayerSpec layer;
  layer.mutable_column_embedding()->set_embedding_dim(static_cast<int32_t>(w[1]));
  last.params = {weight};
  return AddLayer(last, layer, state);
}

}  // namespace onnx_import
}  // namespace tessera
