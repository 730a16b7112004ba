// GGUF reader (format versions 2 and 3).
//
// Layout of a GGUF file (all little-endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32) | tensor data
// Strings are u64 length + bytes (no NUL). Arrays are u32 elem_type + u64 count + elems;
// arrays may nest. Tensor offsets are relative to the start of the data section.
//
// The file is memory-mapped private (copy-on-write) and writable: the file is never
// written. A file opened from a path for a model to run has its tensor data read once into
// memory of its own on 2 MiB pages (load_to_huge_pages in gguf.cpp: decode streams weights
// faster from them), unless that would take more than half the available memory or
// TESSERA_MMAP=1; otherwise
// tensor data pointers point into the mapping, and a page is copied only when a loader
// rewrites a tensor in place (rewrite_tensor). Either way the resident size stays about the
// file's. Every
// malformed input throws tessera::Error with a message naming the problem; nothing is
// allocated in proportion to a count before the count has been checked against the bytes
// that remain.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace tessera::gguf {

enum class ValueType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

const char* value_type_name(ValueType t);

// One metadata value. Scalars are widened: integer types into `i` (u64 stored as its
// two's-complement bit pattern in i; `u` holds the unsigned view), floats into `f`.
struct Value {
  ValueType type = ValueType::UINT8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0.0;
  bool b = false;
  std::string str;
  ValueType elem_type = ValueType::UINT8;  // for ARRAY
  std::vector<Value> arr;                  // for ARRAY (may nest)

  bool is_int() const;    // any integer type
  bool is_float() const;  // FLOAT32 / FLOAT64
};

struct TensorInfo {
  std::string name;
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ggml order: ne[0] is the contiguous (row) dimension
  DType type = DType::F32;
  uint64_t offset = 0;  // relative to the data section
  size_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping or the huge-page copy

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// Read access to GGUF-style metadata and tensors. Implemented by File, and by loaders that
// translate other formats (a Hugging Face directory) into GGUF's keys and tensor names, so
// the model and tokenizer code reads one vocabulary of keys whatever the file format.
class Source {
 public:
  virtual ~Source() = default;
  virtual const Value* find(std::string_view key) const = 0;
  virtual const TensorInfo* find_tensor(std::string_view name) const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  virtual std::string format() const = 0;  // e.g. "GGUF v3"
  // Lets a loader rewrite tensor `name` in place into another layout of the same size
  // (the CPU backend's row-interleaved Q4_0_R8 / Q8_0_R8), recorded as the tensor's type
  // from then on, so no reader of this source takes the new bytes for the old type.
  // Returns the tensor's bytes, writable, or nullptr (nothing changed) when the tensor is
  // unknown or its memory may not be written (a caller's buffer, a read-only mapping).
  virtual uint8_t* rewrite_tensor(std::string_view name, DType type) { return nullptr; }
  // The loader has copied what it needs of tensor `name` (a tensor-parallel shard) and
  // will not read it again: its memory may be given back. A mapped file drops the pages
  // that lie wholly inside the tensor (they would be read from the file again if touched);
  // other sources keep everything.
  virtual void evict_tensor(std::string_view name) {}

  // Typed getters: nullopt/empty when the key is absent; throw Error when present with
  // an incompatible type (any integer type converts to int64, any float or int to double).
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
};

class File final : public Source {
 public:
  // Maps and parses a file. Throws tessera::Error (message includes the path).
  // copy_to_huge_pages: read the tensor data into 2 MiB pages of the File's own (what a model
  // that runs wants; see load_to_huge_pages in gguf.cpp); otherwise it stays mapped, read
  // only where used (metadata readers, tokenizers).
  static std::unique_ptr<File> open(const std::string& path, bool copy_to_huge_pages = false);
  // Parses a buffer the caller keeps alive (used by tests and the fuzzer).
  static std::unique_ptr<File> from_buffer(const uint8_t* data, size_t size);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  std::string format() const override { return "GGUF v" + std::to_string(version_); }

  const Value* find(std::string_view key) const override;
  const TensorInfo* find_tensor(std::string_view name) const override;
  // Files opened from a path only (their private mapping; see open).
  uint8_t* rewrite_tensor(std::string_view name, DType type) override;
  // Mapped files only (not the huge-page copy, not buffers).
  void evict_tensor(std::string_view name) override;

 private:
  File() = default;
  void parse(const uint8_t* data, size_t size);
  void load_to_huge_pages(int fd, const std::string& path);

  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<TensorInfo> tensors_;
  // Name -> index; the views point into kv_ / tensors_, which never change after parse.
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
  void* map_ = nullptr;  // mmap base when opened from a path
  size_t map_size_ = 0;
  void* arena_ = nullptr;  // the tensor data's copy (see load_to_huge_pages), or null
  size_t arena_size_ = 0;
};

}  // namespace tessera::gguf
