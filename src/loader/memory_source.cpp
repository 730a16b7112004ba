#include "loader/memory_source.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace tessera::gguf {

const Value* MemorySource::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* MemorySource::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void MemorySource::set(const std::string& key, Value v) {
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].second = std::move(v);
    return;
  }
  kv_index_.emplace(key, kv_.size());
  kv_.emplace_back(key, std::move(v));
}

void MemorySource::erase(std::string_view key) {
  auto it = kv_index_.find(std::string(key));
  if (it == kv_index_.end()) return;
  kv_.erase(kv_.begin() + static_cast<std::ptrdiff_t>(it->second));
  kv_index_.clear();
  for (size_t i = 0; i < kv_.size(); ++i) kv_index_.emplace(kv_[i].first, i);
}

namespace {

Value string_value(std::string s) {
  Value v;
  v.type = ValueType::STRING;
  v.str = std::move(s);
  return v;
}

Value int_value(int64_t x) {
  Value v;
  v.type = x < 0 ? ValueType::INT32 : ValueType::UINT32;
  if (x > 0xFFFFFFFFll) v.type = ValueType::UINT64;
  v.i = x;
  v.u = static_cast<uint64_t>(x);
  return v;
}

Value float_value(double x) {
  Value v;
  v.type = ValueType::FLOAT32;
  v.f = static_cast<float>(x);
  return v;
}

}  // namespace

void MemorySource::set_string(const std::string& key, std::string s) {
  set(key, string_value(std::move(s)));
}

void MemorySource::set_uint(const std::string& key, uint64_t x) {
  Value v;
  v.type = x > 0xFFFFFFFFull ? ValueType::UINT64 : ValueType::UINT32;
  v.u = x;
  v.i = static_cast<int64_t>(x);
  set(key, std::move(v));
}

void MemorySource::set_int32(const std::string& key, int32_t x) {
  Value v;
  v.type = ValueType::INT32;
  v.i = x;
  v.u = static_cast<uint64_t>(static_cast<int64_t>(x));
  set(key, std::move(v));
}

void MemorySource::set_float(const std::string& key, double x) {
  set(key, float_value(x));
}

void MemorySource::set_bool(const std::string& key, bool b) {
  Value v;
  v.type = ValueType::BOOL;
  v.b = b;
  v.i = b;
  v.u = b;
  set(key, std::move(v));
}

void MemorySource::set_string_array(const std::string& key, const std::vector<std::string>& a) {
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = ValueType::STRING;
  v.arr.reserve(a.size());
  for (const std::string& s : a) v.arr.push_back(string_value(s));
  set(key, std::move(v));
}

void MemorySource::set_float_array(const std::string& key, const std::vector<float>& a) {
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = ValueType::FLOAT32;
  v.arr.reserve(a.size());
  for (float x : a) v.arr.push_back(float_value(x));
  set(key, std::move(v));
}

void MemorySource::set_int32_array(const std::string& key, const std::vector<int32_t>& a) {
  Value v;
  v.type = ValueType::ARRAY;
  v.elem_type = ValueType::INT32;
  v.arr.reserve(a.size());
  for (int32_t x : a) {
    Value e = int_value(x);
    e.type = ValueType::INT32;
    v.arr.push_back(std::move(e));
  }
  set(key, std::move(v));
}

void MemorySource::add_tensor(TensorInfo t) {
  if (tensor_index_.count(t.name)) throw Error("duplicate tensor '" + t.name + "'");
  tensor_index_.emplace(t.name, tensors_.size());
  tensors_.push_back(std::move(t));
}

void MemorySource::FreeDeleter::operator()(uint8_t* p) const {
  std::free(p);
}

uint8_t* MemorySource::alloc(size_t n_bytes) {
  const size_t size = (n_bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, size == 0 ? 64 : size);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, size == 0 ? 64 : size);
  owned_.emplace_back(static_cast<uint8_t*>(p));
  owned_size_.push_back(size);
  return owned_.back().get();
}

uint8_t* MemorySource::rewrite_tensor(std::string_view name, DType type) {
  auto it = tensor_index_.find(std::string(name));
  if (it == tensor_index_.end()) return nullptr;
  TensorInfo& t = tensors_[it->second];
  for (size_t i = 0; i < owned_.size(); ++i) {
    const uint8_t* b = owned_[i].get();
    if (t.data >= b && t.data + t.n_bytes <= b + owned_size_[i]) {
      t.type = type;
      return owned_[i].get() + (t.data - b);
    }
  }
  return nullptr;
}

}  // namespace tessera::gguf
