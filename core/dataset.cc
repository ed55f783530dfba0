#include "core/dataset.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <glog/logging.h>

#include "core/idx_reader.h"

namespace tessera {
namespace {

struct ImageShape {
  int64_t count = 0;
  int rows = 0;
  int cols = 0;
};

std::string DimsToString(const std::vector<uint32_t>& dims) {
  std::string text;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) text += "x";
    text += std::to_string(dims[i]);
  }
  return text;
}

// Checks that the images dims are count x rows x cols and the labels dims are count.
StatusOr<ImageShape> ValidateDims(const std::string& images_path, const std::vector<uint32_t>& image_dims,
                                  const std::string& labels_path, const std::vector<uint32_t>& label_dims) {
  if (image_dims.size() != 3) {
    return InvalidArgumentError("images file " + images_path + ": expected 3 dimensions (count x rows x cols), got " +
                                std::to_string(image_dims.size()) + " (" + DimsToString(image_dims) + ")");
  }
  if (label_dims.size() != 1) {
    return InvalidArgumentError("labels file " + labels_path + ": expected 1 dimension, got " +
                                std::to_string(label_dims.size()) + " (" + DimsToString(label_dims) + ")");
  }
  if (image_dims[0] == 0 || image_dims[1] == 0 || image_dims[2] == 0) {
    return InvalidArgumentError("images file " + images_path + ": expected nonzero count, rows and cols, got " +
                                DimsToString(image_dims));
  }
  // Rows and cols are stored as int; real images are far smaller than this.
  constexpr uint32_t kMaxSide = 1u << 16;
  if (image_dims[1] > kMaxSide || image_dims[2] > kMaxSide) {
    return InvalidArgumentError("images file " + images_path + ": expected rows and cols <= " +
                                std::to_string(kMaxSide) + ", got " + DimsToString(image_dims));
  }
  if (label_dims[0] != image_dims[0]) {
    return InvalidArgumentError("labels file " + labels_path + " has " + std::to_string(label_dims[0]) +
                                " labels but images file " + images_path + " has " +
                                std::to_string(image_dims[0]) + " images: expected equal counts");
  }
  ImageShape shape;
  shape.count = image_dims[0];
  shape.rows = static_cast<int>(image_dims[1]);
  shape.cols = static_cast<int>(image_dims[2]);
  return shape;
}

// Maps a failed system call's errno to a Status naming `what`.
Status ErrnoStatus(int error, const std::string& what) {
  const std::string message = what + ": " + std::strerror(error);
  if (error == ENOENT || error == ENOTDIR) return NotFoundError(message);
  if (error == EACCES || error == EPERM || error == EROFS) return FailedPreconditionError(message);
  return UnavailableError(message);
}

bool EndsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Writes header and data through an open gzFile (compressed or transparent).
Status WriteGz(gzFile file, const std::vector<uint8_t>& header, const std::vector<uint8_t>& data,
               const std::string& temp_path) {
  auto write_all = [&](const uint8_t* bytes, size_t size) -> Status {
    constexpr size_t kChunk = size_t{1} << 26;
    while (size > 0) {
      const unsigned n = static_cast<unsigned>(std::min(size, kChunk));
      if (gzwrite(file, bytes, n) != static_cast<int>(n)) {
        int code = Z_OK;
        const char* message = gzerror(file, &code);
        if (code == Z_ERRNO) return ErrnoStatus(errno, "cannot write " + temp_path);
        return UnavailableError("cannot write " + temp_path + ": " + (message ? message : "zlib error"));
      }
      bytes += n;
      size -= n;
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(write_all(header.data(), header.size()));
  return write_all(data.data(), data.size());
}

// Syncs the directory holding `path` so that a rename survives a crash. Best effort.
void SyncParentDirectory(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

StatusOr<int64_t> CountExamples(const std::string& images_path, const std::string& labels_path) {
  ASSIGN_OR_RETURN(const std::vector<uint32_t> image_dims, ReadIdxDims(images_path));
  ASSIGN_OR_RETURN(const std::vector<uint32_t> label_dims, ReadIdxDims(labels_path));
  ASSIGN_OR_RETURN(const ImageShape shape, ValidateDims(images_path, image_dims, labels_path, label_dims));
  return shape.count;
}

StatusOr<ImageDataset> LoadImageDataset(const std::string& images_path, const std::string& labels_path,
                                        int64_t max_examples) {
  // Check the headers first so a mismatch fails before the big read.
  RETURN_IF_ERROR(CountExamples(images_path, labels_path).status());
  ASSIGN_OR_RETURN(IdxArray labels, ReadIdxFile(labels_path));
  ASSIGN_OR_RETURN(IdxArray images, ReadIdxFile(images_path));
  ASSIGN_OR_RETURN(const ImageShape shape, ValidateDims(images_path, images.dims, labels_path, labels.dims));

  if (labels.type != kIdxUnsignedByte) {
    return InvalidArgumentError("labels file " + labels_path + ": labels must be unsigned bytes (IDX type 0x08)");
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= kImageDatasetClasses) {
      return InvalidArgumentError("labels file " + labels_path + ": label at index " + std::to_string(i) +
                                  " is out of range: expected < " + std::to_string(kImageDatasetClasses) +
                                  ", got " + std::to_string(labels.data[i]));
    }
  }

  ImageDataset dataset;
  dataset.rows = shape.rows;
  dataset.cols = shape.cols;
  dataset.count = max_examples > 0 ? std::min(shape.count, max_examples) : shape.count;
  dataset.int32_values = images.type == kIdxInt32;
  dataset.pixels = std::move(images.data);
  dataset.ids = std::move(images.ints);
  dataset.labels = std::move(labels.data);
  if (dataset.count < shape.count) {
    const size_t kept = static_cast<size_t>(dataset.count * dataset.example_size());
    if (dataset.int32_values) {
      dataset.ids.resize(kept);
    } else {
      dataset.pixels.resize(kept);
    }
    dataset.pixels.shrink_to_fit();
    dataset.ids.shrink_to_fit();
    dataset.labels.resize(static_cast<size_t>(dataset.count));
    dataset.labels.shrink_to_fit();
  }
  return dataset;
}

namespace {

// Keeps the runs of `size` values of each of `examples` (ascending), in place.
template <typename T>
void KeepRuns(const std::vector<int64_t>& examples, int64_t size, std::vector<T>* values) {
  for (size_t i = 0; i < examples.size(); ++i) {
    // examples[i] >= i: a run moves down or stays, never over one still to move.
    std::copy_n(values->begin() + examples[i] * size, size, values->begin() + static_cast<int64_t>(i) * size);
  }
  values->resize(examples.size() * size);
  // Giving memory back copies what is kept: only when that is less than half.
  if (values->size() < values->capacity() / 2) values->shrink_to_fit();
}

}  // namespace

ImageDataset SelectExamples(ImageDataset dataset, const std::vector<int64_t>& examples) {
  for (size_t i = 0; i < examples.size(); ++i) {
    CHECK(examples[i] < dataset.count && (i == 0 || examples[i] > examples[i - 1])) << "bad example " << examples[i];
  }
  if (dataset.int32_values) {
    KeepRuns(examples, dataset.example_size(), &dataset.ids);
  } else {
    KeepRuns(examples, dataset.example_size(), &dataset.pixels);
  }
  KeepRuns(examples, 1, &dataset.labels);
  dataset.count = static_cast<int64_t>(examples.size());
  return dataset;
}

namespace {

// Writes an IDX file of `elements` values of `type`, given as their big-endian bytes.
Status WriteIdx(const std::string& path, const std::vector<uint32_t>& dims, uint8_t type, size_t elements,
                const std::vector<uint8_t>& data) {
  if (dims.empty() || dims.size() > 4) {
    return InvalidArgumentError("WriteIdxFile " + path + ": expected 1 to 4 dimensions, got " +
                                std::to_string(dims.size()));
  }
  uint64_t product = 1;
  bool overflow = false;
  for (uint32_t dim : dims) overflow |= __builtin_mul_overflow(product, uint64_t{dim}, &product);
  if (overflow || product != elements) {
    return InvalidArgumentError("WriteIdxFile " + path + ": dims " + DimsToString(dims) + " need " +
                                (overflow ? std::string("more than 2^64") : std::to_string(product)) +
                                " values, got " + std::to_string(elements));
  }

  std::vector<uint8_t> header = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t dim : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) header.push_back(static_cast<uint8_t>(dim >> shift));
  }

  static std::atomic<uint64_t> counter{0};
  const std::string temp_path =
      path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter.fetch_add(1));
  const int fd = open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create " + temp_path);

  auto fail = [&](Status status) {
    close(fd);
    unlink(temp_path.c_str());
    return status;
  };
  // gzclose closes the descriptor it was given, so hand it a duplicate and
  // keep `fd` for fsync. "T" writes plain bytes through the same interface.
  const int gz_fd = dup(fd);
  if (gz_fd < 0) return fail(ErrnoStatus(errno, "cannot dup descriptor for " + temp_path));
  gzFile file = gzdopen(gz_fd, EndsWith(path, ".gz") ? "wb6" : "wbT");
  if (file == nullptr) {
    close(gz_fd);
    return fail(UnavailableError("cannot start zlib stream for " + temp_path));
  }
  const Status written = WriteGz(file, header, data, temp_path);
  const int close_code = gzclose(file);
  if (!written.ok()) return fail(written);
  if (close_code != Z_OK) {
    return fail(close_code == Z_ERRNO ? ErrnoStatus(errno, "cannot finish " + temp_path)
                                      : UnavailableError("cannot finish " + temp_path + ": zlib error " +
                                                         std::to_string(close_code)));
  }
  if (fsync(fd) != 0) return fail(ErrnoStatus(errno, "cannot fsync " + temp_path));
  if (close(fd) != 0) {
    const int error = errno;
    unlink(temp_path.c_str());
    return ErrnoStatus(error, "cannot close " + temp_path);
  }
  if (rename(temp_path.c_str(), path.c_str()) != 0) {
    const int error = errno;
    unlink(temp_path.c_str());
    return ErrnoStatus(error, "cannot rename " + temp_path + " to " + path);
  }
  SyncParentDirectory(path);
  return OkStatus();
}

}  // namespace

Status WriteIdxInt32File(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<int32_t>& data) {
  std::vector<uint8_t> bytes;
  bytes.reserve(data.size() * 4);
  for (int32_t v : data) {
    const uint32_t u = static_cast<uint32_t>(v);
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(u >> shift));
  }
  return WriteIdx(path, dims, kIdxInt32, data.size(), bytes);
}

Status WriteIdxFile(const std::string& path, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  return WriteIdx(path, dims, kIdxUnsignedByte, data.size(), data);
}

}  // namespace tessera
