// A build without MPI: the run is one process, and its channel is the communicator's.
#include "dist/step_channel.h"

namespace tessera::dist {

std::unique_ptr<StepChannel> open_step_channel(Communicator& comm) {
  return make_step_channel(comm);
}

}  // namespace tessera::dist
