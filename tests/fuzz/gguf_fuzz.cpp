// Structure-aware mutation fuzzer for the GGUF reader (built with ASan + UBSan).
//
//   gguf_fuzz [--seed N] [file.gguf ...]     (default: tests/data/stories260K-f32.gguf)
//
// For each input file it walks the header independently of the reader to find every
// field (offset, width, role), then derives thousands of variants from a seeded RNG:
// truncations at every field boundary and at random points, bit flips and byte
// overwrites inside the header / metadata / tensor-info region, and overwrites of
// count, length, type, shape and offset fields with extreme values. Each variant is
// copied into a heap buffer of exactly its size (so ASan sees any over-read) and parsed
// with File::from_buffer; every 200th also goes through a temp file and File::open.
// A variant passes when it parses (and its parsed contents are self-consistent) or
// throws tessera::Error with a non-empty message. Anything else is a failure; a crash
// or a sanitizer report aborts the run.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "loader/gguf.h"

namespace {

using tessera::gguf::File;
using tessera::gguf::TensorInfo;
using tessera::gguf::Value;
using tessera::gguf::ValueType;
using Bytes = std::vector<uint8_t>;

// What a header field holds; decides which extreme values are written into it.
enum class Role { kMagic, kVersion, kCount, kLength, kType, kDim, kTensorType, kOffset, kScalar };

struct Field {
  size_t offset;
  size_t width;  // 1, 2, 4 or 8 bytes (0 for string bytes)
  Role role;
};

// Layout of one valid file as found by walk(): every field, and where the
// tensor-info region ends (mutations past it only touch tensor data).
struct Layout {
  std::vector<Field> fields;
  size_t tensor_fields_begin = 0;  // index of the first tensor-info field
  size_t header_end = 0;
};

// Minimal walker over a file known to be valid; written from the format description,
// independent of the reader under test. Throws std::runtime_error on a file it cannot
// walk (the input itself is then unusable).
class Walker {
 public:
  explicit Walker(const Bytes& b) : b_(b) {}

  Layout walk() {
    Layout l;
    fields_ = &l.fields;
    add(4, Role::kMagic);
    add(4, Role::kVersion);
    uint64_t n_tensors = add(8, Role::kCount);
    uint64_t n_kv = add(8, Role::kCount);
    for (uint64_t k = 0; k < n_kv; ++k) {
      string();
      value(static_cast<uint32_t>(add(4, Role::kType)), 0);
    }
    l.tensor_fields_begin = l.fields.size();
    for (uint64_t k = 0; k < n_tensors; ++k) {
      string();
      uint64_t n_dims = add(4, Role::kCount);
      if (n_dims > 4) throw std::runtime_error("input has n_dims > 4");
      for (uint64_t d = 0; d < n_dims; ++d) add(8, Role::kDim);
      add(4, Role::kTensorType);
      add(8, Role::kOffset);
    }
    l.header_end = pos_;
    return l;
  }

 private:
  uint64_t add(size_t width, Role role) {
    if (pos_ + width > b_.size()) throw std::runtime_error("input is truncated");
    uint64_t v = 0;
    std::memcpy(&v, b_.data() + pos_, width);  // little-endian host
    fields_->push_back({pos_, width, role});
    pos_ += width;
    return v;
  }
  void string() {
    uint64_t n = add(8, Role::kLength);
    if (n > b_.size() - pos_) throw std::runtime_error("input string overruns");
    pos_ += n;
  }
  void value(uint32_t type, int depth) {
    static const size_t kScalarWidth[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type > 12 || depth > 8) throw std::runtime_error("input has a bad value type");
    if (type == static_cast<uint32_t>(ValueType::STRING)) {
      string();
    } else if (type == static_cast<uint32_t>(ValueType::ARRAY)) {
      uint32_t et = static_cast<uint32_t>(add(4, Role::kType));
      uint64_t n = add(8, Role::kCount);
      if (n > b_.size()) throw std::runtime_error("input array overruns");
      for (uint64_t k = 0; k < n; ++k) value(et, depth + 1);
    } else {
      add(kScalarWidth[type], Role::kScalar);
    }
  }

  const Bytes& b_;
  size_t pos_ = 0;
  std::vector<Field>* fields_ = nullptr;
};

struct Stats {
  long passed = 0, failed = 0, parsed_ok = 0;
};

void report_failure(Stats& st, const std::string& what, const std::string& detail) {
  ++st.failed;
  if (st.failed <= 20) std::fprintf(stderr, "FAIL %s: %s\n", what.c_str(), detail.c_str());
}

// Touches every part of a parsed value (ASan checks the strings' bytes).
size_t touch(const Value& v) {
  size_t h = v.str.size() + static_cast<size_t>(v.u) + (v.b ? 1 : 0);
  for (char c : v.str) h += static_cast<unsigned char>(c);
  for (const Value& e : v.arr) h += touch(e);
  return h;
}

// Calls `fn`; a tessera::Error (type mismatch) is fine, any other exception propagates.
template <typename Fn>
void getter(Fn fn) {
  try {
    fn();
  } catch (const tessera::Error&) {
  }
}

// Checks the invariants a successful parse promises. Returns "" or a description.
std::string check_parsed(const File& f, const uint8_t* buf, size_t size) {
  volatile size_t sink = 0;
  for (const auto& [key, v] : f.metadata()) {
    if (f.find(key) != &v) return "find('" + key + "') does not return its entry";
    sink = sink + touch(v);
    getter([&] { sink = sink + f.get_string(key).value_or("").size(); });
    getter([&] { sink = sink + static_cast<size_t>(f.get_int(key).value_or(0)); });
    getter([&] { sink = sink + static_cast<size_t>(f.get_float(key).value_or(0.0) != 0.0); });
    getter([&] { sink = sink + f.get_bool(key).value_or(false); });
    getter([&] { sink = sink + f.get_string_array(key).size(); });
    getter([&] { sink = sink + f.get_float_array(key).size(); });
    getter([&] { sink = sink + f.get_int_array(key).size(); });
  }
  if (f.alignment() == 0 || (f.alignment() & (f.alignment() - 1)) != 0) return "bad alignment";
  for (const TensorInfo& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) return "find_tensor('" + t.name + "') mismatch";
    if (t.n_dims < 1 || t.n_dims > 4) return "n_dims out of range in '" + t.name + "'";
    for (int d = 0; d < 4; ++d) {
      if (t.ne[d] < 1) return "non-positive dim in '" + t.name + "'";
    }
    if (t.n_bytes == 0 || t.data < buf || t.data > buf + size ||
        t.n_bytes > static_cast<size_t>(buf + size - t.data)) {
      return "tensor '" + t.name + "' data outside the buffer";
    }
    if (t.n_bytes !=
        tessera::row_size(t.type, t.ne[0]) * static_cast<size_t>(t.ne[1] * t.ne[2] * t.ne[3])) {
      return "tensor '" + t.name + "' n_bytes disagrees with its shape";
    }
    sink = sink + t.data[0] + t.data[t.n_bytes - 1];  // ASan checks both ends
  }
  (void)sink;
  return "";
}

// Parses one variant from an exact-size heap copy (and, when `via_file`, from a file).
void run_variant(Stats& st, const Bytes& v, const std::string& what, bool via_file,
                 const std::string& tmp_path) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[v.size()]);
  if (!v.empty()) std::memcpy(buf.get(), v.data(), v.size());
  bool ok = true;
  try {
    auto f = File::from_buffer(buf.get(), v.size());
    std::string bad = check_parsed(*f, buf.get(), v.size());
    if (!bad.empty()) {
      report_failure(st, what, "parsed but inconsistent: " + bad);
      ok = false;
    } else {
      ++st.parsed_ok;
    }
  } catch (const tessera::Error& e) {
    if (std::strlen(e.what()) == 0) {
      report_failure(st, what, "tessera::Error with an empty message");
      ok = false;
    }
  } catch (const std::exception& e) {
    report_failure(st, what, std::string("unexpected exception: ") + e.what());
    ok = false;
  } catch (...) {
    report_failure(st, what, "unexpected non-std exception");
    ok = false;
  }

  if (ok && via_file) {
    {
      std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size()));
    }
    try {
      auto f = File::open(tmp_path);
      // The mapping is not `buf`; check against the file's own tensor pointers.
      for (const TensorInfo& t : f->tensors()) {
        volatile uint8_t x = t.data[0] + t.data[t.n_bytes - 1];
        (void)x;
      }
    } catch (const tessera::Error& e) {
      if (std::string(e.what()).find(tmp_path) == std::string::npos) {
        report_failure(st, what + " (file)", std::string("message lacks the path: ") + e.what());
        ok = false;
      }
    } catch (const std::exception& e) {
      report_failure(st, what + " (file)", std::string("unexpected exception: ") + e.what());
      ok = false;
    }
  }
  if (ok) ++st.passed;
}

void put_field(Bytes& v, const Field& f, uint64_t value) {
  std::memcpy(v.data() + f.offset, &value, f.width);  // low bytes of value, little-endian
}

// Extreme values for a field of the given role and width.
std::vector<uint64_t> extremes(const Field& f, uint64_t original, size_t file_size) {
  std::vector<uint64_t> out = {0,
                               1,
                               ~0ull,
                               1ull << 31,
                               1ull << 32,
                               1ull << 63,
                               (1ull << 63) - 1,
                               0xFFFFFFFFull,
                               original + 1,
                               original - 1,
                               file_size,
                               file_size + 1};
  if (f.role == Role::kType || f.role == Role::kTensorType) {
    for (uint64_t t : {7ull, 8ull, 9ull, 12ull, 13ull, 4ull, 30ull, 31ull, 39ull}) out.push_back(t);
  }
  if (f.role == Role::kVersion) out.insert(out.end(), {2, 3, 4, 0x03000000});
  if (f.role == Role::kOffset) out.insert(out.end(), {original + 4, original + 32, 16});
  return out;
}

// All variants of one input. Returns false when the input itself cannot be used.
bool fuzz_file(const std::string& path, uint64_t seed, Stats& st, const std::string& tmp_path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "gguf_fuzz: cannot read %s\n", path.c_str());
    return false;
  }
  Bytes orig((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Layout layout;
  try {
    layout = Walker(orig).walk();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gguf_fuzz: %s: %s\n", path.c_str(), e.what());
    return false;
  }
  const size_t hdr = layout.header_end;
  const std::vector<Field>& fields = layout.fields;
  std::mt19937_64 rng(seed);
  auto rand_below = [&](uint64_t n) {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng);
  };
  long n = 0;
  auto variant = [&](const Bytes& v, const std::string& what) {
    run_variant(st, v, path + ": " + what, n % 200 == 0, tmp_path);
    ++n;
  };

  variant(orig, "original");

  // 1. Truncation at every field boundary (start and end of each field), plus inside
  //    the padding and the data section.
  std::vector<size_t> cuts;
  for (const Field& f : fields) {
    cuts.push_back(f.offset);
    cuts.push_back(f.offset + f.width);
  }
  cuts.push_back(hdr + 1);
  cuts.push_back(orig.size() - 1);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  // Large vocabularies have many thousands of fields; sample them down evenly.
  const size_t kMaxCuts = 2500;
  for (size_t k = 0; k < cuts.size(); k += std::max<size_t>(1, cuts.size() / kMaxCuts)) {
    if (cuts[k] >= orig.size()) continue;
    variant(Bytes(orig.begin(), orig.begin() + cuts[k]), "truncate@" + std::to_string(cuts[k]));
  }
  // Random truncation points over the whole file and within the header region.
  for (int k = 0; k < 300; ++k) {
    size_t at = k % 2 ? rand_below(orig.size()) : rand_below(hdr + 64);
    if (at >= orig.size()) continue;
    variant(Bytes(orig.begin(), orig.begin() + at), "truncate@" + std::to_string(at));
  }

  // 2. Bit flips and byte overwrites in the header/metadata/tensor-info region
  //    (half of them aimed at the fields themselves rather than string bytes).
  Bytes v;
  for (int k = 0; k < 1500; ++k) {
    v = orig;
    int flips = 1 + static_cast<int>(rand_below(4));
    for (int j = 0; j < flips; ++j) {
      size_t at = k % 2 ? rand_below(hdr) : [&] {
        const Field& f = fields[rand_below(fields.size())];
        return f.offset + rand_below(f.width);
      }();
      v[at] ^= static_cast<uint8_t>(1u << rand_below(8));
    }
    variant(v, "bitflip#" + std::to_string(k));
  }
  for (int k = 0; k < 1000; ++k) {
    v = orig;
    int writes = 1 + static_cast<int>(rand_below(3));
    for (int j = 0; j < writes; ++j) {
      size_t at = rand_below(hdr);
      size_t len = 1 + rand_below(8);
      for (size_t b = at; b < std::min(hdr, at + len); ++b) v[b] = static_cast<uint8_t>(rng());
    }
    variant(v, "overwrite#" + std::to_string(k));
  }

  // 3. Extreme values in structural fields: every field up to the first string array
  //    exhaustively, then a random sample of the rest.
  auto extreme_field = [&](size_t idx) {
    const Field& f = fields[idx];
    if (f.role == Role::kScalar || f.role == Role::kMagic) return;
    uint64_t original = 0;
    std::memcpy(&original, orig.data() + f.offset, f.width);
    for (uint64_t x : extremes(f, original, orig.size())) {
      v = orig;
      put_field(v, f, x);
      variant(v, "field@" + std::to_string(f.offset) + "=" + std::to_string(x));
    }
  };
  size_t exhaustive = std::min<size_t>(fields.size(), 120);
  for (size_t k = 0; k < exhaustive; ++k) extreme_field(k);
  for (int k = 0; k < 120; ++k) extreme_field(rand_below(fields.size()));
  // Tensor-info fields (all of them: dims, types, offsets and name lengths).
  const size_t tensor_fields_begin = layout.tensor_fields_begin;
  for (size_t k = tensor_fields_begin; k < fields.size(); ++k) {
    if (rand_below(3) == 0) extreme_field(k);
  }

  // 4. Combined: a random structural field set to a random value plus a few bit flips.
  for (int k = 0; k < 500; ++k) {
    v = orig;
    const Field& f = fields[rand_below(fields.size())];
    put_field(v, f, rng() >> rand_below(64));
    v[rand_below(hdr)] ^= static_cast<uint8_t>(1u << rand_below(8));
    variant(v, "combo#" + std::to_string(k));
  }

  std::printf("gguf_fuzz: %s: %ld variants (%zu header fields, header %zu of %zu bytes)\n",
              path.c_str(), n, fields.size(), hdr, orig.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 0x7e55e7a;
  std::vector<std::string> files;
  for (int k = 1; k < argc; ++k) {
    std::string a = argv[k];
    if (a == "--seed" && k + 1 < argc) {
      seed = std::stoull(argv[++k], nullptr, 0);
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) files.push_back(TESSERA_TEST_DATA "/stories260K-f32.gguf");

  char tmpl[] = "/tmp/gguf_fuzz_XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) {
    std::perror("gguf_fuzz: mkstemp");
    return 2;
  }
  close(fd);
  const std::string tmp_path = tmpl;

  Stats st;
  bool inputs_ok = true;
  for (const std::string& f : files) inputs_ok &= fuzz_file(f, seed, st, tmp_path);
  unlink(tmp_path.c_str());

  std::printf("gguf_fuzz: seed %llu, %ld variants parsed successfully\n",
              static_cast<unsigned long long>(seed), st.parsed_ok);
  std::printf("gguf_fuzz: %ld passed, %ld failed\n", st.passed, st.failed);
  return st.failed > 0 || !inputs_ok ? 1 : 0;
}
