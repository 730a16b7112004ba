// Runtime dispatch of the row kernels. The CPU is probed once; each level's table starts as
// a copy of the level below and overrides what it implements, so every entry of the chosen
// table is the fastest kernel available for that type.
#include <cstdlib>
#include <cstring>

#include "backend/cpu/quants_impl.h"

namespace tessera::cpu {
namespace {

enum Level { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char* const kLevelNames[] = {"scalar", "avx2", "avx512"};

// Highest level this CPU runs. AVX2 kernels also use FMA and F16C; the AVX-512 kernels use
// F/BW/VL and VNNI (the 256-bit VNNI forms need VL).
Level cpu_level() {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (!avx2) return kScalar;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return avx512 ? kAvx512 : kAvx2;
}

// -1 when `name` is not a level name.
int parse_level(const char* name) {
  if (name == nullptr) return -1;
  for (int l = kScalar; l <= kAvx512; ++l) {
    if (std::strcmp(name, kLevelNames[l]) == 0) return l;
  }
  return -1;
}

struct Tables {
  Level cpu;
  KernelTable level[3];  // level[l] valid for l <= cpu
};

const Tables& tables() {
  static const Tables t = [] {
    Tables r;
    r.cpu = cpu_level();
    fill_ref_kernels(r.level[kScalar]);
    fill_ref_gelu_kernels(r.level[kScalar]);
    r.level[kAvx2] = r.level[kScalar];
    if (r.cpu >= kAvx2) {
      fill_avx2_kernels(r.level[kAvx2]);
      fill_avx2_attention_kernels(r.level[kAvx2]);
      fill_avx2_tiled_attention_kernels(r.level[kAvx2]);
      fill_avx2_activation_kernels(r.level[kAvx2]);
      fill_avx2_gelu_kernels(r.level[kAvx2]);
      fill_avx2_gemm_tile_kernels(r.level[kAvx2]);
    }
    r.level[kAvx512] = r.level[kAvx2];
    if (r.cpu >= kAvx512) {
      fill_avx512_kernels(r.level[kAvx512]);
      fill_avx512_panel_kernels(r.level[kAvx512]);
      fill_avx512_attention_kernels(r.level[kAvx512]);
      fill_avx512_tiled_attention_kernels(r.level[kAvx512]);
      fill_avx512_gemv_r8_kernels(r.level[kAvx512]);
      fill_avx512_float_gemm_kernels(r.level[kAvx512]);
    }
    return r;
  }();
  return t;
}

// The level in use: the CPU's, lowered by TESSERA_SIMD if set to a known lower level.
Level active_level() {
  static const Level level = [] {
    const Level cpu = tables().cpu;
    const int wanted = parse_level(std::getenv("TESSERA_SIMD"));
    return wanted >= 0 && wanted < cpu ? static_cast<Level>(wanted) : cpu;
  }();
  return level;
}

const KernelTable& active() {
  return tables().level[active_level()];
}

// Table for a named level; nullptr when unknown or above what the CPU has.
const KernelTable* table_for(const char* level) {
  const int l = parse_level(level);
  if (l < 0 || l > tables().cpu) return nullptr;
  return &tables().level[l];
}

inline int slot_of(DType t) {
  const int s = static_cast<int>(t);
  return s < kNumTypeSlots ? s : -1;
}

}  // namespace

const char* simd_level() {
  return kLevelNames[active_level()];
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const int s = slot_of(t);
  if (s < 0 || !active().dequantize[s]) throw_unsupported("dequantize_row", t);
  active().dequantize[s](src, dst, n);
}

void quantize_row(DType t, const float* x, void* dst, int64_t n) {
  const int s = slot_of(t);
  if (s < 0 || !active().quantize[s]) throw_unsupported("quantize_row", t);
  active().quantize[s](x, dst, n);
}

VecDotFn vec_dot_fn(DType t) {
  const int s = slot_of(t);
  if (s < 0 || !active().vec_dot[s]) throw_unsupported("vec_dot_fn", t);
  return active().vec_dot[s];
}

VecDotFn vec_dot_fn_for(DType t, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(t);
  return k && s >= 0 ? k->vec_dot[s] : nullptr;
}

DequantizeRowFn dequantize_row_fn_for(DType t, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(t);
  return k && s >= 0 ? k->dequantize[s] : nullptr;
}

QuantizeRowFn quantize_row_fn_for(DType t, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(t);
  return k && s >= 0 ? k->quantize[s] : nullptr;
}

GemmTileFn gemm_tile_fn(DType t) {
  const int s = slot_of(t);
  return s >= 0 ? active().gemm_tile[s] : nullptr;
}

PanelGemmFn panel_gemm_fn(DType t) {
  return panel_gemm_fn_for(t, simd_level());
}

PanelGemmFn panel_gemm_fn_for(DType t, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(plain_type(t));
  if (!k || s < 0) return nullptr;
  return is_repacked(t) ? k->panel_gemm_r8[s] : k->panel_gemm[s];
}

bool can_repack(DType t) {
  if (t != DType::Q4_0 && t != DType::Q8_0) return false;
  const int s = slot_of(t);
  return active().gemv_r8[s] && active().gemv_r8_prepare[s] && active().panel_gemm_r8[s];
}

GemvR8PrepareFn gemv_r8_prepare_fn(DType rt) {
  return gemv_r8_prepare_fn_for(rt, simd_level());
}

GemvR8Fn gemv_r8_fn(DType rt) {
  return gemv_r8_fn_for(rt, simd_level());
}

GemvR8PrepareFn gemv_r8_prepare_fn_for(DType rt, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(plain_type(rt));
  return k && s >= 0 && is_repacked(rt) ? k->gemv_r8_prepare[s] : nullptr;
}

GemvR8Fn gemv_r8_fn_for(DType rt, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(plain_type(rt));
  return k && s >= 0 && is_repacked(rt) ? k->gemv_r8[s] : nullptr;
}

FlashAttnFn flash_attn_fn() {
  return active().flash_attn;
}

GeluFn gelu_fn() {
  return active().gelu;
}

GeluFn gelu_fn_for(const char* level) {
  const KernelTable* k = table_for(level);
  return k ? k->gelu : nullptr;
}

SiluMulFn silu_mul_fn() {
  return active().silu_mul;
}

GemmTileFn gemm_tile_fn_for(DType t, const char* level) {
  const KernelTable* k = table_for(level);
  const int s = slot_of(t);
  return k && s >= 0 ? k->gemm_tile[s] : nullptr;
}

FlashAttnFn flash_attn_fn_for(const char* level) {
  const KernelTable* k = table_for(level);
  return k ? k->flash_attn : nullptr;
}

FlashAttnTiledFn flash_attn_tiled_fn() {
  return active().flash_attn_tiled;
}

FlashAttnTiledFn flash_attn_tiled_fn_for(const char* level) {
  const KernelTable* k = table_for(level);
  return k ? k->flash_attn_tiled : nullptr;
}

ExpBatchFn exp_batch_fn_for(const char* level) {
  const KernelTable* k = table_for(level);
  return k ? k->exp : nullptr;
}

SiluMulFn silu_mul_fn_for(const char* level) {
  const KernelTable* k = table_for(level);
  return k ? k->silu_mul : nullptr;
}

}  // namespace tessera::cpu
