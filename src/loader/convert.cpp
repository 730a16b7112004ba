#include "loader/convert.h"

#include <cstring>

#include "core/error.h"
#include "loader/gguf_writer.h"
#include "loader/hf_source.h"
#include "models/weight_quant.h"
#include "quant/quant.h"

namespace tessera {

std::vector<int64_t> rope_interleave_rows(int64_t n_head, int64_t head_dim) {
  std::vector<int64_t> src(n_head * head_dim);
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s) src[h * head_dim + 2 * i + s] = h * head_dim + s * half + i;
  return src;
}

uint32_t gguf_file_type(DType t) {
  switch (t) {
    case DType::F32:
      return 0;
    case DType::F16:
      return 1;
    case DType::Q4_0:
      return 2;
    case DType::Q4_1:
      return 3;
    case DType::Q8_0:
      return 7;
    case DType::Q5_0:
      return 8;
    case DType::Q5_1:
      return 9;
    case DType::BF16:
      return 32;
    default:
      throw Error(std::string("cannot write files of type ") + dtype_name(t));
  }
}

namespace {

bool is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

int64_t require_key(const gguf::Source& src, const std::string& key) {
  auto v = src.get_int(key);
  if (!v || *v <= 0) throw Error("convert: metadata lacks '" + key + "'");
  return *v;
}

}  // namespace

ConvertStats convert_to_gguf(const gguf::Source& src,
                             const std::vector<std::pair<std::string, gguf::Value>>& kv,
                             const std::string& out_path, DType type, bool requantize) {
  const uint32_t file_type = gguf_file_type(type);
  const std::string arch = src.get_string("general.architecture").value_or("");
  if (arch.empty()) throw Error("convert: source has no general.architecture");
  const bool permute = src.get_bool(hf::kRopeNeoxKey).value_or(false) && arch == "llama";
  int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
  if (permute) {
    n_head = require_key(src, arch + ".attention.head_count");
    n_head_kv = src.get_int(arch + ".attention.head_count_kv").value_or(n_head);
    head_dim = src.get_int(arch + ".attention.key_length")
                   .value_or(require_key(src, arch + ".embedding_length") / n_head);
  }

  gguf::Writer w;
  for (const auto& [k, v] : kv) {
    if (k == "general.file_type" || k == "general.quantization_version" || k == "general.alignment")
      continue;
    if (permute && k == hf::kRopeNeoxKey) continue;
    w.add_kv(k, v);
  }
  gguf::Value ft;
  ft.type = gguf::ValueType::UINT32;
  ft.u = file_type;
  ft.i = file_type;
  w.add_kv("general.file_type", ft);
  if (dtype_info(type).block_size > 1) {
    gguf::Value qv = ft;
    qv.u = qv.i = 2;
    w.add_kv("general.quantization_version", qv);
  }

  ConvertStats stats;
  for (const gguf::TensorInfo& t : src.tensors()) {
    const int64_t cols = t.ne[0], rows = t.n_elements() / cols;
    DType out = t.type;
    if (is_float(t.type)) {
      // Vectors, and the tables llama.cpp keeps in F32 (it adds rows of token_types
      // directly, without a lookup that would convert them).
      if (t.n_dims == 1 || t.name == "rope_freqs.weight" || t.name == "position_embd.weight" ||
          t.name == "token_types.weight")
        out = DType::F32;
      else
        out = converted_type(t.type, cols, type);
    } else if (requantize && t.n_dims >= 2) {
      out = converted_type(DType::F32, cols, type);
    }
    // Rows to reorder for the interleaved RoPE (Q/K weights and biases of llama).
    std::vector<int64_t> order;
    const bool is_q = t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_q.bias");
    const bool is_k = t.name.ends_with(".attn_k.weight") || t.name.ends_with(".attn_k.bias");
    if (permute && (is_q || is_k)) {
      const int64_t heads = is_q ? n_head : n_head_kv;
      const int64_t len = t.n_dims == 1 ? cols : rows;
      if (len != heads * head_dim)
        throw Error("convert: '" + t.name + "' does not have " + std::to_string(heads) + " x " +
                    std::to_string(head_dim) + " rows");
      order = rope_interleave_rows(heads, head_dim);
      ++stats.n_permuted;
    }
    const gguf::TensorInfo* ti = &t;
    w.add_tensor(t.name, out, t.n_dims, t.ne, [ti, out, cols, rows, order](uint8_t* dst) {
      const size_t in_row = row_size(ti->type, cols), out_row = row_size(out, cols);
      if (ti->n_dims == 1 && !order.empty()) {  // a bias: permute elements
        std::vector<float> x(cols), y(cols);
        quant::dequantize_row(ti->type, ti->data, x.data(), cols);
        for (int64_t i = 0; i < cols; ++i) y[i] = x[order[i]];
        quant::quantize_row(out, y.data(), dst, cols);
        return;
      }
      std::vector<float> tmp(cols);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t sr = order.empty() ? r : order[r];
        const uint8_t* s = ti->data + sr * in_row;
        if (out == ti->type) {
          std::memcpy(dst + r * out_row, s, out_row);
        } else {
          quant::dequantize_row(ti->type, s, tmp.data(), cols);
          quant::quantize_row(out, tmp.data(), dst + r * out_row, cols);
        }
      }
    });
    ++stats.n_tensors;
    stats.n_bytes += row_size(out, cols) * rows;
  }
  w.write(out_path);
  return stats;
}

}  // namespace tessera
