#include "core/dtype.h"

#include <cassert>

namespace tessera {

const DTypeInfo* dtype_info(uint32_t t) {
  // Block sizes in bytes follow the ggml block structs (fp16 scales are 2 bytes).
  static const DTypeInfo kF32{"F32", 1, 4}, kF16{"F16", 1, 2}, kBF16{"BF16", 1, 2},
      kQ4_0{"Q4_0", 32, 2 + 16}, kQ4_1{"Q4_1", 32, 2 + 2 + 16}, kQ5_0{"Q5_0", 32, 2 + 4 + 16},
      kQ5_1{"Q5_1", 32, 2 + 2 + 4 + 16}, kQ8_0{"Q8_0", 32, 2 + 32}, kQ8_1{"Q8_1", 32, 2 + 2 + 32},
      kQ2_K{"Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2},
      kQ3_K{"Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2}, kQ4_K{"Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2},
      kQ5_K{"Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2},
      kQ6_K{"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
      kQ8_K{"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2}, kQ4_0_R8{"Q4_0_R8", 32, 2 + 16},
      kQ8_0_R8{"Q8_0_R8", 32, 2 + 32};
  switch (static_cast<DType>(t)) {
    case DType::F32:
      return &kF32;
    case DType::F16:
      return &kF16;
    case DType::BF16:
      return &kBF16;
    case DType::Q4_0:
      return &kQ4_0;
    case DType::Q4_1:
      return &kQ4_1;
    case DType::Q5_0:
      return &kQ5_0;
    case DType::Q5_1:
      return &kQ5_1;
    case DType::Q8_0:
      return &kQ8_0;
    case DType::Q8_1:
      return &kQ8_1;
    case DType::Q2_K:
      return &kQ2_K;
    case DType::Q3_K:
      return &kQ3_K;
    case DType::Q4_K:
      return &kQ4_K;
    case DType::Q5_K:
      return &kQ5_K;
    case DType::Q6_K:
      return &kQ6_K;
    case DType::Q8_K:
      return &kQ8_K;
    case DType::Q4_0_R8:
      return &kQ4_0_R8;
    case DType::Q8_0_R8:
      return &kQ8_0_R8;
  }
  return nullptr;
}

const DTypeInfo& dtype_info(DType t) {
  const DTypeInfo* i = dtype_info(static_cast<uint32_t>(t));
  assert(i != nullptr);
  return *i;
}

}  // namespace tessera
