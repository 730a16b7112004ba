// The runtime of a build without MPI: one process, always.
#include <cstdlib>
#include <string>

#include "dist/runtime.h"

namespace tessera::dist {

bool mpi_compiled_in() {
  return false;
}

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;
}

Communicator& world(bool want_parallel) {
  const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (want_parallel || (n != nullptr && std::string(n) != "1"))
    throw Error(
        "this tessera was built without MPI: install libopenmpi-dev and rebuild to run "
        "across processes");
  static LocalCommunicator local;
  return local;
}

bool started() {
  return false;
}

int world_rank() {
  return 0;
}

void finalize() {}

void abort(int code) {
  std::exit(code);
}

}  // namespace tessera::dist
