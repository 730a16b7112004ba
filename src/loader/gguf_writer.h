// GGUF writer (format version 3). Collects metadata and tensor descriptions, then writes
// the file in one pass: header, key/values, tensor infos, padding to the alignment, and
// each tensor's data (produced on demand by a callback, so a converter never holds more
// than one converted tensor in memory), each padded to the alignment.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "loader/gguf.h"

namespace tessera::gguf {

class Writer {
 public:
  explicit Writer(size_t alignment = 32);

  void add_kv(std::string key, Value v);  // keys must be unique; throws Error otherwise
  // `fill` writes exactly row_size(type, ne[0]) * rows bytes to its argument.
  using FillFn = std::function<void(uint8_t* dst)>;
  void add_tensor(std::string name, DType type, int n_dims, const int64_t ne[4], FillFn fill);

  // Writes to `path` (through a temporary file renamed at the end). Throws Error.
  void write(const std::string& path) const;

  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct Pending {
    std::string name;
    DType type;
    int n_dims;
    int64_t ne[4];
    size_t n_bytes;
    FillFn fill;
  };
  size_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace tessera::gguf
