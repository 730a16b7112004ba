// A gguf::Source held in memory: metadata built key by key and tensors that point into
// buffers this object owns or keeps alive (mapped safetensors shards, converted copies).
// Loaders of other formats (a Hugging Face directory, dummy weights) fill one of these so
// that the model and tokenizer code reads the same GGUF keys and tensor names as always.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loader/gguf.h"

namespace tessera::gguf {

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::string format) : format_(std::move(format)) {}

  const Value* find(std::string_view key) const override;
  const TensorInfo* find_tensor(std::string_view name) const override;
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  std::string format() const override { return format_; }
  // Tensors whose bytes lie in this source's own storage (alloc) only; not those in kept
  // mappings.
  uint8_t* rewrite_tensor(std::string_view name, DType type) override;
  // Keys in the order they were first set.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }

  // Setters replace an existing key in place. Integer keys are stored as UINT32 (INT32
  // for negative values) and floats as FLOAT32, the types GGUF converters write.
  void set(const std::string& key, Value v);
  void set_string(const std::string& key, std::string s);
  void set_uint(const std::string& key, uint64_t v);
  void set_int32(const std::string& key, int32_t v);
  void set_float(const std::string& key, double v);
  void set_bool(const std::string& key, bool b);
  void set_string_array(const std::string& key, const std::vector<std::string>& a);
  void set_float_array(const std::string& key, const std::vector<float>& a);
  void set_int32_array(const std::string& key, const std::vector<int32_t>& a);
  void erase(std::string_view key);

  // Adds a tensor; its data must stay valid as long as this source (see own / keep).
  // Throws tessera::Error on a duplicate name.
  void add_tensor(TensorInfo t);
  // Storage owned by the source, 64-byte aligned, zero-filled.
  uint8_t* alloc(size_t n_bytes);
  // Keeps `owner` alive as long as the source (e.g. the mapped files tensors point into).
  void keep(std::shared_ptr<void> owner) { kept_.push_back(std::move(owner)); }

 private:
  std::string format_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  struct FreeDeleter {
    void operator()(uint8_t* p) const;
  };
  std::vector<std::unique_ptr<uint8_t, FreeDeleter>> owned_;
  std::vector<size_t> owned_size_;  // bytes of owned_[i]
  std::vector<std::shared_ptr<void>> kept_;
};

}  // namespace tessera::gguf
