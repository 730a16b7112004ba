#include "backend/backend.h"

#include <string>

#include "backend/ref/ref_backend.h"
#include "core/error.h"

namespace tessera {

AlibiHeads alibi_heads(const AttentionOptions& o, int n_head) {
  if (o.alibi_n_head == 0 && o.alibi_head0 == 0) return {0, n_head};
  if (o.alibi_head0 < 0 || o.alibi_head0 + n_head > o.alibi_n_head)
    throw Error("internal: ALiBi heads " + std::to_string(o.alibi_head0) + ".." +
                std::to_string(o.alibi_head0 + n_head - 1) + " are not heads of a model of " +
                std::to_string(o.alibi_n_head));
  return {o.alibi_head0, o.alibi_n_head};
}

const char* backend_names() {
  return "cpu, ref";
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& o) {
  if (name == "cpu") return make_cpu_backend(o.n_threads, o.repack);
  if (name == "ref") return make_ref_backend();
  throw Error("unknown backend '" + name + "' (choose one of: " + backend_names() + ")");
}

}  // namespace tessera
