#include "core/image_folder_data.h"

#include "core/spec.h"

namespace tessera {
namespace {

std::string JoinNames(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) joined += (joined.empty() ? "" : ", ") + name;
  return joined;
}

// data.class_names, when given, must be what the training folder's class
// folders are called, in their (sorted) order: they name the same labels.
Status CheckGivenClassNames(const proto::DataSpec& data, const ImageFolderListing& train) {
  if (data.class_names_size() == 0) return OkStatus();
  const std::vector<std::string> given(data.class_names().begin(), data.class_names().end());
  if (given == train.class_names) return OkStatus();
  return InvalidArgumentError("data.class_names (" + JoinNames(given) + ") must be the class folders of " + train.dir +
                              " in sorted order (" + JoinNames(train.class_names) +
                              "), or be left out: an image folder's classes are its folders");
}

// The per-channel values of a repeated field: none (the default), one for
// every channel, or one per channel.
std::vector<float> PerChannel(const google::protobuf::RepeatedField<float>& values, int channels, float fallback) {
  if (values.empty()) return std::vector<float>(channels, fallback);
  if (values.size() == 1) return std::vector<float>(channels, values[0]);
  return {values.begin(), values.end()};
}

}  // namespace

bool IsImageFolderFormat(const proto::DataSpec& data) { return data.format() == proto::DataSpec::IMAGE_FOLDER; }

std::string ImageFolderPath(const proto::DataSpec& data, bool test) {
  return DataPath(data, test ? data.test_dir() : data.train_dir());
}

std::vector<int64_t> ImageExampleShape(const proto::ImageSpec& image) {
  return {image.channels(), image.height(), image.width()};
}

int64_t ImageExampleSize(const proto::ImageSpec& image) {
  return int64_t{image.channels()} * image.height() * image.width();
}

StatusOr<ImageFolderSplits> ListImageFolders(const proto::DataSpec& data) {
  ImageFolderSplits splits;
  ASSIGN_OR_RETURN(splits.train, ListImageFolder(ImageFolderPath(data, /*test=*/false)));
  RETURN_IF_ERROR(CheckGivenClassNames(data, splits.train));
  ImageFolderOptions test_options;
  test_options.class_names = splits.train.class_names;
  ASSIGN_OR_RETURN(splits.test, ListImageFolder(ImageFolderPath(data, /*test=*/true), test_options));
  return splits;
}

proto::ImageFolderData DescribeImageFolders(const ImageFolderSplits& splits) {
  proto::ImageFolderData described;
  for (const std::string& name : splits.train.class_names) described.add_class_names(name);
  described.set_train_digest(ImageFolderDigest(splits.train));
  described.set_test_digest(ImageFolderDigest(splits.test));
  return described;
}

StatusOr<ImageFolderListing> ListImageFolderAsPlanned(const proto::DataSpec& data,
                                                      const proto::ImageFolderData& described, bool test) {
  const std::string& planned = test ? described.test_digest() : described.train_digest();
  if (described.class_names().empty() || planned.empty()) {
    return DataLossError("the cluster map's image folder data holds no classes or no digest");
  }
  ImageFolderOptions options;
  options.class_names.assign(described.class_names().begin(), described.class_names().end());
  ASSIGN_OR_RETURN(ImageFolderListing listing, ListImageFolder(ImageFolderPath(data, test), options));
  // Listed with the planned classes: a class folder added since is an error
  // of its own, one removed changes the digest.
  const std::string digest = ImageFolderDigest(listing);
  if (digest != planned) {
    return FailedPreconditionError(listing.dir + ": this worker lists " + std::to_string(listing.images.size()) +
                                   " images (digest " + digest.substr(0, 12) + "), not those the scheduler listed "
                                   "(digest " + planned.substr(0, 12) + "): the folder changed since the job was "
                                   "planned, or this machine sees another one");
  }
  return listing;
}

AugmentOptions ImageAugmentOptions(const proto::ImageSpec& image) {
  AugmentOptions options;
  options.random_crop = image.random_crop();
  options.min_crop_scale = image.min_crop_scale();
  options.horizontal_flip = image.horizontal_flip();
  return options;
}

bool ImageAugments(const proto::ImageSpec& image) { return image.random_crop() || image.horizontal_flip(); }

std::vector<float> ImageChannelMeans(const proto::ImageSpec& image) {
  return PerChannel(image.mean(), image.channels(), kDefaultImageMean);
}

std::vector<float> ImageChannelStds(const proto::ImageSpec& image) {
  return PerChannel(image.std(), image.channels(), kDefaultImageStd);
}

void WriteImageExample(const Image& image, const proto::ImageSpec& spec, std::optional<uint64_t> augment_seed,
                       float* out) {
  const Image resized =
      augment_seed.has_value()
          ? AugmentAndResize(image, spec.width(), spec.height(), spec.channels(), ImageAugmentOptions(spec), *augment_seed)
          : ResizeTo(image, spec.width(), spec.height(), spec.channels());
  WriteChwFloats(resized, ImageChannelMeans(spec).data(), ImageChannelStds(spec).data(), out);
}

}  // namespace tessera
