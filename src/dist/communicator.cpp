#include "dist/communicator.h"

#include <cstring>

#include "core/error.h"

namespace tessera::dist {

std::unique_ptr<Communicator> Communicator::split(int, int) {
  throw Error("this communicator cannot be split into groups");
}

void Communicator::send(const void*, int64_t, int, int) {
  throw Error("this communicator has no point-to-point messages");
}

void Communicator::recv(void*, int64_t, int, int) {
  throw Error("this communicator has no point-to-point messages");
}

std::unique_ptr<Communicator> LocalCommunicator::split(int, int) {
  return std::make_unique<LocalCommunicator>();
}

void LocalCommunicator::gather(const void* in, int64_t n_bytes, void* out, int) {
  if (n_bytes > 0) std::memcpy(out, in, static_cast<size_t>(n_bytes));
}

void LocalCommunicator::all_gather(const float* in, int64_t n, float* out) {
  if (n > 0 && in != out) std::memmove(out, in, sizeof(float) * static_cast<size_t>(n));
}

std::string broadcast_string(Communicator& comm, const std::string& s, int root) {
  int64_t n = static_cast<int64_t>(s.size());
  comm.broadcast(&n, sizeof n, root);
  std::string out = comm.rank() == root ? s : std::string(static_cast<size_t>(n), '\0');
  if (n > 0) comm.broadcast(out.data(), n, root);
  return out;
}

}  // namespace tessera::dist
