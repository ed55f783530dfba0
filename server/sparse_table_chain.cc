// The chain of a sparse table's files in a checkpoint part: an incremental
// file, its base beside it, and so on down to a full file
// (server/sparse_table_file.h; docs/FORMATS.md, "Sparse table files").
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include <glog/logging.h>

#include "server/sparse_table_file.h"

namespace tessera {

namespace {

// More files than any chain the spec allows (checkpoint.sparse_full_every).
constexpr uint32_t kMaxChainLength = 1000;

bool SameTable(const SparseTableFileHeader& a, const SparseTableFileHeader& b) {
  return a.name == b.name && a.dim == b.dim && a.state_floats == b.state_floats &&
         a.optimizer_type == b.optimizer_type;
}

// Every file of the chain, open, the newest first.
StatusOr<std::vector<std::unique_ptr<SparseTableFileReader>>> OpenChain(const std::string& part_dir, int table) {
  std::vector<std::unique_ptr<SparseTableFileReader>> chain;
  std::string path = part_dir + "/" + SparseTableFileName(table);
  ASSIGN_OR_RETURN(std::unique_ptr<SparseTableFileReader> newest, SparseTableFileReader::Open(path));
  if (newest->header().chain_length > kMaxChainLength) {
    return DataLossError(path + ": a chain of " + std::to_string(newest->header().chain_length) + " files");
  }
  chain.push_back(std::move(newest));
  while (chain.back()->header().incremental) {
    const SparseTableFileHeader& h = chain.back()->header();
    const std::string expected = SparseChainFileName(table, h.base_step);
    if (h.base_file != expected) {
      return DataLossError(path + ": names its base '" + h.base_file + "', expected '" + expected + "'");
    }
    const std::string base_path = part_dir + "/" + h.base_file;
    auto base = SparseTableFileReader::Open(base_path);
    if (!base.ok()) {
      if (base.status().code() == StatusCode::kNotFound) {
        return DataLossError(base_path + ": the base of " + path + " (from checkpoint " + h.base_checkpoint +
                             ") is missing");
      }
      return base.status();
    }
    const SparseTableFileHeader& b = (*base)->header();
    if (!SameTable(b, h) || b.step != h.base_step || b.step >= h.step || b.latest_step > h.latest_step ||
        b.chain_length + 1 != h.chain_length) {
      return DataLossError(base_path + ": holds table '" + b.name + "' at step " + std::to_string(b.step) +
                           " in a chain of " + std::to_string(b.chain_length) + ", not the base " + path +
                           " names (step " + std::to_string(h.base_step) + ", a chain of " +
                           std::to_string(h.chain_length - 1) + ")");
    }
    path = base_path;
    chain.push_back(std::move(base).value());
  }
  return chain;
}

bool Tombstoned(const SparseTableFileReader& file, uint64_t id) {
  return std::binary_search(file.tombstones().begin(), file.tombstones().end(), id);
}

// Hard-links `from` as `to`; Unavailable naming both when it cannot.
Status Link(const std::string& from, const std::string& to) {
  if (link(from.c_str(), to.c_str()) != 0) {
    return UnavailableError("cannot link " + from + " as " + to + ": " + std::strerror(errno));
  }
  return OkStatus();
}

// The name of the checkpoint directory holding the part directory `part_dir`.
std::string CheckpointName(const std::string& part_dir) {
  const std::string checkpoint = part_dir.substr(0, part_dir.rfind('/'));
  return checkpoint.substr(checkpoint.rfind('/') + 1);
}

// Links the previous part's chain of the snapshot's table into `part_dir`
// and returns the base an incremental file is written against, the links
// added to *written. FailedPrecondition when a full file is due; others
// when the previous chain cannot be read or linked (nothing left linked).
StatusOr<SparseTableFileBase> LinkPreviousChain(const std::string& part_dir, const SparseTableSnapshot& s,
                                                const std::string& previous_part_dir, int full_every,
                                                std::vector<SparseTableFileWritten>* written) {
  ASSIGN_OR_RETURN(std::vector<SparseTableFileHeader> chain, ReadSparseTableChain(previous_part_dir, s.table));
  const SparseTableFileHeader& previous = chain.front();
  if (previous.chain_length >= static_cast<uint32_t>(full_every)) return FailedPreconditionError("a full file is due");
  if (previous.name != s.name || previous.dim != s.dim || previous.state_floats != s.state_floats ||
      previous.optimizer_type != s.optimizer_type || previous.step >= s.step || previous.latest_step > s.latest_step) {
    return FailedPreconditionError(previous_part_dir + " holds another table or a later cut");
  }
  std::vector<SparseTableFileWritten> links;
  for (size_t i = 0; i < chain.size(); ++i) {
    const std::string from = previous_part_dir + "/" + (i == 0 ? SparseTableFileName(s.table) : chain[i - 1].base_file);
    const std::string name = SparseChainFileName(s.table, chain[i].step);
    Status linked = Link(from, part_dir + "/" + name);
    if (!linked.ok()) {
      // Best effort: a link left behind is a file the manifest does not list.
      for (const SparseTableFileWritten& made : links) (void)unlink((part_dir + "/" + made.name).c_str());
      return linked;
    }
    links.push_back({name, from});
  }
  written->insert(written->end(), links.begin(), links.end());
  SparseTableFileBase base;
  base.step = previous.step;
  base.latest_step = previous.latest_step;
  base.chain_length = previous.chain_length;
  base.file = SparseChainFileName(s.table, previous.step);
  base.checkpoint = CheckpointName(previous_part_dir);
  return base;
}

}  // namespace

StatusOr<std::vector<SparseTableFileHeader>> ReadSparseTableChain(const std::string& part_dir, int table) {
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<SparseTableFileReader>> chain, OpenChain(part_dir, table));
  std::vector<SparseTableFileHeader> headers;
  for (const auto& file : chain) headers.push_back(file->header());
  return headers;
}

StatusOr<SparseTableFileHeader> ReadCheckpointSparseTable(const std::string& part_dir, int table,
                                                          const SparseRowVisitor& visit) {
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<SparseTableFileReader>> chain, OpenChain(part_dir, table));
  // A merge of the files by id; has_row[i]: file i's current row is unread.
  std::vector<bool> has_row(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) {
    ASSIGN_OR_RETURN(has_row[i], chain[i]->Next());
  }
  SparseTableFileHeader newest = chain.front()->header();
  newest.count = 0;
  while (true) {
    bool any = false;
    uint64_t id = 0;
    for (size_t i = 0; i < chain.size(); ++i) {
      if (has_row[i] && (!any || chain[i]->id() < id)) id = chain[i]->id();
      any = any || has_row[i];
    }
    if (!any) break;
    // The newest file with a row of `id` or a tombstone for it decides.
    bool decided = false;
    for (size_t i = 0; i < chain.size(); ++i) {
      const bool row_here = has_row[i] && chain[i]->id() == id;
      if (!decided && row_here) {
        RETURN_IF_ERROR(visit(id, chain[i]->row(), chain[i]->last_step()));
        ++newest.count;
      }
      decided = decided || row_here || Tombstoned(*chain[i], id);
      if (row_here) {
        ASSIGN_OR_RETURN(has_row[i], chain[i]->Next());
      }
    }
  }
  return newest;
}

StatusOr<std::vector<SparseTableFileWritten>> WriteCheckpointSparseTable(const std::string& part_dir,
                                                                         const SparseTableSnapshot& snapshot,
                                                                         const std::string& previous_part_dir,
                                                                         int full_every) {
  std::vector<SparseTableFileWritten> written;
  std::optional<SparseTableFileBase> base;
  if (!snapshot.must_be_full && !previous_part_dir.empty() && full_every > 1) {
    auto linked = LinkPreviousChain(part_dir, snapshot, previous_part_dir, full_every, &written);
    if (linked.ok()) {
      base = std::move(linked).value();
    } else if (linked.status().code() != StatusCode::kFailedPrecondition) {
      LOG(WARNING) << "sparse table '" << snapshot.name << "': a full file instead of an incremental one: "
                   << linked.status().ToString();
    }
  }
  const std::string name = SparseTableFileName(snapshot.table);
  RETURN_IF_ERROR(
      WriteSparseTableFile(part_dir + "/" + name, snapshot, base.has_value() ? &*base : nullptr).status());
  written.push_back({name, ""});
  return written;
}

}  // namespace tessera
