#include "models/weights.h"

#include "core/error.h"
#include "loader/gguf.h"

namespace tessera {

Tensor find_weight(const gguf::Source& f, const std::string& name,
                   std::initializer_list<int64_t> shape, bool required) {
  const gguf::TensorInfo* ti = f.find_tensor(name);
  if (!ti) {
    if (required) throw Error("model is missing tensor '" + name + "'");
    return {};
  }
  Tensor t;
  t.type = ti->type;
  int i = 0;
  for (int64_t d : shape) {
    if (d >= 0 && ti->ne[i] != d)
      throw Error("tensor '" + name + "' has dimension " + std::to_string(i) + " = " +
                  std::to_string(ti->ne[i]) + ", expected " + std::to_string(d));
    t.ne[i] = ti->ne[i];
    ++i;
  }
  for (; i < 4; ++i)
    if (ti->ne[i] != 1) throw Error("tensor '" + name + "' has too many dimensions");
  t.data = ti->data;
  return t;
}

}  // namespace tessera
