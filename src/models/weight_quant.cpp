#include "models/weight_quant.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <thread>

#include "core/error.h"
#include "quant/quant.h"

namespace tessera {

namespace {

struct Named {
  const char* name;
  DType type;
};
constexpr Named kTypes[] = {{"q8_0", DType::Q8_0}, {"q4_0", DType::Q4_0}, {"q4_1", DType::Q4_1},
                            {"q5_0", DType::Q5_0}, {"q5_1", DType::Q5_1}, {"f16", DType::F16},
                            {"bf16", DType::BF16}, {"f32", DType::F32}};

bool is_float_type(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

}  // namespace

const char* weight_type_names() {
  return "q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16, f32";
}

std::optional<DType> parse_weight_type(std::string_view name) {
  std::string s(name);
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s.empty() || s == "none") return std::nullopt;
  for (const Named& n : kTypes)
    if (s == n.name) return n.type;
  throw Error("unknown weight type '" + std::string(name) + "' (supported: " + weight_type_names() +
              ")");
}

DType converted_type(DType from, int64_t cols, DType to) {
  if (!is_float_type(from)) return from;
  if (cols % dtype_info(to).block_size == 0) return to;
  return from == DType::F32 ? DType::F16 : from;
}

Tensor convert_weight(const Tensor& w, DType to, std::vector<std::unique_ptr<uint8_t[]>>& storage,
                      int n_threads) {
  to = converted_type(w.type, w.cols(), to);
  if (to == w.type) return w;
  const int64_t rows = w.rows(), cols = w.cols();
  const size_t out_row = row_size(to, cols);
  storage.emplace_back(new uint8_t[out_row * rows]);
  uint8_t* out = storage.back().get();
  Tensor r = w;
  r.type = to;
  r.data = out;
  int nt = n_threads > 0 ? n_threads : static_cast<int>(std::thread::hardware_concurrency());
  nt = static_cast<int>(std::clamp<int64_t>(nt, 1, std::max<int64_t>(1, rows / 16)));
  auto work = [&](int64_t r0, int64_t r1) {
    std::vector<float> tmp(cols);
    for (int64_t i = r0; i < r1; ++i) {
      quant::dequantize_row(w.type, w.row(i), tmp.data(), cols);
      quant::quantize_row(to, tmp.data(), out + i * out_row, cols);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < nt; ++t) threads.emplace_back(work, rows * t / nt, rows * (t + 1) / nt);
  work(0, rows / nt);
  for (std::thread& t : threads) t.join();
  return r;
}

}  // namespace tessera
