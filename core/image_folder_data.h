// Image-folder data sets (DataSpec format IMAGE_FOLDER): the job's two
// folders listed as one data set, what the cluster map carries about them,
// and an image made into an example.
//
// The scheduler lists both folders once (ListImageFolders: the training
// folder's class folders are the classes, the test folder is listed with
// them) and sends the workers the class names and each listing's digest
// (DescribeImageFolders), not the listings: each worker lists the folders
// again (ListImageFolderAsPlanned) and refuses to train when it finds
// anything else, so that every worker reads the same image under each
// example index. A worker then decodes each image when a position reaches it
// (WriteImageExample), so its memory does not grow with the data set.
#ifndef TESSERA_CORE_IMAGE_FOLDER_DATA_H_
#define TESSERA_CORE_IMAGE_FOLDER_DATA_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/image_decode.h"
#include "core/image_folder.h"
#include "core/status.h"
#include "proto/job.pb.h"
#include "proto/wire.pb.h"

namespace tessera {

// image.width and image.height are at most this.
inline constexpr int kMaxImageSide = 4096;
// image.mean and image.std when the spec gives none.
inline constexpr float kDefaultImageMean = 0.5f;
inline constexpr float kDefaultImageStd = 0.5f;

// True for the IMAGE_FOLDER format.
bool IsImageFolderFormat(const proto::DataSpec& data);

// The path of split `test`'s folder: data.train_dir or data.test_dir under data.dir.
std::string ImageFolderPath(const proto::DataSpec& data, bool test);

// One example's shape: [channels, height, width].
std::vector<int64_t> ImageExampleShape(const proto::ImageSpec& image);

// The values per example: channels * height * width.
int64_t ImageExampleSize(const proto::ImageSpec& image);

// Both folders of a data set, listed.
struct ImageFolderSplits {
  ImageFolderListing train, test;
};

// Lists data.train_dir (its class folders, sorted, are the classes), then
// data.test_dir with the training folder's class names (a test class
// folder the training folder lacks is an error naming it; a training class
// may have no test folder). InvalidArgument when data.class_names is given
// and is not exactly the class folders' names in that order; otherwise
// ListImageFolder's errors, each one line naming the folder.
StatusOr<ImageFolderSplits> ListImageFolders(const proto::DataSpec& data);

// What the cluster map carries about `splits`: the class names and each
// listing's ImageFolderDigest.
proto::ImageFolderData DescribeImageFolders(const ImageFolderSplits& splits);

// Split `test`'s folder listed again (a worker's view) with `described`'s
// class names. FailedPrecondition naming the folder when it lists other
// images than `described` says the scheduler listed (the folder changed
// since the job was planned, or this machine sees another one); DataLoss
// when `described` holds no classes or digests; ListImageFolder's errors.
StatusOr<ImageFolderListing> ListImageFolderAsPlanned(const proto::DataSpec& data,
                                                      const proto::ImageFolderData& described, bool test);

// What image.random_crop, min_crop_scale and horizontal_flip ask for.
AugmentOptions ImageAugmentOptions(const proto::ImageSpec& image);

// True when training examples are augmented (random_crop or horizontal_flip).
bool ImageAugments(const proto::ImageSpec& image);

// Each channel's mean and std: image.mean and image.std given per channel,
// one for all, or none (kDefaultImageMean, kDefaultImageStd).
// REQUIRES: image passed ValidateJobSpec.
std::vector<float> ImageChannelMeans(const proto::ImageSpec& image);
std::vector<float> ImageChannelStds(const proto::ImageSpec& image);

// Writes ImageExampleSize(spec) floats at `out`, CHW: `image` converted to
// spec.channels, its centered box resized to spec.width x spec.height
// (ResizeTo) or, given an augmentation seed, the box and flip that seed
// draws (AugmentAndResize with ImageAugmentOptions), then each channel
// normalized by its mean and std (WriteChwFloats).
void WriteImageExample(const Image& image, const proto::ImageSpec& spec, std::optional<uint64_t> augment_seed,
                       float* out);

}  // namespace tessera

#endif  // TESSERA_CORE_IMAGE_FOLDER_DATA_H_
