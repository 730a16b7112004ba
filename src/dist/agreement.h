// Agreement between the ranks of a multi-process run: that every rank was started the same
// way, and that a step which may fail (loading the model) failed everywhere or nowhere, so
// that no rank is left waiting in a collective for one that gave up.
#pragma once
#include <functional>
#include <string>

#include "dist/communicator.h"

namespace tessera::dist {

// Collective: every rank passes its own description of `what` (e.g. the model file, the
// command line). Returns when all are equal to rank 0's; otherwise every rank throws
// CollectiveError, rank 0's naming the first rank that differs and both descriptions.
void check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& mine);

// Collective: runs body on every rank. When it throws tessera::Error on some ranks, every
// rank throws CollectiveError with the message of the lowest rank that failed (named when
// it is not rank 0). One rank alone: the Error passes through as it is.
void on_all_ranks(Communicator& comm, const std::function<void()>& body);

}  // namespace tessera::dist
