#include "core/sparse_table_spec.h"

#include <cmath>
#include <cstdio>

namespace tessera {
namespace {

Status Require(bool ok, const std::string& message) { return ok ? OkStatus() : InvalidArgumentError(message); }

std::string Got(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.7g", v);
  return std::string(", got ") + buf;
}

bool IsTableNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

Status ValidateTableName(const proto::ModelSpec& model, int t) {
  const std::string& name = model.sparse_table(t).name();
  const std::string where = "model.sparse_table[" + std::to_string(t) + "].name";
  RETURN_IF_ERROR(Require(!name.empty() && name.size() <= kMaxSparseTableNameLength,
                          where + " must hold 1 to " + std::to_string(kMaxSparseTableNameLength) + " characters, got " +
                              std::to_string(name.size())));
  for (const char c : name) {
    RETURN_IF_ERROR(Require(IsTableNameChar(c), where + " may hold only a-z, 0-9 and '_', got '" + name + "'"));
  }
  for (int other = 0; other < t; ++other) {
    RETURN_IF_ERROR(Require(model.sparse_table(other).name() != name,
                            where + " '" + name + "' is also model.sparse_table[" + std::to_string(other) + "]'s"));
  }
  return OkStatus();
}

// Written so that NaN fails every check.
Status ValidateSparseOptimizer(const proto::SparseOptimizerSpec& o, const std::string& where) {
  if (!proto::SparseOptimizerSpec::Type_IsValid(o.type())) {
    return InvalidArgumentError(where + ".type " + std::to_string(o.type()) + " is unknown");
  }
  RETURN_IF_ERROR(Require(o.learning_rate() > 0 && std::isfinite(o.learning_rate()),
                          where + ".learning_rate must be > 0" + Got(o.learning_rate())));
  const std::pair<const char*, float> non_negative[] = {{"adagrad_epsilon", o.adagrad_epsilon()},
                                                        {"initial_accumulator", o.initial_accumulator()},
                                                        {"ftrl_beta", o.ftrl_beta()},
                                                        {"ftrl_l1", o.ftrl_l1()},
                                                        {"ftrl_l2", o.ftrl_l2()}};
  for (const auto& [name, value] : non_negative) {
    RETURN_IF_ERROR(Require(value >= 0 && std::isfinite(value), where + "." + name + " must be >= 0" + Got(value)));
  }
  RETURN_IF_ERROR(Require(o.beta1() >= 0 && o.beta1() < 1, where + ".beta1 must be in [0, 1)" + Got(o.beta1())));
  RETURN_IF_ERROR(Require(o.beta2() >= 0 && o.beta2() < 1, where + ".beta2 must be in [0, 1)" + Got(o.beta2())));
  return Require(o.epsilon() > 0 && std::isfinite(o.epsilon()), where + ".epsilon must be > 0" + Got(o.epsilon()));
}

Status ValidateSparseTable(const proto::ModelSpec& model, int t) {
  RETURN_IF_ERROR(ValidateTableName(model, t));
  const proto::SparseTableSpec& table = model.sparse_table(t);
  const std::string where = "model.sparse_table[" + std::to_string(t) + "] '" + table.name() + "'";
  RETURN_IF_ERROR(
      Require(table.dim() >= 1 && table.dim() <= kMaxSparseTableDim,
              where + ": dim must be in [1, " + std::to_string(kMaxSparseTableDim) + "]" + Got(table.dim())));
  RETURN_IF_ERROR(Require(table.init_bound() >= 0 && std::isfinite(table.init_bound()),
                          where + ": init_bound must be a finite number >= 0" + Got(table.init_bound())));
  RETURN_IF_ERROR(Require(table.memory_budget_mb() >= 0, where + ": memory_budget_mb must be >= 0" +
                                                             Got(static_cast<double>(table.memory_budget_mb()))));
  RETURN_IF_ERROR(Require(table.admit_after() >= 1 && table.admit_after() <= 255,
                          where + ": admit_after must be in [1, 255]" + Got(table.admit_after())));
  RETURN_IF_ERROR(Require(table.expire_after_steps() >= 0, where + ": expire_after_steps must be >= 0" +
                                                               Got(static_cast<double>(table.expire_after_steps()))));
  return ValidateSparseOptimizer(table.optimizer(), where + ": optimizer");
}

// The wide part of sparse_embedding `e` (at `where`): a table of dim 1
// other than the bags', one id per field, crosses of 2+ distinct fields.
Status ValidateWidePart(const proto::ModelSpec& model, const proto::SparseEmbeddingSpec& e, const std::string& where) {
  if (e.wide_table().empty()) {  // a spec written back (JobSpecToText) holds "" for none
    return Require(e.wide_cross_size() == 0, where + ".wide_cross needs a wide_table (the crosses' weights)");
  }
  const proto::SparseTableSpec* wide = FindSparseTable(model, e.wide_table());
  RETURN_IF_ERROR(
      Require(wide != nullptr, where + ".wide_table '" + e.wide_table() + "' is no model.sparse_table's name"));
  RETURN_IF_ERROR(Require(e.wide_table() != e.table(),
                          where + ".wide_table '" + e.wide_table() + "' is the bags' table too: give it a table of its own"));
  RETURN_IF_ERROR(Require(wide->dim() == 1, where + ".wide_table '" + e.wide_table() +
                                                "' must have dim 1 (a weight per feature)" + Got(wide->dim())));
  RETURN_IF_ERROR(Require(e.values_per_field() == 1,
                          where + ".wide_table needs values_per_field 1 (one id per field)" + Got(e.values_per_field())));
  RETURN_IF_ERROR(Require(e.wide_fields() || e.wide_cross_size() > 0,
                          where + ".wide_table with wide_fields false needs at least one wide_cross"));
  for (int c = 0; c < e.wide_cross_size(); ++c) {
    const auto& fields = e.wide_cross(c).field();
    const std::string cross = where + ".wide_cross[" + std::to_string(c) + "]";
    RETURN_IF_ERROR(Require(fields.size() >= 2, cross + " must cross 2 or more fields" + Got(fields.size())));
    for (int k = 0; k < fields.size(); ++k) {
      const std::string field = cross + ".field[" + std::to_string(k) + "]";
      RETURN_IF_ERROR(Require(fields[k] >= 1 && fields[k] <= e.fields(),
                              field + " must be in [1, " + std::to_string(e.fields()) + "] (fields count from 1)" +
                                  Got(fields[k])));
      for (int before = 0; before < k; ++before) {
        RETURN_IF_ERROR(Require(fields[before] != fields[k], field + ", " + std::to_string(fields[k]) +
                                                                 ", is also field[" + std::to_string(before) + "]"));
      }
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidateSparseTables(const proto::ModelSpec& model) {
  for (int t = 0; t < model.sparse_table_size(); ++t) RETURN_IF_ERROR(ValidateSparseTable(model, t));
  return OkStatus();
}

Status ValidateSparseEmbeddingLayer(const proto::ModelSpec& model, int index) {
  const std::string where = "model.layer[" + std::to_string(index) + "]";
  const proto::SparseEmbeddingSpec& e = model.layer(index).sparse_embedding();
  RETURN_IF_ERROR(Require(index == 0, where + " is a sparse_embedding: it must be the first layer (its inputs are "
                                              "the data's numeric features and id slots)"));
  RETURN_IF_ERROR(Require(FindSparseTable(model, e.table()) != nullptr,
                          where + ".sparse_embedding.table '" + e.table() + "' is no model.sparse_table's name"));
  RETURN_IF_ERROR(Require(e.fields() >= 1, where + ".sparse_embedding.fields must be >= 1" + Got(e.fields())));
  RETURN_IF_ERROR(Require(e.values_per_field() >= 1,
                          where + ".sparse_embedding.values_per_field must be >= 1" + Got(e.values_per_field())));
  return ValidateWidePart(model, e, where + ".sparse_embedding");
}

Status ValidateDotInteractionLayer(const proto::ModelSpec& model, int index) {
  const std::string where = "model.layer[" + std::to_string(index) + "]";
  RETURN_IF_ERROR(Require(index == 1 && model.layer(0).has_sparse_embedding(),
                          where + " is a dot_interaction: it must come right after a sparse_embedding first layer "
                                  "(model.layer[1]; its inputs are the numeric features and the bags)"));
  const auto& bottom = model.layer(index).dot_interaction().bottom_features();
  for (int k = 0; k < bottom.size(); ++k) {
    RETURN_IF_ERROR(Require(bottom[k] >= 1 && bottom[k] <= (1 << 24), where + ".dot_interaction.bottom_features[" +
                                                                          std::to_string(k) +
                                                                          "] must be in [1, 16777216]" + Got(bottom[k])));
  }
  // Without a bottom the numeric features are the vector: their count is the data's, checked by Model::Create.
  const proto::SparseTableSpec* table = FindSparseTable(model, model.layer(0).sparse_embedding().table());
  if (bottom.empty() || table == nullptr) return OkStatus();
  return Require(bottom[bottom.size() - 1] == table->dim(),
                 where + ".dot_interaction.bottom_features ends at " + std::to_string(bottom[bottom.size() - 1]) +
                     ": the vector dotted with the bags needs the table's dim, " + std::to_string(table->dim()));
}

int SparseStatePerValue(proto::SparseOptimizerSpec::Type type) {
  switch (type) {
    case proto::SparseOptimizerSpec::SGD:
      return 0;
    case proto::SparseOptimizerSpec::ADAGRAD:
      return 1;
    case proto::SparseOptimizerSpec::FTRL:
    case proto::SparseOptimizerSpec::ADAM:
      return 2;
  }
  return 2;  // unreachable for a validated spec; the most any rule keeps
}

int64_t SparseRowBytes(const proto::SparseTableSpec& table) {
  const int64_t floats = int64_t{table.dim()} * (1 + SparseStatePerValue(table.optimizer().type()));
  return 4 * floats + kSparseRowOverheadBytes;
}

Status CheckBudgetHoldsABatch(const proto::ModelSpec& model, int index, int batch_size) {
  const proto::SparseEmbeddingSpec& e = model.layer(index).sparse_embedding();
  const proto::SparseTableSpec& table = *FindSparseTable(model, e.table());
  if (table.memory_budget_mb() == 0) return OkStatus();
  const int64_t row_bytes = SparseRowBytes(table);
  const int64_t rows = (table.memory_budget_mb() << 20) / row_bytes;
  const int64_t batch_ids = int64_t{batch_size} * e.fields() * e.values_per_field();
  return Require(rows >= batch_ids,
                 "model.sparse_table '" + table.name() + "': memory_budget_mb " +
                     std::to_string(table.memory_budget_mb()) + " holds " + std::to_string(rows) + " rows of " +
                     std::to_string(row_bytes) + " bytes, fewer than one batch's " + std::to_string(batch_ids) +
                     " ids (batch_size " + std::to_string(batch_size) + " x fields " + std::to_string(e.fields()) +
                     " x values_per_field " + std::to_string(e.values_per_field()) +
                     "): raise memory_budget_mb to at least " +
                     std::to_string((batch_ids * row_bytes + (1 << 20) - 1) >> 20));
}

const proto::SparseTableSpec* FindSparseTable(const proto::ModelSpec& model, const std::string& name) {
  for (const proto::SparseTableSpec& table : model.sparse_table()) {
    if (table.name() == name) return &table;
  }
  return nullptr;
}

}  // namespace tessera
