// The process's place in a multi-process run: the one owner of MPI's start and end.
//
// MPI starts only when this process was launched by mpirun (Open MPI sets
// OMPI_COMM_WORLD_SIZE), and only for the commands that run across processes (they call
// world()). Otherwise, and in a build without MPI, world() is a LocalCommunicator and
// nothing else changes. MPI is
// started with MPI_THREAD_SERIALIZED: collectives may come from any one thread at a time
// (the engine thread runs the forward passes while the main thread waits).
#pragma once
#include <string>

#include "core/error.h"
#include "dist/communicator.h"

namespace tessera::dist {

// Whether this binary was built with MPI (CMake found it).
bool mpi_compiled_in();
// Whether this process was started by mpirun (OMPI_COMM_WORLD_SIZE is set).
bool launched_by_mpirun();

// The communicator of every process of the run. The first call starts MPI when
// launched_by_mpirun(); later calls return the same object. Throws tessera::Error when
// want_parallel (the command asks for more than one rank) but this process was not
// launched by mpirun, or when MPI is needed and not compiled in.
Communicator& world(bool want_parallel);
// Whether world() started MPI.
bool started();
// This process's rank in the run: 0 unless world() started MPI.
int world_rank();

// Ends MPI (MPI_Finalize) when it was started; harmless otherwise and when called twice.
// Every rank must call it, after its last collective.
void finalize();
// Ends every rank of the run at once (MPI_Abort with `code`): for an error only this rank
// has seen, where the others would wait forever in their next collective. A plain
// std::exit(code) when MPI was not started.
[[noreturn]] void abort(int code);

// An error every rank has found together (a collective check failed on all of them): the
// ranks end in order with finalize(), not with abort(), and rank 0 alone reports it.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

}  // namespace tessera::dist
