// safetensors reader. See safetensors.h for the layout and what is validated.
#include "loader/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace tessera::safetensors {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; real headers are well
// under 1 MB even for checkpoints with tens of thousands of tensors.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kMaxDims = 8;

struct DTypeEntry {
  std::string_view name;
  size_t size;
  std::optional<DType> dtype;
};

constexpr DTypeEntry kDTypes[] = {
    {"F32", 4, DType::F32}, {"F16", 2, DType::F16}, {"BF16", 2, DType::BF16},
    {"F64", 8, {}},         {"I64", 8, {}},         {"U64", 8, {}},
    {"I32", 4, {}},         {"U32", 4, {}},         {"I16", 2, {}},
    {"U16", 2, {}},         {"I8", 1, {}},          {"U8", 1, {}},
    {"BOOL", 1, {}},        {"F8_E4M3", 1, {}},     {"F8_E5M2", 1, {}},
    {"F8_E8M0", 1, {}},
};

const DTypeEntry* find_dtype(std::string_view name) {
  for (const DTypeEntry& e : kDTypes)
    if (e.name == name) return &e;
  return nullptr;
}

// Parses JSON, refusing duplicate keys at any level (nlohmann would keep the last one
// silently, and a duplicated tensor name could hide a second, different definition).
json parse_json_strict(std::string_view text, const std::string& what) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& v) {
    switch (ev) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(v.get<std::string>()).second && dup.empty())
          dup = v.get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb);
  } catch (const json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
  if (!dup.empty()) throw Error(what + ": duplicate key '" + dup + "'");
  return j;
}

}  // namespace

size_t dtype_size(std::string_view dtype) {
  const DTypeEntry* e = find_dtype(dtype);
  return e ? e->size : 0;
}

int64_t TensorView::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

DType TensorView::require_float() const {
  if (!dtype)
    throw Error(file + ": tensor '" + name + "' has dtype " + dtype_name +
                ", which Tessera cannot load (supported: F32, F16, BF16)");
  return *dtype;
}

// --- File ---

std::unique_ptr<File> File::open(const std::string& path) {
  std::unique_ptr<File> f(new File());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("'" + path + "' is not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    ::close(fd);
    if (map == MAP_FAILED) throw Error("cannot map '" + path + "': " + std::strerror(e));
    f->map_ = map;
    f->map_size_ = size;
  } else {
    ::close(fd);
  }
  f->parse(static_cast<const uint8_t*>(f->map_), size);
  return f;
}

std::unique_ptr<File> File::from_buffer(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<File> f(new File());
  f->path_ = name;
  f->parse(data, size);
  return f;
}

File::~File() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

const TensorView* File::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void File::parse(const uint8_t* data, size_t size) {
  auto fail = [this](const std::string& msg) -> void { throw Error(path_ + ": " + msg); };
  if (size < 8)
    fail("file too small for a safetensors header (" + std::to_string(size) + " bytes)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > size - 8)
    fail("header length " + std::to_string(header_len) + " exceeds the file size (" +
         std::to_string(size) + " bytes)");
  if (header_len > kMaxHeaderBytes)
    fail("header length " + std::to_string(header_len) + " is above the 100 MB limit");
  if (header_len < 2 || data[8] != '{') fail("header is not a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(data + 8), header_len);
  const json j = parse_json_strict(text, path_ + ": header");
  if (!j.is_object()) fail("header is not a JSON object");

  const uint8_t* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) of non-empty tensors
  tensors_.reserve(j.size());
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") {
      if (!t.is_object()) fail("__metadata__ is not an object");
      for (const auto& [k, v] : t.items()) {
        if (!v.is_string()) fail("__metadata__ value of '" + k + "' is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!t.is_object()) fail(where + "entry is not an object");
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!t.contains(k)) fail(where + "missing \"" + k + "\"");
    const json& jd = t.at("dtype");
    const json& js = t.at("shape");
    const json& jo = t.at("data_offsets");
    if (!jd.is_string()) fail(where + "dtype is not a string");
    TensorView v;
    v.name = name;
    v.file = path_;
    v.dtype_name = jd.get<std::string>();
    const DTypeEntry* de = find_dtype(v.dtype_name);
    if (!de) fail(where + "unknown dtype '" + v.dtype_name + "'");
    v.dtype = de->dtype;
    if (!js.is_array()) fail(where + "shape is not an array");
    if (js.size() > kMaxDims) fail(where + "more than " + std::to_string(kMaxDims) + " dimensions");
    uint64_t n = 1;  // element count; overflow is an error
    bool too_big = false;
    for (const json& d : js) {
      if (!d.is_number_unsigned()) fail(where + "shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where + "dimension too large");
      v.shape.push_back(static_cast<int64_t>(dim));
      if (__builtin_mul_overflow(n, dim, &n)) too_big = true;
    }
    uint64_t need = 0;
    if (too_big || __builtin_mul_overflow(n, uint64_t{de->size}, &need) ||
        need > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(where + "shape is too large");
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
        !jo[1].is_number_unsigned())
      fail(where + "data_offsets must be [begin, end] with non-negative integers");
    const uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    if (begin > end) fail(where + "data_offsets begin > end");
    if (end > data_size)
      fail(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
           ") run past the end of the data (" + std::to_string(data_size) + " bytes)");
    if (need != end - begin)
      fail(where + "data_offsets span " + std::to_string(end - begin) +
           " bytes, but shape x dtype needs " + std::to_string(need));
    v.data = base + begin;
    v.n_bytes = static_cast<size_t>(end - begin);
    if (end > begin) ranges.push_back({begin, end});
    tensors_.push_back(std::move(v));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      fail("tensors overlap in the data section (bytes " + std::to_string(ranges[i].first) + ".." +
           std::to_string(ranges[i - 1].second) + ")");
  for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
}

// --- Checkpoint ---

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

void Checkpoint::add(std::unique_ptr<File> f, const std::map<std::string, std::string>* expected,
                     const std::string& index_path) {
  for (const TensorView& t : f->tensors()) {
    if (expected) {
      auto it = expected->find(t.name);
      const std::string shard = fs::path(f->path()).filename().string();
      if (it == expected->end() || it->second != shard)
        throw Error(index_path + ": shard '" + shard + "' holds tensor '" + t.name +
                    "', which the weight_map " +
                    (it == expected->end() ? "does not list" : "places in '" + it->second + "'"));
    }
    if (!index_.emplace(t.name, &t).second)
      throw Error(f->path() + ": tensor '" + t.name + "' also appears in another shard");
    tensors_.push_back(&t);
  }
  files_.push_back(std::move(f));
}

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& path) {
  auto c = std::make_unique<Checkpoint>();
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) {
    if (fs::exists(p / "model.safetensors.index.json")) {
      p /= "model.safetensors.index.json";
    } else if (fs::exists(p / "model.safetensors")) {
      p /= "model.safetensors";
    } else {
      std::vector<fs::path> found;
      for (const auto& e : fs::directory_iterator(p, ec))
        if (e.path().extension() == ".safetensors") found.push_back(e.path());
      if (found.size() != 1)
        throw Error(path + ": no model.safetensors or model.safetensors.index.json" +
                    (found.empty() ? std::string() : " (and several *.safetensors files)"));
      p = found[0];
    }
  }
  const std::string ps = p.string();
  if (ps.size() >= 5 && ps.ends_with(".json")) {
    const json j = parse_json_strict(read_file(ps), ps);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(ps + ": no \"weight_map\" object");
    std::map<std::string, std::string> wm;
    std::set<std::string> shards;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw Error(ps + ": weight_map entry '" + name + "' is not a string");
      const std::string s = file.get<std::string>();
      if (s.empty() || s.find('/') != std::string::npos || s == "." || s == "..")
        throw Error(ps + ": weight_map entry '" + name + "' names an invalid shard '" + s + "'");
      wm[name] = s;
      shards.insert(s);
    }
    if (wm.empty()) throw Error(ps + ": weight_map is empty");
    for (const std::string& s : shards) c->add(File::open((p.parent_path() / s).string()), &wm, ps);
    for (const auto& [name, shard] : wm)
      if (!c->find(name))
        throw Error(ps + ": weight_map places '" + name + "' in '" + shard +
                    "', but that shard does not hold it");
    return c;
  }
  c->add(File::open(ps), nullptr, "");
  return c;
}

}  // namespace tessera::safetensors
