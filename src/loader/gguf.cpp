// GGUF reader. See gguf.h for the file layout.
//
// Parsing runs in two passes over the same bytes:
//   1. a validating walk that allocates nothing: it checks every length and count
//      against the bytes that remain, every value type, the nesting depth and the
//      tensor-info records, and so proves that the header describes a structure that
//      really fits in the buffer;
//   2. the building pass, which re-reads the same bytes into Values and TensorInfos.
// A corrupted count in a large file (say an array length that points into gigabytes
// of tensor data) is therefore rejected by pass 1 before any memory is committed to it,
// and pass 2 only allocates what pass 1 has shown the file to hold.
#include "loader/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/file.h"
#include "core/progress.h"

namespace tessera::gguf {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr size_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 8;  // arrays of arrays ... deeper than this are refused
constexpr int kMaxDims = 4;
// Each metadata value costs a Value (~100 bytes) however small its encoding, so a
// u8 array would take ~100x its file bytes. Real files hold about a million values
// at most (vocabularies of 256k tokens with scores, types and merges); this cap keeps
// a crafted file from demanding gigabytes.
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 24;

// Smallest encoding of one record, used to bound counts before walking them:
// a key/value pair is at least key length (8) + value type (4) + a 1-byte value,
// a tensor info at least name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

[[noreturn]] void fail(const std::string& msg) {
  throw Error("gguf: " + msg);
}

bool valid_value_type(uint32_t t) {
  return t <= static_cast<uint32_t>(ValueType::FLOAT64);
}

// Bytes of one scalar of type t; 0 for STRING and ARRAY (variable size).
size_t scalar_size(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::BOOL:
      return 1;
    case ValueType::UINT16:
    case ValueType::INT16:
      return 2;
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::FLOAT32:
      return 4;
    case ValueType::UINT64:
    case ValueType::INT64:
    case ValueType::FLOAT64:
      return 8;
    case ValueType::STRING:
    case ValueType::ARRAY:
      return 0;
  }
  return 0;
}

// Smallest encoding of one array element of type t (string: its u64 length; nested
// array: its u32 type + u64 count).
uint64_t min_elem_size(ValueType t) {
  if (t == ValueType::STRING) return 8;
  if (t == ValueType::ARRAY) return 12;
  return scalar_size(t);
}

// Bounds-checked little-endian reader over [data, data + size). The host is
// little-endian (x86-64), so scalars are copied as-is.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail("truncated at offset " + std::to_string(pos_) + ": " + what + " needs " +
           std::to_string(n) + " bytes, " + std::to_string(remaining()) + " remain");
    }
  }
  void skip(uint64_t n, const char* what) {
    need(n, what);
    pos_ += n;
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  // Reads a string's length and returns a view of its bytes (valid while the buffer is).
  std::string_view read_string(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > remaining()) {
      fail(std::string(what) + " at offset " + std::to_string(pos_ - 8) + " has length " +
           std::to_string(n) + " but only " + std::to_string(remaining()) + " bytes remain");
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

ValueType read_value_type(Cursor& c, const char* what) {
  uint32_t t = c.read<uint32_t>(what);
  if (!valid_value_type(t)) {
    fail("unknown value type " + std::to_string(t) + " at offset " + std::to_string(c.pos() - 4));
  }
  return static_cast<ValueType>(t);
}

// Reads one array header and checks its count against the remaining bytes.
uint64_t read_array_header(Cursor& c, ValueType* elem_type, int depth) {
  if (depth >= kMaxArrayDepth) {
    fail("arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels at offset " +
         std::to_string(c.pos()));
  }
  *elem_type = read_value_type(c, "array element type");
  uint64_t n = c.read<uint64_t>("array length");
  uint64_t min = min_elem_size(*elem_type);
  if (n > c.remaining() / min) {
    fail("array length " + std::to_string(n) + " at offset " + std::to_string(c.pos() - 8) +
         " exceeds the " + std::to_string(c.remaining()) + " bytes that remain");
  }
  return n;
}

// Pass 1: walks one value of type t without allocating; adds the number of Values it
// will take to *n_values.
void skip_value(Cursor& c, ValueType t, int depth, uint64_t* n_values) {
  if (++*n_values > kMaxMetadataValues) {
    fail("metadata holds more than " + std::to_string(kMaxMetadataValues) + " values");
  }
  switch (t) {
    case ValueType::STRING:
      c.read_string("string value");
      return;
    case ValueType::ARRAY: {
      ValueType et;
      uint64_t n = read_array_header(c, &et, depth);
      if (et == ValueType::STRING || et == ValueType::ARRAY) {
        for (uint64_t k = 0; k < n; ++k) skip_value(c, et, depth + 1, n_values);
      } else {
        if (n > kMaxMetadataValues - *n_values) {
          fail("metadata holds more than " + std::to_string(kMaxMetadataValues) + " values");
        }
        *n_values += n;
        c.skip(n * scalar_size(et), "array data");  // n * size <= remaining, checked above
      }
      return;
    }
    case ValueType::BOOL: {
      uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) {
        fail("bool value " + std::to_string(b) + " at offset " + std::to_string(c.pos() - 1));
      }
      return;
    }
    default:
      c.skip(scalar_size(t), "scalar value");
      return;
  }
}

template <typename T>
void set_int(Value* v, T x) {
  if constexpr (std::is_signed_v<T>) {
    v->i = x;
    v->u = static_cast<uint64_t>(v->i);
  } else {
    v->u = x;
    v->i = static_cast<int64_t>(v->u);
  }
}

// Pass 2: reads one value of type t (its bytes were validated by pass 1).
void read_value(Cursor& c, ValueType t, int depth, Value* v) {
  v->type = t;
  switch (t) {
    case ValueType::UINT8:
      set_int(v, c.read<uint8_t>("u8"));
      break;
    case ValueType::INT8:
      set_int(v, c.read<int8_t>("i8"));
      break;
    case ValueType::UINT16:
      set_int(v, c.read<uint16_t>("u16"));
      break;
    case ValueType::INT16:
      set_int(v, c.read<int16_t>("i16"));
      break;
    case ValueType::UINT32:
      set_int(v, c.read<uint32_t>("u32"));
      break;
    case ValueType::INT32:
      set_int(v, c.read<int32_t>("i32"));
      break;
    case ValueType::UINT64:
      set_int(v, c.read<uint64_t>("u64"));
      break;
    case ValueType::INT64:
      set_int(v, c.read<int64_t>("i64"));
      break;
    case ValueType::FLOAT32:
      v->f = c.read<float>("f32");
      break;
    case ValueType::FLOAT64:
      v->f = c.read<double>("f64");
      break;
    case ValueType::BOOL: {
      uint8_t b = c.read<uint8_t>("bool value");
      if (b > 1) {
        fail("bool value " + std::to_string(b) + " at offset " + std::to_string(c.pos() - 1));
      }
      v->b = b != 0;
      break;
    }
    case ValueType::STRING:
      v->str = std::string(c.read_string("string value"));
      break;
    case ValueType::ARRAY: {
      uint64_t n = read_array_header(c, &v->elem_type, depth);
      v->arr.resize(n);  // bounded: pass 1 walked these n elements inside the buffer
      for (uint64_t k = 0; k < n; ++k) read_value(c, v->elem_type, depth + 1, &v->arr[k]);
      break;
    }
  }
}

// One tensor-info record; shared by both passes (it allocates only the name).
struct RawTensorInfo {
  std::string_view name;
  int n_dims = 0;
  int64_t ne[kMaxDims] = {1, 1, 1, 1};
  DType type = DType::F32;
  uint64_t offset = 0;
  size_t n_bytes = 0;
};

RawTensorInfo read_tensor_info(Cursor& c, uint64_t index) {
  RawTensorInfo t;
  const std::string where = "tensor " + std::to_string(index);
  t.name = c.read_string("tensor name");
  if (t.name.empty()) fail(where + " has an empty name");
  const std::string named = where + " '" + std::string(t.name) + "'";
  uint32_t n_dims = c.read<uint32_t>("tensor n_dims");
  if (n_dims == 0 || n_dims > kMaxDims) {
    fail(named + " has n_dims " + std::to_string(n_dims) + " (must be 1.." +
         std::to_string(kMaxDims) + ")");
  }
  t.n_dims = static_cast<int>(n_dims);
  uint64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = c.read<uint64_t>("tensor dimension");
    if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(named + " has invalid dimension ne[" + std::to_string(d) +
           "] = " + std::to_string(static_cast<int64_t>(ne)));
    }
    if (__builtin_mul_overflow(n_elements, ne, &n_elements) ||
        n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail(named + " element count overflows");
    }
    t.ne[d] = static_cast<int64_t>(ne);
  }
  uint32_t type = c.read<uint32_t>("tensor type");
  const DTypeInfo* info = dtype_info(type);
  if (info == nullptr || is_repacked(static_cast<DType>(type)))
    fail(named + " has unknown or unsupported type " + std::to_string(type));
  t.type = static_cast<DType>(type);
  if (t.ne[0] % info->block_size != 0) {
    fail(named + " (" + info->name + ") has ne[0] = " + std::to_string(t.ne[0]) +
         ", not a multiple of the block size " + std::to_string(info->block_size));
  }
  // Bytes = blocks * block bytes; blocks <= n_elements, so only the product can overflow.
  uint64_t n_blocks = n_elements / static_cast<uint64_t>(info->block_size);
  uint64_t n_bytes;
  if (__builtin_mul_overflow(n_blocks, static_cast<uint64_t>(info->type_size), &n_bytes)) {
    fail(named + " byte size overflows");
  }
  t.n_bytes = n_bytes;
  t.offset = c.read<uint64_t>("tensor offset");
  return t;
}

}  // namespace

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::UINT8:
      return "u8";
    case ValueType::INT8:
      return "i8";
    case ValueType::UINT16:
      return "u16";
    case ValueType::INT16:
      return "i16";
    case ValueType::UINT32:
      return "u32";
    case ValueType::INT32:
      return "i32";
    case ValueType::FLOAT32:
      return "f32";
    case ValueType::BOOL:
      return "bool";
    case ValueType::STRING:
      return "string";
    case ValueType::ARRAY:
      return "array";
    case ValueType::UINT64:
      return "u64";
    case ValueType::INT64:
      return "i64";
    case ValueType::FLOAT64:
      return "f64";
  }
  return "unknown";
}

bool Value::is_int() const {
  switch (type) {
    case ValueType::UINT8:
    case ValueType::INT8:
    case ValueType::UINT16:
    case ValueType::INT16:
    case ValueType::UINT32:
    case ValueType::INT32:
    case ValueType::UINT64:
    case ValueType::INT64:
      return true;
    default:
      return false;
  }
}

bool Value::is_float() const {
  return type == ValueType::FLOAT32 || type == ValueType::FLOAT64;
}

std::unique_ptr<File> File::open(const std::string& path, bool copy_to_huge_pages) {
  std::unique_ptr<File> f(new File());
  try {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      fail(std::string("cannot stat: ") + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail("not a regular file");
    }
    if (st.st_size == 0) {
      ::close(fd);
      fail("empty file");
    }
    size_t size = static_cast<size_t>(st.st_size);
    // Writable but private: see rewrite_tensor.
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int e = errno;
    if (map == MAP_FAILED) {
      ::close(fd);
      fail(std::string("mmap failed: ") + std::strerror(e));
    }
    f->map_ = map;
    f->map_size_ = size;
    try {
      f->parse(static_cast<const uint8_t*>(map), size);
      if (copy_to_huge_pages) f->load_to_huge_pages(fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);  // the mapping keeps the file contents reachable
  } catch (const Error& e) {
    // Re-throw with the path; `f` unmaps on the way out.
    std::string msg = e.what();
    if (msg.rfind("gguf: ", 0) == 0) msg = msg.substr(6);
    throw Error("gguf: " + path + ": " + msg);
  }
  return f;
}

std::unique_ptr<File> File::from_buffer(const uint8_t* data, size_t size) {
  std::unique_ptr<File> f(new File());
  f->parse(data, size);
  return f;
}

// Tensor data in memory the File owns, backed by 2 MiB pages where the kernel grants them
// (MADV_HUGEPAGE): streaming the weights of a decode step then costs one TLB entry per
// 2 MiB, and the hardware prefetchers are not cut at every 4 KiB, which on the machines this
// was measured on reads memory about a third faster than the file's 4 KiB mapping. Taken
// only when the tensor data fits in half the available memory (otherwise the mapping stays:
// its pages can be evicted) and not when TESSERA_MMAP=1 asks for the mapping. The file's
// pages are read with pread, never mapped, so the resident size stays the data's size.
void File::load_to_huge_pages(int fd, const std::string& path) {
  if (const char* env = std::getenv("TESSERA_MMAP"); env != nullptr && std::strcmp(env, "1") == 0)
    return;
  if (tensors_.empty()) return;
  const uint8_t* base = static_cast<const uint8_t*>(map_);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (const TensorInfo& t : tensors_) {
    lo = std::min(lo, reinterpret_cast<uintptr_t>(t.data));
    hi = std::max(hi, reinterpret_cast<uintptr_t>(t.data) + static_cast<uintptr_t>(t.n_bytes));
  }
  const size_t n = hi - lo;
  const size_t available = available_memory_bytes();
  if (n == 0 || (available > 0 && n > available / 2)) return;
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t reserved = n + kHuge;
  void* mem = mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return;  // keep the mapping
  uint8_t* arena = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(mem) + kHuge - 1) &
                                              ~uintptr_t{kHuge - 1});
#ifdef MADV_HUGEPAGE
  madvise(arena, n, MADV_HUGEPAGE);
#endif
  const off_t file_off = static_cast<off_t>(lo - reinterpret_cast<uintptr_t>(base));
  // Reads of 64 MiB: a progress step of a fraction of a second at disk speeds.
  Progress progress("loading " + path.substr(path.find_last_of('/') + 1), n, "",
                    Progress::Unit::kBytes);
  for (size_t done = 0; done < n;) {
    const ssize_t r = pread(fd, arena + done, std::min<size_t>(n - done, size_t{64} << 20),
                            file_off + static_cast<off_t>(done));
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      munmap(mem, reserved);
      return;  // keep the mapping
    }
    done += static_cast<size_t>(r);
    progress.add(static_cast<uint64_t>(r));
  }
  progress.finish();
  for (TensorInfo& t : tensors_) t.data = arena + (reinterpret_cast<uintptr_t>(t.data) - lo);
  arena_ = mem;
  arena_size_ = reserved;
}

uint8_t* File::rewrite_tensor(std::string_view name, DType type) {
  auto it = tensor_index_.find(name);
  if (map_ == nullptr || it == tensor_index_.end()) return nullptr;
  TensorInfo& t = tensors_[it->second];
  t.type = type;
  // The mapping or the arena is the File's own (PROT_WRITE, MAP_PRIVATE): writing it is
  // intended.
  uint8_t* data = const_cast<uint8_t*>(t.data);
  if (arena_ != nullptr) return data;
#ifdef MADV_POPULATE_WRITE
  // Fault the pages in as private copies up front: a page first read (mapped read-only)
  // and then written costs a TLB shootdown on every core running this process, which in a
  // VM is an expensive exit per page. Best effort: older kernels refuse, and then the
  // rewrite simply faults page by page.
  const uintptr_t page = 4096, b = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  madvise(reinterpret_cast<void*>(b), reinterpret_cast<uintptr_t>(data) + t.n_bytes - b,
          MADV_POPULATE_WRITE);
#endif
  return data;
}

void File::evict_tensor(std::string_view name) {
  auto it = tensor_index_.find(name);
  if (map_ == nullptr || arena_ != nullptr || it == tensor_index_.end()) return;
  const TensorInfo& t = tensors_[it->second];
  // Only the pages wholly inside the tensor: the first and last may hold a neighbour's bytes
  // (which may have been rewritten in place: dropping a private page would lose them).
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(t.data) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(t.data) + t.n_bytes) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

File::~File() {
  if (arena_ != nullptr) munmap(arena_, arena_size_);
  if (map_ != nullptr) munmap(map_, map_size_);
}

void File::parse(const uint8_t* data, size_t size) {
  if (data == nullptr && size != 0) fail("null buffer");
  Cursor c(data, size);

  // Header.
  if (size < 4) fail("file too small for a GGUF header (" + std::to_string(size) + " bytes)");
  uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) {
    if (magic == __builtin_bswap32(kMagic)) fail("byte-swapped magic 'FUGG'; not a GGUF file");
    char m[4];
    std::memcpy(m, &magic, 4);
    std::string shown;
    for (char ch : m) shown += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    fail("bad magic '" + shown + "' (expected 'GGUF')");
  }
  uint32_t version = c.read<uint32_t>("version");
  if (version == 1) fail("GGUF version 1 is not supported (only versions 2 and 3)");
  if (version != 2 && version != 3) {
    uint32_t swapped = __builtin_bswap32(version);
    if (swapped >= 1 && swapped <= 3) {
      fail("big-endian (byte-swapped) GGUF file (version " + std::to_string(swapped) +
           ") is not supported");
    }
    fail("unsupported GGUF version " + std::to_string(version) + " (only versions 2 and 3)");
  }
  version_ = version;
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.remaining() / kMinKvBytes) {
    fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
         std::to_string(c.remaining()) + " bytes that remain");
  }
  if (n_tensors > (c.remaining() - n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
         std::to_string(c.remaining()) + " bytes that remain");
  }
  const size_t kv_start = c.pos();

  // Pass 1: validate the metadata and tensor-info structure without allocating.
  uint64_t n_values = 0;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key = c.read_string("metadata key");
    if (key.empty()) fail("metadata key " + std::to_string(k) + " is empty");
    ValueType t = read_value_type(c, "metadata value type");
    skip_value(c, t, 0, &n_values);
  }
  for (uint64_t k = 0; k < n_tensors; ++k) read_tensor_info(c, k);

  // Pass 2: build. Counts are now known to describe records that exist in the buffer.
  c = Cursor(data, size);
  c.skip(kv_start, "header");
  kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key(c.read_string("metadata key"));
    Value v;
    read_value(c, read_value_type(c, "metadata value type"), 0, &v);
    kv_.emplace_back(std::move(key), std::move(v));
  }
  // kv_ is final: index views into its keys.
  kv_index_.reserve(kv_.size());
  for (size_t k = 0; k < kv_.size(); ++k) {
    if (!kv_index_.emplace(kv_[k].first, k).second) {
      fail("duplicate metadata key '" + kv_[k].first + "'");
    }
  }

  if (const Value* a = find("general.alignment")) {
    if (!a->is_int()) {
      fail(std::string("general.alignment has type ") + value_type_name(a->type) +
           ", expected an integer");
    }
    bool negative = a->type != ValueType::UINT64 && a->i < 0;
    if (negative || a->u == 0 || (a->u & (a->u - 1)) != 0) {
      fail("general.alignment = " + (negative ? std::to_string(a->i) : std::to_string(a->u)) +
           " is not a non-zero power of two");
    }
    alignment_ = static_cast<size_t>(a->u);
  } else {
    alignment_ = kDefaultAlignment;
  }

  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    RawTensorInfo r = read_tensor_info(c, k);
    TensorInfo t;
    t.name = std::string(r.name);
    t.n_dims = r.n_dims;
    std::copy(r.ne, r.ne + kMaxDims, t.ne);
    t.type = r.type;
    t.offset = r.offset;
    t.n_bytes = r.n_bytes;
    tensors_.push_back(std::move(t));
  }
  tensor_index_.reserve(tensors_.size());
  for (size_t k = 0; k < tensors_.size(); ++k) {
    if (!tensor_index_.emplace(tensors_[k].name, k).second) {
      fail("duplicate tensor name '" + tensors_[k].name + "'");
    }
  }

  // Data section: starts at the end of the tensor infos rounded up to the alignment.
  // With no tensors the padding may be absent (nothing follows it).
  if (tensors_.empty()) return;
  uint64_t data_start;
  const uint64_t align = alignment_;
  if (__builtin_add_overflow(static_cast<uint64_t>(c.pos()), align - 1, &data_start)) {
    fail("data section start overflows with alignment " + std::to_string(align));
  }
  data_start &= ~(align - 1);
  if (data_start > size) {
    fail("data section would start at offset " + std::to_string(data_start) +
         ", past the end of the file (" + std::to_string(size) + " bytes)");
  }
  const uint64_t data_size = size - data_start;
  for (TensorInfo& t : tensors_) {
    if (t.offset % align != 0) {
      fail("tensor '" + t.name + "' offset " + std::to_string(t.offset) +
           " is not a multiple of the alignment " + std::to_string(align));
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      fail("tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
           std::to_string(t.n_bytes) + ") lies outside the data section (" +
           std::to_string(data_size) + " bytes)");
    }
    t.data = data + data_start + t.offset;
  }

  // Overlap: sorted by offset, each tensor must end before the next begins.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& prev = tensors_[order[k - 1]];
    const TensorInfo& cur = tensors_[order[k]];
    if (prev.offset + prev.n_bytes > cur.offset) {
      fail("tensors '" + prev.name + "' and '" + cur.name + "' overlap");
    }
  }
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

[[noreturn]] void type_mismatch(std::string_view key, const Value& v, const char* wanted) {
  fail("metadata key '" + std::string(key) + "' has type " + value_type_name(v.type) +
       (v.type == ValueType::ARRAY ? std::string(" of ") + value_type_name(v.elem_type) : "") +
       ", expected " + wanted);
}

int64_t as_int(std::string_view key, const Value& v) {
  if (v.type == ValueType::UINT64 && v.u > static_cast<uint64_t>(INT64_MAX)) {
    fail("metadata key '" + std::string(key) + "' value " + std::to_string(v.u) +
         " does not fit in int64");
  }
  return v.i;
}

double as_double(const Value& v) {
  if (v.is_float()) return v.f;
  return v.type == ValueType::UINT64 ? static_cast<double>(v.u) : static_cast<double>(v.i);
}

}  // namespace

std::optional<std::string> Source::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::STRING) type_mismatch(key, *v, "string");
  return v->str;
}

std::optional<int64_t> Source::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_int()) type_mismatch(key, *v, "an integer");
  return as_int(key, *v);
}

std::optional<double> Source::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_float() && !v->is_int()) type_mismatch(key, *v, "a number");
  return as_double(*v);
}

std::optional<bool> Source::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return std::nullopt;
  if (v->type != ValueType::BOOL) type_mismatch(key, *v, "bool");
  return v->b;
}

std::vector<std::string> Source::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  if (v->type != ValueType::ARRAY || v->elem_type != ValueType::STRING) {
    type_mismatch(key, *v, "array of string");
  }
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(e.str);
  return out;
}

std::vector<float> Source::get_float_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  Value probe;
  probe.type = v->elem_type;
  if (v->type != ValueType::ARRAY || (!probe.is_float() && !probe.is_int())) {
    type_mismatch(key, *v, "array of numbers");
  }
  std::vector<float> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(static_cast<float>(as_double(e)));
  return out;
}

std::vector<int64_t> Source::get_int_array(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr) return {};
  Value probe;
  probe.type = v->elem_type;
  if (v->type != ValueType::ARRAY || !probe.is_int()) type_mismatch(key, *v, "array of integers");
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(as_int(key, e));
  return out;
}

}  // namespace tessera::gguf
