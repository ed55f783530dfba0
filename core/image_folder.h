// Image folders: a data set laid out as DIR/CLASS_NAME/IMAGE, one folder per
// class, the images PNG or JPEG files (core/image_decode.h). A job's two
// folders (DataSpec format IMAGE_FOLDER) are listed and checked through
// core/image_folder_data.h.
//
// ListImageFolder reads the layout once (the scheduler's job): the class
// names are the class folders' names sorted bytewise, a class's label is its
// index in that order, and the images are listed class by class, each
// class's files sorted bytewise by name, so every machine that lists the same
// folder gets the same example indexes. CheckImageFolder then reads every
// image once, so that a bad file stops the job before anything trains. A
// worker reads one image by index (ReadFolderImage) with nothing but the
// listing: no index file, no scan.
//
// What is listed:
//   - a class folder is a directory (or a link to one) directly inside DIR
//     whose name does not start with '.'; at least 1, at most 256 (labels
//     are bytes), names without control characters;
//   - an image is a regular file (or a link to one) directly inside a class
//     folder whose name ends in .png, .jpg or .jpeg, in any case, and does not
//     start with '.'; the format is then found from its bytes;
//   - names starting with '.' are skipped silently (.DS_Store, editors'
//     and our own scripts' temp files);
//   - anything else (other files, folders inside class folders, files loose
//     in DIR) is ignored, and counted so that the caller can say so.
//   A class folder without images is an error, as is a name ending in an
//   image extension that is not a regular file (a broken link, say).
#ifndef TESSERA_CORE_IMAGE_FOLDER_H_
#define TESSERA_CORE_IMAGE_FOLDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/image_decode.h"
#include "core/status.h"

namespace tessera {

inline constexpr int kMaxImageFolderClasses = 256;

struct ImageFolderEntry {
  std::string name;  // "CLASS/FILE", relative to the listing's dir
  int label = 0;     // the index of CLASS in class_names
};

struct ImageFolderListing {
  std::string dir;                       // as given, without trailing '/'
  std::vector<std::string> class_names;  // a label's name is class_names[label]
  std::vector<ImageFolderEntry> images;  // by label, then by file name
  // Entries ignored (not images, folders inside class folders, files loose in
  // dir; not the hidden ones), and the first of them in listing order
  // ("CLASS/NAME" or "NAME"; "" when none), for a log line.
  int64_t ignored = 0;
  std::string first_ignored;

  // dir + "/" + images[index].name. REQUIRES: 0 <= index < images.size().
  std::string Path(int64_t index) const;
  // How many images each class has, by label.
  std::vector<int64_t> ClassCounts() const;
};

struct ImageFolderOptions {
  // Empty (the default): the classes are the class folders found. Otherwise
  // the class names to label by (a test folder listed with the training
  // folder's names): every class folder must be one of them, and a class may
  // have no folder (then no images); labels are indexes into this list.
  std::vector<std::string> class_names;
};

// Lists `dir` as above. NotFound when dir does not exist; InvalidArgument,
// one line naming the folder, when it is not a directory, has no class
// folders or more than 256, a class folder is empty, has an unknown name
// (with options.class_names) or a control character in its name, or an
// image name is not a regular file; FailedPrecondition naming the folder
// when one cannot be read.
StatusOr<ImageFolderListing> ListImageFolder(const std::string& dir, const ImageFolderOptions& options = {});

// SHA-256 (hex) of what the listing says: the class names, then each image's
// name and label. Two machines whose listings have the same digest read the
// same examples under the same indexes (as long as the files do not change).
std::string ImageFolderDigest(const ImageFolderListing& listing);

struct ImageFolderCheckOptions {
  DecodeOptions decode = {};
  // True (the default): decode every image whole, which finds corrupt and
  // truncated data. False: read the headers only (format, size, channels),
  // much faster but blind to damage after them.
  bool decode_pixels = true;
};

// What CheckImageFolder saw.
struct ImageFolderStats {
  int64_t images = 0;
  int64_t gray_images = 0, color_images = 0;  // 1 channel, 3 channels
  int min_width = 0, min_height = 0, max_width = 0, max_height = 0;
  int64_t file_bytes = 0;
};

// Reads every image of the listing in order and returns the first error:
// DecodeImage's (InvalidArgument, one line starting with the image's path),
// NotFound or DataLoss from reading the file.
StatusOr<ImageFolderStats> CheckImageFolder(const ImageFolderListing& listing,
                                            const ImageFolderCheckOptions& options = {});

// Decodes image `index` of the listing (ReadImageFile on its Path); its label
// is listing.images[index].label. OutOfRange for an index outside the
// listing, ReadImageFile's errors otherwise.
StatusOr<Image> ReadFolderImage(const ImageFolderListing& listing, int64_t index, const DecodeOptions& options = {});

}  // namespace tessera

#endif  // TESSERA_CORE_IMAGE_FOLDER_H_
