// safetensors reader: hand-built files (valid, sharded, malformed) and a mutation loop
// (every truncation, random bit flips and byte overwrites) that must either parse into
// tensors inside the buffer or throw tessera::Error.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "loader/safetensors.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;
using safetensors::Checkpoint;
using safetensors::File;

struct Entry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  Bytes data;
};

// Header JSON text + data, laid out in order; `header_override` replaces the JSON.
Bytes build(const std::vector<Entry>& entries, const std::string& extra_json = "",
            const std::string* header_override = nullptr) {
  std::string h = "{";
  size_t off = 0;
  Bytes data;
  for (const Entry& e : entries) {
    if (h.size() > 1) h += ",";
    nlohmann::json j = {
        {"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.data.size()}}};
    h += nlohmann::json(e.name).dump() + ":" + j.dump();
    data.insert(data.end(), e.data.begin(), e.data.end());
    off += e.data.size();
  }
  if (!extra_json.empty()) h += (h.size() > 1 ? "," : "") + extra_json;
  h += "}";
  if (header_override) h = *header_override;
  while (h.size() % 8 != 0) h += ' ';  // the format pads the header with spaces
  const uint64_t n = h.size();
  Bytes out(8 + h.size() + data.size());
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(h.begin(), h.end(), out.begin() + 8);
  std::copy(data.begin(), data.end(), out.begin() + 8 + static_cast<std::ptrdiff_t>(h.size()));
  return out;
}

Bytes f32_bytes(std::vector<float> v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

std::vector<Entry> sample() {
  return {{"a.weight", "F32", {2, 3}, f32_bytes({1, 2, 3, 4, 5, 6})},
          {"b.bias", "F16", {2}, Bytes{0x00, 0x3C, 0x00, 0xC0}},  // 1.0, -2.0
          {"c", "BF16", {1, 1}, Bytes{0x80, 0x3F}},
          {"ids", "I64", {1}, Bytes(8, 0)}};
}

std::string error_of(const Bytes& b) {
  try {
    File::from_buffer(b.data(), b.size(), "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  const Bytes b = build(sample(), R"("__metadata__":{"format":"pt"})");
  auto f = File::from_buffer(b.data(), b.size());
  ASSERT_EQ(f->tensors().size(), 4u);
  const auto* a = f->find("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->n_elements(), 6);
  float x[6];
  std::memcpy(x, a->data, sizeof x);
  EXPECT_EQ(x[5], 6.0f);
  EXPECT_EQ(f->find("b.bias")->dtype, DType::F16);
  EXPECT_EQ(f->find("c")->dtype, DType::BF16);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  // Integer tensors are listed but refused by name when a caller needs them.
  const auto* ids = f->find("ids");
  ASSERT_NE(ids, nullptr);
  EXPECT_FALSE(ids->dtype.has_value());
  try {
    ids->require_float();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'ids' has dtype I64"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Safetensors, RefusesMalformedFiles) {
  const Bytes good = build(sample());
  struct Bad {
    Bytes bytes;
    const char* message;
  };
  auto with_header = [](const std::string& h) { return build({}, "", &h); };
  Bytes huge_len = good;
  huge_len[7] = 0x10;
  Bytes zero_data = build({{"x", "F32", {4}, Bytes(16, 0)}});
  zero_data.resize(zero_data.size() - 4);  // tensor runs past the end
  const std::vector<Bad> cases = {
      {Bytes{1, 2, 3}, "too small"},
      {huge_len, "exceeds the file size"},
      {with_header("{\"a\": "), "invalid JSON"},
      {with_header("[1, 2]"), "not a JSON object"},
      {with_header(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"),
       "duplicate key 'a'"},
      {build({{"x", "Q4", {1}, Bytes(4, 0)}}), "unknown dtype 'Q4'"},
      {build({{"x", "F32", {3}, Bytes(8, 0)}}), "shape x dtype needs 12"},
      {zero_data, "run past the end"},
      {with_header(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})"), "begin > end"},
      {with_header(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})"), "non-negative"},
      {with_header(R"({"x":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})"),
       "shape is not an array"},
      {with_header(R"({"x":{"dtype":"F32","shape":[1]}})"), "missing \"data_offsets\""},
      {with_header(
           R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}})"),
       "too large"},
      {with_header(R"({"__metadata__":{"k":1}})"), "not a string"},
      {with_header(R"({"x":[1]})"), "not an object"},
  };
  for (const Bad& c : cases) {
    const std::string err = error_of(c.bytes);
    EXPECT_NE(err.find(c.message), std::string::npos)
        << "expected '" << c.message << "', got '" << err << "'";
  }
  // Overlap: two tensors over the same bytes.
  {
    std::string h =
        R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    Bytes b = build({}, "", &h);
    b.resize(b.size() + 12);
    EXPECT_NE(error_of(b).find("overlap"), std::string::npos) << error_of(b);
  }
}

TEST(Safetensors, MutationsParseOrThrowError) {
  const Bytes good = build(sample(), R"("__metadata__":{"format":"pt"})");
  auto check = [&](const Bytes& v) {
    // Exactly-sized heap copy, so a sanitizer build sees any over-read.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[std::max<size_t>(v.size(), 1)]);
    if (!v.empty()) std::memcpy(buf.get(), v.data(), v.size());
    try {
      auto f = File::from_buffer(buf.get(), v.size());
      for (const auto& t : f->tensors()) {
        ASSERT_GE(t.data, buf.get());
        ASSERT_LE(t.data + t.n_bytes, buf.get() + v.size());
      }
    } catch (const Error& e) {
      ASSERT_GT(std::strlen(e.what()), 0u);
    }
  };
  for (size_t n = 0; n < good.size(); ++n) check(Bytes(good.begin(), good.begin() + n));
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 5000; ++i) {
    Bytes v = good;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < n_mut; ++k) {
      const size_t at = rng() % v.size();
      if (rng() % 2)
        v[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
      else
        v[at] = static_cast<uint8_t>("0123456789{}[]\",:-e \xFF"[rng() % 22]);
    }
    check(v);
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("tessera_st_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const Bytes& b) const {
    std::ofstream f(path_ / name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  void write(const std::string& name, const std::string& s) const {
    write(name, Bytes(s.begin(), s.end()));
  }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

TEST(Safetensors, ShardedCheckpoint) {
  TempDir d;
  d.write("model-00001-of-00002.safetensors", build({{"a", "F32", {1}, f32_bytes({1})}}));
  d.write("model-00002-of-00002.safetensors", build({{"b", "F32", {2}, f32_bytes({2, 3})}}));
  d.write(
      "model.safetensors.index.json",
      R"({"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  auto c = Checkpoint::open(d.path().string());
  EXPECT_EQ(c->n_files(), 2u);
  ASSERT_EQ(c->tensors().size(), 2u);
  ASSERT_NE(c->find("b"), nullptr);
  EXPECT_EQ(c->find("b")->shape, std::vector<int64_t>{2});

  auto expect_error = [&](const std::string& index, const char* msg) {
    d.write("model.safetensors.index.json", index);
    try {
      Checkpoint::open(d.path().string());
      ADD_FAILURE() << "no error for " << index;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
    }
  };
  expect_error(
      R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00001-of-00002.safetensors"}})",
      "does not hold it");
  expect_error(R"({"weight_map":{"a":"model-00002-of-00002.safetensors"}})", "does not list");
  expect_error(R"({"weight_map":{"a":"../x.safetensors"}})", "invalid shard");
  expect_error(R"({"weight_map":{"a":"missing.safetensors"}})", "cannot open");
  expect_error(R"({"weight_map":[]})", "weight_map");
  expect_error(R"({"weight_map":)", "invalid JSON");
}

TEST(Safetensors, SingleFileAndMissingFiles) {
  TempDir d;
  EXPECT_THROW(Checkpoint::open(d.path().string()), Error);  // nothing there
  d.write("model.safetensors", build(sample()));
  EXPECT_EQ(Checkpoint::open(d.path().string())->tensors().size(), 4u);
  EXPECT_EQ(Checkpoint::open((d.path() / "model.safetensors").string())->tensors().size(), 4u);
  d.write("empty.safetensors", Bytes{});
  EXPECT_THROW(File::open((d.path() / "empty.safetensors").string()), Error);
  EXPECT_THROW(File::open((d.path() / "nope.safetensors").string()), Error);
}

}  // namespace
}  // namespace tessera
