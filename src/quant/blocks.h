// The weight and activation types' blocks as GGUF stores them (ggml's block structs).
//
// Every struct is bit-identical to its GGUF on-disk block (little-endian, no padding);
// sizes are checked at compile time below. "fp16" fields are IEEE binary16 bit patterns.
// Shared by the scalar row code (quant.cpp) and every backend's kernels.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace tessera::quant {

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;

// y = d * (q - 8); element j < 16 in the low nibble of qs[j], j >= 16 in the high nibble
// of qs[j - 16].
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};
// y = d * q + m; nibbles as Q4_0.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};
// y = d * (q - 16); low 4 bits as Q4_0, bit 4 of element j is bit j of qh (little-endian u32).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
// y = d * q + m; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
// y = d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};
// y = d * q; s = fp16(d * sum(q)) with d before its fp16 rounding (ggml's reference).
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[QK8_1];
};

// K-quants: 256-element super-blocks. Element e of a super-block is addressed as:
//  Q2_K: q = (qs[32*(e/128) + e%32] >> 2*((e%128)/32)) & 3, y = d*(sc&15)*q - dmin*(sc>>4)
//        with sc = scales[e/16].
//  Q3_K: q as Q2_K, minus 4 when bit (e/32) of hmask[e%32] is clear; y = d*(s-32)*q with the
//        6-bit s = scale e/16 unpacked from the 12 scale bytes (low nibbles in bytes 0..7,
//        2 high bits in bytes 8..11).
//  Q4_K: q = nibble of qs[32*(e/64) + e%32] (low for (e/32) even, high for odd);
//        y = d*sc*q - dmin*m, 6-bit (sc, m) of sub-block e/32 from the 12 packed bytes.
//  Q5_K: as Q4_K plus 16 when bit (e/32) of qh[e%32] is set.
//  Q6_K: 4 low bits = nibble of ql[64*(e/128) + e%64] (low for (e%128) < 64, else high),
//        2 high bits = (qh[32*(e/128) + e%32] >> 2*((e%128)/32)) & 3; y = d*scales[e/16]*(q-32).
//  Q8_K: y = d*qs[e] (d is fp32); bsums[i] = sum of qs[16i .. 16i+15].
struct BlockQ2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[QK_K / 2];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct BlockQ6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

// Unpacks the 6-bit scale and min of sub-block j (0..7) from Q4_K/Q5_K's 12 bytes:
// bytes 0..3 hold scales 0..3 (low 6 bits) and the top 2 bits of scales 4..7; bytes 4..7
// the same for mins; bytes 8..11 the low nibbles of scales 4..7 (low) and mins 4..7 (high).
inline void k4_scale_min(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Unpacks Q3_K's 16 signed scales (already minus 32) from its 12 bytes.
inline void q3k_scales(const uint8_t* s, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    out[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

}  // namespace tessera::quant
