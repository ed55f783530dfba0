#include "core/image_folder.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <system_error>

#include "core/file_util.h"
#include "core/sha256.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

struct DirEntry {
  enum Kind { kDirectory, kRegularFile, kOther };
  std::string name;
  Kind kind = kOther;  // after following links; a broken link is kOther
};

// The entries of directory `path`, sorted bytewise by name (std::string
// compares as unsigned bytes).
StatusOr<std::vector<DirEntry>> ReadDirectory(const std::string& path) {
  std::error_code error;
  fs::directory_iterator it(path, error);
  std::vector<DirEntry> entries;
  while (!error && it != fs::directory_iterator()) {
    std::error_code status_error;  // a broken link has no status: kOther
    const fs::file_status status = it->status(status_error);
    DirEntry entry;
    entry.name = it->path().filename().string();
    entry.kind = fs::is_directory(status)      ? DirEntry::kDirectory
                 : fs::is_regular_file(status) ? DirEntry::kRegularFile
                                               : DirEntry::kOther;
    entries.push_back(std::move(entry));
    it.increment(error);
  }
  if (error) return FailedPreconditionError("cannot list " + path + ": " + error.message());
  std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return entries;
}

bool IsHidden(const std::string& name) { return !name.empty() && name[0] == '.'; }

bool EndsWithIgnoringCase(const std::string& name, std::string_view suffix) {
  if (name.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), name.end() - suffix.size(),
                    [](char s, char n) { return s == (n >= 'A' && n <= 'Z' ? n - 'A' + 'a' : n); });
}

bool HasImageExtension(const std::string& name) {
  return EndsWithIgnoringCase(name, ".png") || EndsWithIgnoringCase(name, ".jpg") ||
         EndsWithIgnoringCase(name, ".jpeg");
}

bool HasControlCharacter(const std::string& name) {
  return std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// `name` with control characters written as \xNN, so an error stays one line.
std::string Escaped(const std::string& name) {
  std::string out;
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buffer[5];
      std::snprintf(buffer, sizeof(buffer), "\\x%02x", static_cast<unsigned char>(c));
      out += buffer;
    } else {
      out += c;
    }
  }
  return out;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

void NoteIgnored(const std::string& name, ImageFolderListing* listing) {
  if (listing->ignored++ == 0) listing->first_ignored = name;
}

// The class folders directly inside the listing's dir, sorted; other
// entries counted as ignored.
StatusOr<std::vector<std::string>> FindClassFolders(ImageFolderListing* listing) {
  ASSIGN_OR_RETURN(const std::vector<DirEntry> entries, ReadDirectory(listing->dir));
  std::vector<std::string> folders;
  for (const DirEntry& entry : entries) {
    if (IsHidden(entry.name)) continue;
    if (entry.kind != DirEntry::kDirectory) {
      NoteIgnored(entry.name, listing);
      continue;
    }
    if (HasControlCharacter(entry.name)) {
      return InvalidArgumentError(listing->dir + ": class folder '" + Escaped(entry.name) +
                                  "': a control character in a class name");
    }
    folders.push_back(entry.name);
  }
  if (folders.empty()) {
    return InvalidArgumentError(listing->dir + ": no class folders (expected " + listing->dir +
                                "/CLASS_NAME/ folders of .png, .jpg or .jpeg files)");
  }
  return folders;
}

// Appends the images of class folder `folder` with `label`.
Status ListClassFolder(const std::string& folder, int label, ImageFolderListing* listing) {
  const std::string path = JoinPath(listing->dir, folder);
  ASSIGN_OR_RETURN(const std::vector<DirEntry> entries, ReadDirectory(path));
  const size_t before = listing->images.size();
  for (const DirEntry& entry : entries) {
    if (IsHidden(entry.name)) continue;
    const std::string name = folder + "/" + entry.name;
    if (!HasImageExtension(entry.name)) {
      NoteIgnored(name, listing);
    } else if (entry.kind != DirEntry::kRegularFile) {
      return InvalidArgumentError(JoinPath(listing->dir, name) + ": not a regular file (a folder, or a broken link?)");
    } else {
      listing->images.push_back({name, label});
    }
  }
  if (listing->images.size() == before) {
    return InvalidArgumentError(path + ": class folder '" + folder + "' has no .png, .jpg or .jpeg files");
  }
  return OkStatus();
}

// Each class folder's label: its index among `folders` (the classes found)
// or among options.class_names.
StatusOr<std::map<int, std::string>> LabelFolders(const std::vector<std::string>& folders,
                                                  const ImageFolderOptions& options, ImageFolderListing* listing) {
  const int limit = kMaxImageFolderClasses;
  if (options.class_names.empty()) {
    if (folders.size() > static_cast<size_t>(limit)) {
      return InvalidArgumentError(listing->dir + ": " + std::to_string(folders.size()) + " class folders, at most " +
                                  std::to_string(limit));
    }
    listing->class_names = folders;
  } else {
    if (options.class_names.size() > static_cast<size_t>(limit)) {
      return InvalidArgumentError(listing->dir + ": " + std::to_string(options.class_names.size()) +
                                  " class names given, at most " + std::to_string(limit));
    }
    listing->class_names = options.class_names;
  }
  std::map<int, std::string> by_label;
  for (const std::string& folder : folders) {
    const auto found = std::find(listing->class_names.begin(), listing->class_names.end(), folder);
    if (found == listing->class_names.end()) {
      return InvalidArgumentError(JoinPath(listing->dir, folder) + ": class folder '" + folder + "' is not one of the " +
                                  std::to_string(listing->class_names.size()) + " classes given");
    }
    by_label[static_cast<int>(found - listing->class_names.begin())] = folder;
  }
  return by_label;
}

void AddToStats(const ImageHeader& header, int64_t file_bytes, ImageFolderStats* stats) {
  if (stats->images == 0) {
    stats->min_width = stats->max_width = header.width;
    stats->min_height = stats->max_height = header.height;
  }
  ++stats->images;
  (header.channels == 1 ? stats->gray_images : stats->color_images) += 1;
  stats->min_width = std::min(stats->min_width, header.width);
  stats->max_width = std::max(stats->max_width, header.width);
  stats->min_height = std::min(stats->min_height, header.height);
  stats->max_height = std::max(stats->max_height, header.height);
  stats->file_bytes += file_bytes;
}

}  // namespace

std::string ImageFolderListing::Path(int64_t index) const { return JoinPath(dir, images[index].name); }

std::vector<int64_t> ImageFolderListing::ClassCounts() const {
  std::vector<int64_t> counts(class_names.size(), 0);
  for (const ImageFolderEntry& image : images) ++counts[image.label];
  return counts;
}

StatusOr<ImageFolderListing> ListImageFolder(const std::string& dir, const ImageFolderOptions& options) {
  if (dir.empty()) return InvalidArgumentError("image folder: the path is empty");
  ImageFolderListing listing;
  listing.dir = dir;
  while (listing.dir.size() > 1 && listing.dir.back() == '/') listing.dir.pop_back();
  std::error_code error;
  const fs::file_status status = fs::status(listing.dir, error);
  if (status.type() == fs::file_type::not_found) return NotFoundError(listing.dir + ": no such directory");
  if (error) return FailedPreconditionError("cannot read " + listing.dir + ": " + error.message());
  if (!fs::is_directory(status)) return InvalidArgumentError(listing.dir + ": not a directory");

  ASSIGN_OR_RETURN(const std::vector<std::string> folders, FindClassFolders(&listing));
  ASSIGN_OR_RETURN(const auto by_label, LabelFolders(folders, options, &listing));
  for (const auto& [label, folder] : by_label) RETURN_IF_ERROR(ListClassFolder(folder, label, &listing));
  return listing;
}

std::string ImageFolderDigest(const ImageFolderListing& listing) {
  // Names cannot hold '\0', so it separates them unambiguously.
  Sha256 sha;
  const std::string header = "tessera image folder v1\n" + std::to_string(listing.class_names.size()) + "\n";
  sha.Update(header.data(), header.size());
  for (const std::string& name : listing.class_names) sha.Update(name.c_str(), name.size() + 1);
  for (const ImageFolderEntry& image : listing.images) {
    sha.Update(image.name.c_str(), image.name.size() + 1);
    const uint8_t label = static_cast<uint8_t>(image.label);
    sha.Update(&label, 1);
  }
  return sha.HexDigest();
}

StatusOr<ImageFolderStats> CheckImageFolder(const ImageFolderListing& listing, const ImageFolderCheckOptions& options) {
  ImageFolderStats stats;
  for (int64_t i = 0; i < static_cast<int64_t>(listing.images.size()); ++i) {
    const std::string path = listing.Path(i);
    ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path));
    ASSIGN_OR_RETURN(const ImageHeader header, ReadImageHeader(path, bytes, options.decode));
    if (options.decode_pixels) RETURN_IF_ERROR(DecodeImage(path, bytes, options.decode).status());
    AddToStats(header, static_cast<int64_t>(bytes.size()), &stats);
  }
  return stats;
}

StatusOr<Image> ReadFolderImage(const ImageFolderListing& listing, int64_t index, const DecodeOptions& options) {
  if (index < 0 || index >= static_cast<int64_t>(listing.images.size())) {
    return OutOfRangeError("image " + std::to_string(index) + " of " + listing.dir + ": the folder lists " +
                           std::to_string(listing.images.size()) + " images");
  }
  return ReadImageFile(listing.Path(index), options);
}

}  // namespace tessera
