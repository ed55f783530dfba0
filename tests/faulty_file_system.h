// A file system for tests that fails where the test says: the next write,
// fsync or rename of a path holding a given text. A full disk writes half
// the bytes, then fails with ENOSPC's message. Everything else goes to the
// machine's own file system.
#ifndef TESSERA_TESTS_FAULTY_FILE_SYSTEM_H_
#define TESSERA_TESTS_FAULTY_FILE_SYSTEM_H_

#include <memory>
#include <string>
#include <string_view>

#include "core/file_system.h"

namespace tessera {

class FaultyFileSystem : public FileSystem {
 public:
  enum class Fault { kNone, kDiskFull, kSyncError, kRenameError };

  // The next operation of `fault`'s kind on a path containing `needle` fails, once.
  void FailNext(Fault fault, const std::string& needle) {
    fault_ = fault;
    needle_ = needle;
  }
  // How many faults have struck.
  int struck() const { return struck_; }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, LocalFileSystem()->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, path, std::move(file)));
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (Strikes(Fault::kRenameError, from)) return UnavailableError("cannot rename " + from + " to " + to + ": Input/output error");
    return LocalFileSystem()->Rename(from, to);
  }
  Status RemoveFile(const std::string& path) override { return LocalFileSystem()->RemoveFile(path); }
  Status SyncDirectory(const std::string& dir) override { return LocalFileSystem()->SyncDirectory(dir); }
  Status MakeDirs(const std::string& path) override { return LocalFileSystem()->MakeDirs(path); }

 private:
  class File : public WritableFile {
   public:
    File(FaultyFileSystem* fs, std::string path, std::unique_ptr<WritableFile> file)
        : fs_(fs), path_(std::move(path)), file_(std::move(file)) {}
    Status Append(std::string_view data) override {
      if (fs_->Strikes(Fault::kDiskFull, path_)) {
        file_->Append(data.substr(0, data.size() / 2)).IgnoreError();  // a short write
        return UnavailableError("cannot write " + path_ + ": No space left on device");
      }
      return file_->Append(data);
    }
    Status Sync() override {
      if (fs_->Strikes(Fault::kSyncError, path_)) return UnavailableError("cannot flush " + path_ + ": Input/output error");
      return file_->Sync();
    }
    Status Close() override { return file_->Close(); }

   private:
    FaultyFileSystem* fs_;
    std::string path_;
    std::unique_ptr<WritableFile> file_;
  };

  bool Strikes(Fault kind, const std::string& path) {
    if (fault_ != kind || path.find(needle_) == std::string::npos) return false;
    fault_ = Fault::kNone;
    ++struck_;
    return true;
  }

  Fault fault_ = Fault::kNone;
  std::string needle_;
  int struck_ = 0;
};

}  // namespace tessera

#endif  // TESSERA_TESTS_FAULTY_FILE_SYSTEM_H_
