#include "backend/backend.h"

#include "backend/ref/ref_backend.h"
#include "core/error.h"

namespace tessera {

const char* backend_names() {
  return "cpu, ref";
}

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& o) {
  if (name == "cpu") return make_cpu_backend(o.n_threads, o.repack);
  if (name == "ref") return make_ref_backend();
  throw Error("unknown backend '" + name + "' (choose one of: " + backend_names() + ")");
}

}  // namespace tessera
