// The checks of a model's sparse tables (ModelSpec.sparse_table, issue 16)
// and of the sparse_embedding layer that reads them: the ranges the proto
// comments state, each failure one InvalidArgument naming the field. Spec
// validation (ValidateJobSpec) calls them; Model::Create finds a layer's
// table with FindSparseTable. Functions only: thread-safe.
#ifndef TESSERA_CORE_SPARSE_TABLE_SPEC_H_
#define TESSERA_CORE_SPARSE_TABLE_SPEC_H_

#include <string>

#include "core/status.h"
#include "proto/job.pb.h"

namespace tessera {

inline constexpr int kMaxSparseTableDim = 1024;
inline constexpr int kMaxSparseTableNameLength = 64;

// Every model.sparse_table: a name of [a-z0-9_], 1 to 64 characters, used
// once; dim in [1, 1024]; init_bound finite and >= 0; memory_budget_mb and
// expire_after_steps >= 0; admit_after in [1, 255]; the optimizer's type
// known and its numbers in range (learning_rate > 0; adagrad_epsilon,
// initial_accumulator, ftrl_beta, ftrl_l1, ftrl_l2 >= 0; beta1, beta2 in
// [0, 1); epsilon > 0). InvalidArgument naming the first bad field.
Status ValidateSparseTables(const proto::ModelSpec& model);

// Layer `index` (a sparse_embedding): the first layer, reading a table of
// model.sparse_table, with fields >= 1 and values_per_field >= 1; with a
// wide_table: a table of dim 1 other than `table`, values_per_field 1,
// wide_fields or a wide_cross, and each wide_cross of 2 or more distinct
// fields in [1, fields] (none without a wide_table). InvalidArgument naming
// the field otherwise.
Status ValidateSparseEmbeddingLayer(const proto::ModelSpec& model, int index);

// Layer `index` (a dot_interaction): right after a sparse_embedding first
// layer, each bottom_features in [1, 2^24], the last the table's dim.
// InvalidArgument naming the field otherwise.
Status ValidateDotInteractionLayer(const proto::ModelSpec& model, int index);

// The table of model.sparse_table named `name`; nullptr when there is none.
const proto::SparseTableSpec* FindSparseTable(const proto::ModelSpec& model, const std::string& name);

}  // namespace tessera

#endif  // TESSERA_CORE_SPARSE_TABLE_SPEC_H_
