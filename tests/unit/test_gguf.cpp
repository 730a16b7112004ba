// Tests of the GGUF reader: a real model file, and hand-built buffers for every value
// type, layout option and malformation the reader must refuse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "loader/gguf.h"

namespace tessera::gguf {
namespace {

using Bytes = std::vector<uint8_t>;

// Appends little-endian scalars and GGUF strings to a byte vector.
struct Writer {
  Bytes& b;
  template <typename T>
  Writer& put(T v) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
    return *this;
  }
  Writer& str(std::string_view s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
};

// Builds a GGUF file from its parts, written independently of the reader from the
// format description: header | kvs | tensor infos | zero padding to `alignment` | data.
struct Builder {
  uint32_t version = 3;
  uint64_t n_kv = 0, n_tensors = 0;
  Bytes kv, ti, data;
  size_t alignment = 32;  // the padding the builder writes; set general.alignment to match

  // Adds one key with a raw value written by `value` (after the type tag).
  Builder& add(std::string_view key, ValueType t, const std::function<void(Writer&)>& value) {
    Writer w{kv};
    w.str(key).put<uint32_t>(static_cast<uint32_t>(t));
    value(w);
    ++n_kv;
    return *this;
  }
  Builder& add_u32(std::string_view key, uint32_t v) {
    return add(key, ValueType::UINT32, [&](Writer& w) { w.put(v); });
  }
  Builder& add_str(std::string_view key, std::string_view v) {
    return add(key, ValueType::STRING, [&](Writer& w) { w.str(v); });
  }
  Builder& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    Writer w{ti};
    w.str(name).put<uint32_t>(ne.size());
    for (uint64_t d : ne) w.put(d);
    w.put(type).put(offset);
    ++n_tensors;
    return *this;
  }
  Bytes build() const {
    Bytes out = {'G', 'G', 'U', 'F'};
    Writer w{out};
    w.put(version).put(n_tensors).put(n_kv);
    out.insert(out.end(), kv.begin(), kv.end());
    out.insert(out.end(), ti.begin(), ti.end());
    while (out.size() % alignment != 0) out.push_back(0);
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
};

std::unique_ptr<File> parse(const Bytes& b) {
  return File::from_buffer(b.data(), b.size());
}

// Expects parsing to throw tessera::Error whose message contains `needle`.
void expect_error(const Bytes& b, const std::string& needle) {
  try {
    parse(b);
    ADD_FAILURE() << "parsed without error; expected '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << needle;
  }
}

// A valid file with two F32 tensors whose data is known.
Builder two_tensor_file() {
  Builder b;
  b.add_str("general.architecture", "test");
  b.tensor("a", {4, 2}, 0, 0);  // 8 floats = 32 bytes at offset 0
  b.tensor("b", {3}, 0, 32);    // 3 floats = 12 bytes at offset 32
  Writer w{b.data};
  for (int k = 0; k < 8; ++k) w.put<float>(k * 0.5f);
  for (int k = 0; k < 3; ++k) w.put<float>(-1.0f - k);
  return b;
}

// ---------------------------------------------------------------------------------------
// The real model file.

TEST(GgufReal, StoriesModelMetadataAndTensors) {
  auto f = File::open(TESSERA_TEST_DATA "/stories260K-f32.gguf");
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
  EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f->get_int("llama.block_count"), 5);
  EXPECT_EQ(f->get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), 512u);
  EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores").size(), 512u);
  EXPECT_FALSE(f->get_int("no.such.key").has_value());
  EXPECT_THROW(f->get_int("general.architecture"), Error);

  const TensorInfo* emb = f->find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, DType::F32);
  EXPECT_EQ(emb->n_dims, 2);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  EXPECT_EQ(emb->n_bytes, 64u * 512u * 4u);
  EXPECT_EQ(f->find_tensor("nope"), nullptr);

  // Every tensor's data lies inside the file and is aligned.
  std::ifstream in(TESSERA_TEST_DATA "/stories260K-f32.gguf", std::ios::binary | std::ios::ate);
  const size_t file_size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  Bytes whole(file_size);
  in.read(reinterpret_cast<char*>(whole.data()), file_size);
  auto g = File::from_buffer(whole.data(), whole.size());
  ASSERT_EQ(g->tensors().size(), f->tensors().size());
  EXPECT_FALSE(f->tensors().empty());
  for (size_t k = 0; k < g->tensors().size(); ++k) {
    const TensorInfo& t = g->tensors()[k];
    ASSERT_GE(t.data, whole.data());
    ASSERT_LE(t.data + t.n_bytes, whole.data() + whole.size());
    EXPECT_EQ(static_cast<size_t>(t.data - whole.data()) % g->alignment(), 0u);
    // The mapped file and the buffer copy hold the same bytes at the same offsets.
    const TensorInfo& m = f->tensors()[k];
    EXPECT_EQ(m.name, t.name);
    EXPECT_EQ(std::memcmp(m.data, t.data, t.n_bytes), 0) << t.name;
  }
  // Layer 0's attention norm and a 2-D projection.
  const TensorInfo* wq = f->find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(wq->ne[0], 64);
  EXPECT_EQ(wq->ne[1], 64);
  const TensorInfo* wk = f->find_tensor("blk.0.attn_k.weight");
  ASSERT_NE(wk, nullptr);
  EXPECT_EQ(wk->ne[1], 32);  // 4 KV heads x head dim 8
}

TEST(GgufReal, OpenErrorsNameThePath) {
  try {
    File::open("/nonexistent/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.gguf"), std::string::npos) << e.what();
  }
  char path[] = "/tmp/tessera_gguf_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const char junk[] = "GGUF\x01\0\0\0";
  ASSERT_EQ(write(fd, junk, 8), 8);
  close(fd);
  try {
    File::open(path);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("version 1"), std::string::npos) << m;
  }
  unlink(path);
}

TEST(GgufReal, OpenMapsTensorData) {
  Bytes bytes = two_tensor_file().build();
  char path[] = "/tmp/tessera_gguf_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  auto f = File::open(path);
  unlink(path);
  const TensorInfo* b = f->find_tensor("b");
  ASSERT_NE(b, nullptr);
  float v[3];
  std::memcpy(v, b->data, sizeof(v));
  EXPECT_EQ(v[0], -1.0f);
  EXPECT_EQ(v[2], -3.0f);
}

// The tensor data reads the same from the huge-page copy (what a model load asks for) as
// from the mapping (TESSERA_MMAP=1), byte for byte, for every tensor of the real model file; the
// copy lies outside the mapping, and rewrite_tensor hands out writable memory either way.
TEST(GgufReal, HugePageCopyEqualsTheMapping) {
  const char* path = TESSERA_TEST_DATA "/stories260K-f32.gguf";
  ::setenv("TESSERA_MMAP", "1", 1);
  auto mapped = File::open(path, /*copy_to_huge_pages=*/true);  // the variable wins
  ::unsetenv("TESSERA_MMAP");
  auto copied = File::open(path, /*copy_to_huge_pages=*/true);
  ASSERT_EQ(mapped->tensors().size(), copied->tensors().size());
  bool any_moved = false;
  for (size_t i = 0; i < mapped->tensors().size(); ++i) {
    const TensorInfo& a = mapped->tensors()[i];
    const TensorInfo& b = copied->tensors()[i];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.n_bytes, b.n_bytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name;
    any_moved |= a.data != b.data;
  }
  EXPECT_TRUE(any_moved);
  uint8_t* w = copied->rewrite_tensor("token_embd.weight", DType::F32);
  ASSERT_NE(w, nullptr);
  w[0] ^= 1;  // writable, and the mapping's copy is untouched
  EXPECT_NE(std::memcmp(w, mapped->find_tensor("token_embd.weight")->data, 1), 0);
}

// ---------------------------------------------------------------------------------------
// Hand-built valid files.

TEST(GgufValid, EveryScalarTypeV2AndV3) {
  for (uint32_t version : {2u, 3u}) {
    Builder b;
    b.version = version;
    b.add("u8", ValueType::UINT8, [](Writer& w) { w.put<uint8_t>(250); });
    b.add("i8", ValueType::INT8, [](Writer& w) { w.put<int8_t>(-7); });
    b.add("u16", ValueType::UINT16, [](Writer& w) { w.put<uint16_t>(65000); });
    b.add("i16", ValueType::INT16, [](Writer& w) { w.put<int16_t>(-30000); });
    b.add("u32", ValueType::UINT32, [](Writer& w) { w.put<uint32_t>(4000000000u); });
    b.add("i32", ValueType::INT32, [](Writer& w) { w.put<int32_t>(-2000000000); });
    b.add("u64", ValueType::UINT64, [](Writer& w) { w.put<uint64_t>(1ull << 40); });
    b.add("i64", ValueType::INT64, [](Writer& w) { w.put<int64_t>(-(1ll << 50)); });
    b.add("f32", ValueType::FLOAT32, [](Writer& w) { w.put<float>(1.5f); });
    b.add("f64", ValueType::FLOAT64, [](Writer& w) { w.put<double>(-2.25); });
    b.add("t", ValueType::BOOL, [](Writer& w) { w.put<uint8_t>(1); });
    b.add("f", ValueType::BOOL, [](Writer& w) { w.put<uint8_t>(0); });
    b.add("s", ValueType::STRING, [](Writer& w) { w.str("h\xc3\xa9llo"); });
    b.add("empty", ValueType::STRING, [](Writer& w) { w.str(""); });
    b.add("big", ValueType::UINT64, [](Writer& w) { w.put<uint64_t>(~0ull); });
    auto f = parse(b.build());
    EXPECT_EQ(f->version(), version);
    EXPECT_EQ(f->metadata().size(), 15u);
    EXPECT_EQ(f->metadata()[0].first, "u8");  // file order is kept
    EXPECT_EQ(f->get_int("u8"), 250);
    EXPECT_EQ(f->get_int("i8"), -7);
    EXPECT_EQ(f->get_int("u16"), 65000);
    EXPECT_EQ(f->get_int("i16"), -30000);
    EXPECT_EQ(f->get_int("u32"), 4000000000ll);
    EXPECT_EQ(f->get_int("i32"), -2000000000);
    EXPECT_EQ(f->get_int("u64"), 1ll << 40);
    EXPECT_EQ(f->get_int("i64"), -(1ll << 50));
    EXPECT_EQ(f->get_float("f32"), 1.5);
    EXPECT_EQ(f->get_float("f64"), -2.25);
    EXPECT_EQ(f->get_float("i32"), -2000000000.0);  // ints convert to double
    EXPECT_EQ(f->get_bool("t"), true);
    EXPECT_EQ(f->get_bool("f"), false);
    EXPECT_EQ(f->get_string("s"), "h\xc3\xa9llo");
    EXPECT_EQ(f->get_string("empty"), "");
    EXPECT_EQ(f->find("u64")->type, ValueType::UINT64);
    EXPECT_EQ(f->find("big")->u, ~0ull);
    EXPECT_EQ(f->find("big")->i, -1);        // two's-complement view
    EXPECT_THROW(f->get_int("big"), Error);  // does not fit in int64
    EXPECT_EQ(f->get_float("big"), 18446744073709551615.0);
    EXPECT_TRUE(f->find("i8")->is_int());
    EXPECT_TRUE(f->find("f64")->is_float());
    EXPECT_FALSE(f->find("s")->is_int());
    // Type mismatches throw; absent keys are empty.
    EXPECT_THROW(f->get_string("u8"), Error);
    EXPECT_THROW(f->get_int("f32"), Error);
    EXPECT_THROW(f->get_float("s"), Error);
    EXPECT_THROW(f->get_bool("u8"), Error);
    EXPECT_THROW(f->get_string_array("s"), Error);
    EXPECT_FALSE(f->get_string("absent").has_value());
    EXPECT_FALSE(f->get_float("absent").has_value());
    EXPECT_FALSE(f->get_bool("absent").has_value());
    EXPECT_TRUE(f->get_int_array("absent").empty());
    EXPECT_TRUE(f->tensors().empty());
  }
}

TEST(GgufValid, ArraysAndNestedArrays) {
  Builder b;
  b.add("ints", ValueType::ARRAY, [](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::INT16)).put<uint64_t>(3);
    w.put<int16_t>(-1).put<int16_t>(2).put<int16_t>(300);
  });
  b.add("floats", ValueType::ARRAY, [](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::FLOAT32)).put<uint64_t>(2);
    w.put<float>(0.25f).put<float>(-8.0f);
  });
  b.add("strs", ValueType::ARRAY, [](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::STRING)).put<uint64_t>(3);
    w.str("a").str("").str("ccc");
  });
  b.add("empty", ValueType::ARRAY, [](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT8)).put<uint64_t>(0);
  });
  // [[1, 2], [], [3]] as arrays of u32 inside an array.
  b.add("nested", ValueType::ARRAY, [](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::ARRAY)).put<uint64_t>(3);
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32)).put<uint64_t>(2);
    w.put<uint32_t>(1).put<uint32_t>(2);
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32)).put<uint64_t>(0);
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32)).put<uint64_t>(1);
    w.put<uint32_t>(3);
  });
  b.add_u32("after", 77);  // parsing continues correctly after the arrays
  auto f = parse(b.build());
  EXPECT_EQ(f->get_int_array("ints"), (std::vector<int64_t>{-1, 2, 300}));
  EXPECT_EQ(f->get_float_array("ints"), (std::vector<float>{-1, 2, 300}));
  EXPECT_EQ(f->get_float_array("floats"), (std::vector<float>{0.25f, -8.0f}));
  EXPECT_THROW(f->get_int_array("floats"), Error);
  EXPECT_EQ(f->get_string_array("strs"), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_THROW(f->get_float_array("strs"), Error);
  EXPECT_TRUE(f->get_int_array("empty").empty());
  EXPECT_THROW(f->get_int("ints"), Error);
  const Value* n = f->find("nested");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->type, ValueType::ARRAY);
  EXPECT_EQ(n->elem_type, ValueType::ARRAY);
  ASSERT_EQ(n->arr.size(), 3u);
  ASSERT_EQ(n->arr[0].arr.size(), 2u);
  EXPECT_EQ(n->arr[0].elem_type, ValueType::UINT32);
  EXPECT_EQ(n->arr[0].arr[1].i, 2);
  EXPECT_TRUE(n->arr[1].arr.empty());
  EXPECT_EQ(n->arr[2].arr[0].u, 3u);
  EXPECT_THROW(f->get_int_array("nested"), Error);
  EXPECT_EQ(f->get_int("after"), 77);
}

TEST(GgufValid, TensorDataReadBack) {
  Bytes bytes = two_tensor_file().build();
  auto f = parse(bytes);
  ASSERT_EQ(f->tensors().size(), 2u);
  const TensorInfo& a = f->tensors()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.n_dims, 2);
  EXPECT_EQ(a.ne[0], 4);
  EXPECT_EQ(a.ne[1], 2);
  EXPECT_EQ(a.ne[2], 1);
  EXPECT_EQ(a.n_elements(), 8);
  EXPECT_EQ(a.n_bytes, 32u);
  // Data is not copied: it points into the caller's buffer.
  EXPECT_GE(a.data, bytes.data());
  EXPECT_LE(a.data + a.n_bytes, bytes.data() + bytes.size());
  for (int k = 0; k < 8; ++k) {
    float v;
    std::memcpy(&v, a.data + 4 * k, 4);
    EXPECT_EQ(v, k * 0.5f);
  }
  const TensorInfo* b = f->find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data, a.data + 32);
  float v;
  std::memcpy(&v, b->data + 8, 4);
  EXPECT_EQ(v, -3.0f);
}

TEST(GgufValid, QuantizedTensorSize) {
  Builder b;
  b.tensor("q", {64, 3}, static_cast<uint32_t>(DType::Q8_0), 0);     // 2 blocks x 3 rows x 34 B
  b.tensor("k", {256, 2}, static_cast<uint32_t>(DType::Q4_K), 224);  // 2 x 144 B
  b.data.assign(224 + 288, 0);
  auto f = parse(b.build());
  EXPECT_EQ(f->find_tensor("q")->n_bytes, 204u);
  EXPECT_EQ(f->find_tensor("k")->n_bytes, 288u);
  EXPECT_EQ(f->find_tensor("k")->type, DType::Q4_K);
}

TEST(GgufValid, AlignmentValues) {
  for (uint32_t align : {1u, 8u, 32u, 64u, 4096u}) {
    Builder b;
    b.alignment = align;
    b.add_u32("general.alignment", align);
    b.tensor("x", {2}, 0, 0);
    b.tensor("y", {1}, 0, align >= 8 ? align : 8);
    Writer w{b.data};
    w.put<float>(1.0f).put<float>(2.0f);
    while (b.data.size() < (align >= 8 ? align : 8)) b.data.push_back(0);
    w.put<float>(3.0f);
    Bytes bytes = b.build();
    auto f = parse(bytes);
    EXPECT_EQ(f->alignment(), align);
    float y;
    std::memcpy(&y, f->find_tensor("y")->data, 4);
    EXPECT_EQ(y, 3.0f) << "alignment " << align;
    EXPECT_EQ((f->find_tensor("x")->data - bytes.data()) % align, 0);
  }
  // Other integer types are accepted for the alignment.
  Builder b;
  b.alignment = 16;
  b.add("general.alignment", ValueType::UINT64, [](Writer& w) { w.put<uint64_t>(16); });
  b.tensor("x", {1}, 0, 0);
  b.data.assign(4, 0);
  EXPECT_EQ(parse(b.build())->alignment(), 16u);
}

TEST(GgufValid, NoTensorsNoPadding) {
  Builder b;
  b.add_u32("k", 1);
  Bytes bytes = b.build();
  // The padding after an empty tensor-info list may be missing.
  while (bytes.size() > 24 + 8 + 1 + 4 + 4 && bytes.back() == 0) bytes.pop_back();
  EXPECT_EQ(parse(bytes)->get_int("k"), 1);
}

// ---------------------------------------------------------------------------------------
// Malformed headers.

TEST(GgufError, BadMagic) {
  Bytes bytes = two_tensor_file().build();
  bytes[0] = 'X';
  expect_error(bytes, "bad magic");
  expect_error(Bytes{'G', 'G'}, "too small");
  bytes[0] = 'F', bytes[1] = 'U', bytes[2] = 'G', bytes[3] = 'G';  // magic read big-endian
  expect_error(bytes, "byte-swapped");
  expect_error(Bytes{}, "too small");
}

TEST(GgufError, Versions) {
  for (uint32_t v : {0u, 1u, 4u, 0xFFFFFFFFu}) {
    Builder b = two_tensor_file();
    b.version = v;
    expect_error(b.build(), v == 1 ? "version 1 is not supported" : "unsupported GGUF version");
  }
  Builder b = two_tensor_file();
  b.version = 0x03000000;  // 3 written big-endian
  expect_error(b.build(), "big-endian");
}

TEST(GgufError, TruncatedEverywhere) {
  Bytes full = two_tensor_file().build();
  ASSERT_NO_THROW(parse(full));
  for (size_t n = 0; n < full.size(); ++n) {
    Bytes cut(full.begin(), full.begin() + n);
    EXPECT_THROW(parse(cut), Error) << "prefix of " << n << " bytes";
  }
  // A truncated metadata string says so.
  Builder b;
  b.add_str("key", "a long string value");
  Bytes bytes = b.build();
  bytes.resize(24 + 8 + 3 + 4 + 8 + 5);
  expect_error(bytes, "remain");
}

TEST(GgufError, AbsurdCounts) {
  for (uint64_t n : {1ull << 31, 1ull << 63, ~0ull, 1000ull}) {
    Builder b = two_tensor_file();
    b.n_kv = n;
    expect_error(b.build(), "metadata count");
    b = two_tensor_file();
    b.n_tensors = n;
    expect_error(b.build(), "tensor count");
  }
}

TEST(GgufError, StringAndArrayLengthsBeyondData) {
  for (uint64_t n : {1ull << 31, 1ull << 63, ~0ull, 100ull}) {
    Builder b;
    b.add("s", ValueType::STRING, [&](Writer& w) { w.put<uint64_t>(n); });
    b.add_u32("pad", 0);
    expect_error(b.build(), "has length");

    b = Builder();
    b.add("a", ValueType::ARRAY, [&](Writer& w) {
      w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32)).put<uint64_t>(n);
    });
    expect_error(b.build(), "array length");

    b = Builder();
    b.add("a", ValueType::ARRAY, [&](Writer& w) {
      w.put<uint32_t>(static_cast<uint32_t>(ValueType::STRING)).put<uint64_t>(n);
    });
    expect_error(b.build(), "array length");
  }
  // Key length too.
  Builder b;
  b.n_kv = 1;
  Writer{b.kv}.put<uint64_t>(1ull << 40).put<uint64_t>(0);
  expect_error(b.build(), "metadata key");
  // Tensor name length.
  b = Builder();
  b.n_tensors = 1;
  Writer{b.ti}.put<uint64_t>(~0ull).put<uint64_t>(0).put<uint64_t>(0).put<uint64_t>(0);
  b.data.assign(64, 0);
  expect_error(b.build(), "tensor name");
}

TEST(GgufError, MetadataValueCountCapped) {
  // 2^24 + 1 one-byte values would cost ~1.7 GB as Values; refused before allocating.
  const uint64_t n = (uint64_t{1} << 24) + 1;
  Builder b;
  b.add("many", ValueType::ARRAY, [&](Writer& w) {
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT8)).put<uint64_t>(n);
    w.b.resize(w.b.size() + n, 0);
  });
  expect_error(b.build(), "more than 16777216 values");
  // The count spans keys: two arrays just under the cap each.
  b = Builder();
  for (const char* key : {"a", "b"}) {
    b.add(key, ValueType::ARRAY, [&](Writer& w) {
      w.put<uint32_t>(static_cast<uint32_t>(ValueType::INT8)).put<uint64_t>(n / 2 + 1);
      w.b.resize(w.b.size() + n / 2 + 1, 0);
    });
  }
  expect_error(b.build(), "more than 16777216 values");
}

TEST(GgufError, NestingDepthCapped) {
  // Forty levels of single-element arrays around an empty u8 array.
  Builder b;
  b.add("deep", ValueType::ARRAY, [](Writer& w) {
    for (int d = 0; d < 40; ++d) {
      w.put<uint32_t>(static_cast<uint32_t>(ValueType::ARRAY)).put<uint64_t>(1);
    }
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT8)).put<uint64_t>(0);
  });
  expect_error(b.build(), "nested deeper");
  // A few levels are fine.
  b = Builder();
  b.add("ok", ValueType::ARRAY, [](Writer& w) {
    for (int d = 0; d < 3; ++d) {
      w.put<uint32_t>(static_cast<uint32_t>(ValueType::ARRAY)).put<uint64_t>(1);
    }
    w.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT8)).put<uint64_t>(1).put<uint8_t>(9);
  });
  auto f = parse(b.build());
  EXPECT_EQ(f->find("ok")->arr[0].arr[0].arr[0].arr[0].u, 9u);
}

TEST(GgufError, UnknownValueTypes) {
  Builder b;
  b.add("x", static_cast<ValueType>(13), [](Writer& w) { w.put<uint32_t>(0); });
  expect_error(b.build(), "unknown value type 13");
  b = Builder();
  b.add("x", ValueType::ARRAY, [](Writer& w) { w.put<uint32_t>(0x80000000u).put<uint64_t>(0); });
  expect_error(b.build(), "unknown value type");
  b = Builder();
  b.add("b", ValueType::BOOL, [](Writer& w) { w.put<uint8_t>(2); });
  b.add_u32("pad", 0);
  expect_error(b.build(), "bool value 2");
}

TEST(GgufError, DuplicateKeysAndNames) {
  Builder b;
  b.add_u32("k", 1).add_u32("k", 2);
  expect_error(b.build(), "duplicate metadata key 'k'");
  b = Builder();
  b.add_str("", "x");
  expect_error(b.build(), "empty");

  b = Builder();
  b.tensor("t", {1}, 0, 0).tensor("t", {1}, 0, 32);
  b.data.assign(64, 0);
  expect_error(b.build(), "duplicate tensor name 't'");
}

// Builds a one-tensor file with the given shape/type/offset and `data_bytes` of data.
Bytes one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data_bytes) {
  Builder b;
  b.tensor("t", std::move(ne), type, offset);
  b.data.assign(data_bytes, 0);
  return b.build();
}

TEST(GgufError, TensorShapes) {
  expect_error(one_tensor({}, 0, 0, 64), "n_dims 0");
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 64), "n_dims 5");
  expect_error(one_tensor({4, 0}, 0, 0, 64), "invalid dimension ne[1]");
  expect_error(one_tensor({~0ull}, 0, 0, 64), "invalid dimension ne[0]");
  expect_error(one_tensor({1ull << 62, 1ull << 62}, 0, 0, 64), "element count overflows");
  expect_error(one_tensor({1ull << 40, 1ull << 23}, 0, 0, 64), "element count overflows");
  // 2^62 F32 elements is 2^64 bytes.
  expect_error(one_tensor({1ull << 31, 1ull << 31}, 0, 0, 64), "byte size overflows");
  expect_error(one_tensor({1ull << 31, 1ull << 20}, 0, 0, 64), "outside the data section");
  expect_error(one_tensor({48}, static_cast<uint32_t>(DType::Q8_0), 0, 64),
               "not a multiple of the block size 32");
  expect_error(one_tensor({100, 2}, static_cast<uint32_t>(DType::Q4_K), 0, 4096),
               "not a multiple of the block size 256");
}

TEST(GgufError, TensorTypes) {
  expect_error(one_tensor({4}, 4, 0, 64), "unsupported type 4");  // removed Q4_2
  expect_error(one_tensor({4}, 99, 0, 64), "unsupported type 99");
  expect_error(one_tensor({4}, 0xFFFFFFFFu, 0, 64), "unsupported type");
}

TEST(GgufError, TensorPlacement) {
  expect_error(one_tensor({4}, 0, 8, 64), "not a multiple of the alignment 32");
  expect_error(one_tensor({4}, 0, 64, 64), "outside the data section");
  expect_error(one_tensor({17}, 0, 0, 64), "outside the data section");
  expect_error(one_tensor({4}, 0, ~0ull & ~31ull, 64), "outside the data section");
  EXPECT_NO_THROW(parse(one_tensor({16}, 0, 0, 64)));
  EXPECT_NO_THROW(parse(one_tensor({8}, 0, 32, 64)));

  Builder b;
  b.tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32);  // a covers [0, 64), b [32, 64)
  b.data.assign(64, 0);
  expect_error(b.build(), "overlap");
  // A file that stops inside the padding before the data section.
  b = Builder();
  b.tensor("a", {1}, 0, 0);
  Bytes bytes = b.build();
  bytes.resize(bytes.size() - 1);
  EXPECT_THROW(parse(bytes), Error);
}

TEST(GgufError, BadAlignment) {
  for (uint32_t align : {0u, 3u, 24u, 0xFFFFFFFFu}) {
    Builder b = two_tensor_file();
    b.add_u32("general.alignment", align);
    expect_error(b.build(), "not a non-zero power of two");
  }
  Builder b = two_tensor_file();
  b.add("general.alignment", ValueType::INT32, [](Writer& w) { w.put<int32_t>(-32); });
  expect_error(b.build(), "not a non-zero power of two");
  b = two_tensor_file();
  b.add_str("general.alignment", "32");
  expect_error(b.build(), "general.alignment has type string");
  // A huge power of two puts the data section past the end.
  b = two_tensor_file();
  b.add("general.alignment", ValueType::UINT64, [](Writer& w) { w.put<uint64_t>(1ull << 63); });
  expect_error(b.build(), "data section");
}

}  // namespace
}  // namespace tessera::gguf
