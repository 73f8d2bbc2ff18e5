#include "loom/serve/client_connection.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

namespace loom::serve {

namespace {

// Whether a socket address is `host`:`port`, the host written as cpp-httplib
// writes Request::remote_addr (getnameinfo's numeric form). An empty host
// matches any.
bool same_address(const sockaddr_storage& a, socklen_t len, const std::string& host, int port) {
  int p = -1;
  if (a.ss_family == AF_INET) {
    p = ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  } else if (a.ss_family == AF_INET6) {
    p = ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  }
  if (p != port) return false;  // (also every socket that is not TCP)
  if (host.empty()) return true;
  char buf[NI_MAXHOST];
  return getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST) == 0 &&
         host == buf;
}

bool matches(int fd, const std::string& remote_addr, int remote_port, const std::string& local_addr, int local_port) {
  sockaddr_storage a{};
  socklen_t len = sizeof(a);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || !same_address(a, len, remote_addr, remote_port))
    return false;
  if (local_port <= 0) return true;
  len = sizeof(a);
  return getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && same_address(a, len, local_addr, local_port);
}

}  // namespace

ClientConnection::ClientConnection(const std::string& remote_addr, int remote_port, const std::string& local_addr,
                                   int local_port) {
  if (remote_port <= 0 || remote_addr.empty()) return;
  // Descriptors of other threads may come and go meanwhile; that is harmless:
  // only a socket with this connection's addresses matches, and that one
  // stays open while its handler runs.
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
    char* rest = nullptr;
    const std::string name = it->path().filename().string();
    const long fd = std::strtol(name.c_str(), &rest, 10);
    if (rest == name.c_str() || *rest != '\0' || fd < 0) continue;
    if (matches(int(fd), remote_addr, remote_port, local_addr, local_port)) {
      fd_ = int(fd);
      return;
    }
  }
}

bool ClientConnection::closed() const {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;  // nothing happened on it
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    char c;
    return recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;  // 0: end of stream; > 0: a request sent ahead
  }
  return false;
}

}  // namespace loom::serve
