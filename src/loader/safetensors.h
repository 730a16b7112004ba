// safetensors reader (the format Hugging Face checkpoints are stored in).
//
// Layout of a .safetensors file:
//   u64 header_len (little-endian) | header_len bytes of JSON | tensor data
// The JSON header is an object: tensor name -> {"dtype": "F16", "shape": [rows, cols],
// "data_offsets": [begin, end]}, offsets relative to the start of the data section,
// plus an optional "__metadata__" object of string -> string.
// Shapes are row-major: the last dimension is the contiguous one (ggml's ne[0]).
//
// Files are memory-mapped read-only; tensor data pointers point into the mapping.
// Everything is validated up front (header length against the file size, JSON syntax,
// duplicate names, dtype names, shapes, offsets in range, offsets consistent with
// shape x element size, overlapping tensors); a bad file throws tessera::Error naming
// the file and the problem. Tensors of dtypes Tessera cannot compute with (integers,
// F64, FP8, ...) are listed with dtype() == nullopt; a caller that needs one of them
// refuses it by name (see require_float()).
//
// A sharded checkpoint (model.safetensors.index.json with a "weight_map" of tensor ->
// shard file) is opened as one Checkpoint whose tensors come from several files.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"

namespace tessera::safetensors {

struct TensorView {
  std::string name;
  std::string dtype_name;         // as written in the header ("F16", "I64", ...)
  std::optional<DType> dtype;     // F32 / F16 / BF16; nullopt for the others
  std::vector<int64_t> shape;     // row-major, as in the header (may be empty: a scalar)
  const uint8_t* data = nullptr;  // into the mapping
  size_t n_bytes = 0;
  std::string file;  // the file it came from (for messages)

  int64_t n_elements() const;
  // The dtype, or throws tessera::Error naming the tensor and its dtype when Tessera
  // cannot use it.
  DType require_float() const;
};

class File {
 public:
  // Maps and parses `path`. Throws tessera::Error (message includes the path).
  static std::unique_ptr<File> open(const std::string& path);
  // Parses a buffer the caller keeps alive (tests, fuzzing). `name` is used in messages.
  static std::unique_ptr<File> from_buffer(const uint8_t* data, size_t size,
                                           const std::string& name = "<buffer>");
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::vector<TensorView>& tensors() const { return tensors_; }  // in header order
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }

 private:
  File() = default;
  void parse(const uint8_t* data, size_t size);

  std::string path_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string_view, size_t> index_;  // views into tensors_[i].name
  std::map<std::string, std::string> metadata_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

// One checkpoint: a single .safetensors file or all shards named by an index file.
class Checkpoint {
 public:
  // `path` is a .safetensors file, a model.safetensors.index.json, or a directory holding
  // model.safetensors or model.safetensors.index.json (or exactly one *.safetensors).
  static std::unique_ptr<Checkpoint> open(const std::string& path);

  const std::vector<const TensorView*>& tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;
  size_t n_files() const { return files_.size(); }

 private:
  void add(std::unique_ptr<File> f, const std::map<std::string, std::string>* expected,
           const std::string& index_path);

  std::vector<std::unique_ptr<File>> files_;
  std::vector<const TensorView*> tensors_;
  std::unordered_map<std::string_view, const TensorView*> index_;
};

// Bytes per element of a safetensors dtype name; 0 when the name is not a dtype of the
// format.
size_t dtype_size(std::string_view dtype);

}  // namespace tessera::safetensors
