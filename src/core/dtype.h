// Tensor element types, numbered as in the GGUF format (ggml_type), and the
// block layout of each quantized format.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tessera {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
  // A backend's own in-memory layouts of Q4_0 / Q8_0 matrices (Backend::weight_layout),
  // never read from or written to a file; only the backend that made them reads their
  // bytes. Rows come in groups of kRepackRows; same bytes per row as the plain type. Ids
  // 0x100 + the plain type's id, far from GGUF's.
  Q4_0_R8 = 0x100 + 2,
  Q8_0_R8 = 0x100 + 8,
};

// Rows per interleaved group of the *_R8 types.
constexpr int kRepackRows = 8;
inline bool is_repacked(DType t) {
  return static_cast<uint32_t>(t) >= 0x100;
}
// The plain type a repacked type interleaves (t itself when not repacked).
inline DType plain_type(DType t) {
  return is_repacked(t) ? static_cast<DType>(static_cast<uint32_t>(t) - 0x100) : t;
}

struct DTypeInfo {
  const char* name;
  int64_t block_size;  // elements per block (1 for plain float types)
  size_t type_size;    // bytes per block
};

// nullptr when `t` is not a type Tessera supports (unknown or unsupported GGUF type id).
const DTypeInfo* dtype_info(uint32_t t);
const DTypeInfo& dtype_info(DType t);  // t must be supported
inline const char* dtype_name(DType t) {
  return dtype_info(t).name;
}

// Bytes of a row of n elements; n must be a multiple of the block size.
inline size_t row_size(DType t, int64_t n) {
  const DTypeInfo& i = dtype_info(t);
  return static_cast<size_t>(n / i.block_size) * i.type_size;
}

// Super-block size of the k-quants.
constexpr int QK_K = 256;

}  // namespace tessera
