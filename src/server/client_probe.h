// Notices a client that closed its connection while its non-streamed request is still
// generating (a streamed one notices on the next write). cpp-httplib 0.11 does not expose
// the connection's socket, so the probe finds it once by its address pair among this
// process's descriptors; while the handler runs, httplib keeps that socket open, so the
// descriptor cannot be reused for another connection.
#pragma once
#include <string>

namespace tessera {

class ClientProbe {
 public:
  ClientProbe(int local_port, const std::string& remote_addr, int remote_port);
  // True once the peer has closed the connection (orderly close or reset).
  bool gone() const;

 private:
  int fd_ = -1;  // -1: not found (the probe then never reports the client gone)
};

}  // namespace tessera
