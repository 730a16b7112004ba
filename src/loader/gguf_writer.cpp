#include "loader/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "core/error.h"
#include "core/progress.h"

namespace tessera::gguf {
namespace {

class Out {
 public:
  explicit Out(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) throw Error("cannot create '" + path + "': " + std::strerror(errno));
  }
  ~Out() {
    if (f_) std::fclose(f_);
  }
  void bytes(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      throw Error("write to '" + path_ + "' failed: " + std::strerror(errno));
    pos_ += n;
  }
  template <typename T>
  void pod(T v) {
    bytes(&v, sizeof v);
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(size_t alignment) {
    static const uint8_t zeros[64] = {};
    size_t n = (alignment - pos_ % alignment) % alignment;
    while (n > 0) {
      const size_t k = std::min(n, sizeof zeros);
      bytes(zeros, k);
      n -= k;
    }
  }
  void close() {
    if (std::fclose(f_) != 0) {
      f_ = nullptr;
      throw Error("closing '" + path_ + "' failed: " + std::strerror(errno));
    }
    f_ = nullptr;
  }
  size_t pos() const { return pos_; }

 private:
  std::string path_;
  FILE* f_;
  size_t pos_ = 0;
};

void write_scalar(Out& o, ValueType t, const Value& v) {
  switch (t) {
    case ValueType::UINT8:
      o.pod<uint8_t>(static_cast<uint8_t>(v.u));
      break;
    case ValueType::INT8:
      o.pod<int8_t>(static_cast<int8_t>(v.i));
      break;
    case ValueType::UINT16:
      o.pod<uint16_t>(static_cast<uint16_t>(v.u));
      break;
    case ValueType::INT16:
      o.pod<int16_t>(static_cast<int16_t>(v.i));
      break;
    case ValueType::UINT32:
      o.pod<uint32_t>(static_cast<uint32_t>(v.u));
      break;
    case ValueType::INT32:
      o.pod<int32_t>(static_cast<int32_t>(v.i));
      break;
    case ValueType::UINT64:
      o.pod<uint64_t>(v.u);
      break;
    case ValueType::INT64:
      o.pod<int64_t>(v.i);
      break;
    case ValueType::FLOAT32:
      o.pod<float>(static_cast<float>(v.f));
      break;
    case ValueType::FLOAT64:
      o.pod<double>(v.f);
      break;
    case ValueType::BOOL:
      o.pod<uint8_t>(v.b ? 1 : 0);
      break;
    case ValueType::STRING:
      o.str(v.str);
      break;
    case ValueType::ARRAY:
      o.pod<uint32_t>(static_cast<uint32_t>(v.elem_type));
      o.pod<uint64_t>(v.arr.size());
      for (const Value& e : v.arr) write_scalar(o, v.elem_type, e);
      break;
  }
}

}  // namespace

Writer::Writer(size_t alignment) : alignment_(alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw Error("gguf writer: alignment must be a power of two");
}

void Writer::add_kv(std::string key, Value v) {
  for (const auto& [k, _] : kv_)
    if (k == key) throw Error("gguf writer: duplicate key '" + key + "'");
  kv_.emplace_back(std::move(key), std::move(v));
}

void Writer::add_tensor(std::string name, DType type, int n_dims, const int64_t ne[4],
                        FillFn fill) {
  if (n_dims < 1 || n_dims > 4) throw Error("gguf writer: tensor '" + name + "' has bad rank");
  // Row-interleaved layouts are the CPU backend's, not a GGUF type.
  if (is_repacked(type))
    throw Error("gguf writer: tensor '" + name + "' has the in-memory type " + dtype_name(type));
  Pending p{std::move(name), type, n_dims, {1, 1, 1, 1}, 0, std::move(fill)};
  int64_t rows = 1;
  for (int i = 0; i < n_dims; ++i) {
    p.ne[i] = ne[i];
    if (i > 0) rows *= ne[i];
  }
  if (ne[0] % dtype_info(type).block_size != 0)
    throw Error("gguf writer: tensor '" + p.name + "' row of " + std::to_string(ne[0]) +
                " is not a multiple of the " + dtype_name(type) + " block size");
  p.n_bytes = row_size(type, ne[0]) * rows;
  for (const Pending& t : tensors_)
    if (t.name == p.name) throw Error("gguf writer: duplicate tensor '" + p.name + "'");
  tensors_.push_back(std::move(p));
}

void Writer::write(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  try {
    Out o(tmp);
    o.pod<uint32_t>(0x46554747);  // "GGUF"
    o.pod<uint32_t>(3);
    o.pod<uint64_t>(tensors_.size());
    o.pod<uint64_t>(kv_.size());
    for (const auto& [k, v] : kv_) {
      o.str(k);
      o.pod<uint32_t>(static_cast<uint32_t>(v.type));
      write_scalar(o, v.type, v);
    }
    uint64_t offset = 0;
    for (const Pending& t : tensors_) {
      o.str(t.name);
      o.pod<uint32_t>(static_cast<uint32_t>(t.n_dims));
      for (int i = 0; i < t.n_dims; ++i) o.pod<uint64_t>(static_cast<uint64_t>(t.ne[i]));
      o.pod<uint32_t>(static_cast<uint32_t>(t.type));
      o.pod<uint64_t>(offset);
      offset += (t.n_bytes + alignment_ - 1) / alignment_ * alignment_;
    }
    o.pad(alignment_);
    std::vector<uint8_t> buf;
    uint64_t data_bytes = 0;
    for (const Pending& t : tensors_) data_bytes += t.n_bytes;
    Progress progress("writing " + path.substr(path.find_last_of('/') + 1), data_bytes, "",
                      Progress::Unit::kBytes);
    for (const Pending& t : tensors_) {
      buf.assign(t.n_bytes, 0);
      t.fill(buf.data());
      o.bytes(buf.data(), buf.size());
      o.pad(alignment_);
      progress.add(t.n_bytes);
    }
    o.close();
    progress.finish();
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace tessera::gguf
