// ClientConnection: whether the client of a request is still there, for
// handlers that answer only when the whole completion is done. cpp-httplib
// 0.11 gives a handler no socket (a stream notices a client that went away
// when a write fails, a whole answer writes nothing until the end), but it
// tells the connection's addresses; the socket with exactly those addresses
// is looked up once among the process's descriptors (/proc/self/fd, Linux)
// and then polled without reading from it.
//
//   ClientConnection conn(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
//   while (!done) { wait_a_little(); if (conn.closed()) { cancel(); break; } }
#pragma once

#include <string>

namespace loom::serve {

class ClientConnection {
 public:
  // local_port <= 0 (unknown) matches any local address.
  ClientConnection(const std::string& remote_addr, int remote_port, const std::string& local_addr, int local_port);

  bool found() const { return fd_ >= 0; }
  // True once the client has closed or reset the connection (it can send no
  // more; for HTTP, that means it will not read the answer either). Data the
  // client sent ahead (a pipelined request) is left for the server to read.
  // Always false when the socket was not found.
  bool closed() const;

 private:
  int fd_ = -1;  // not owned: the HTTP thread that runs the handler closes it after the handler returns
};

}  // namespace loom::serve
