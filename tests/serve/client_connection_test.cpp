// ClientConnection: the server side of a loopback TCP connection is found by
// the connection's addresses (as cpp-httplib reports them), stays "open"
// while the client is connected, even when it sends more, and is "closed"
// once the client closes its socket.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "loom/serve/client_connection.h"

namespace loom::serve {
namespace {

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

int port_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return rc == 0 ? ntohs(a.sin_port) : -1;
}

// closed() as it settles: the FIN travels through the loopback device.
bool closed_within(const ClientConnection& c, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!c.closed()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(ClientConnection, SeesTheClientCloseItsSocket) {
  Fd listener{socket(AF_INET, SOCK_STREAM, 0)}, client{socket(AF_INET, SOCK_STREAM, 0)};
  ASSERT_GE(listener.fd, 0);
  ASSERT_GE(client.fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(listener.fd, 1), 0);
  addr.sin_port = htons(uint16_t(port_of(listener.fd, false)));
  ASSERT_EQ(connect(client.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  Fd server{accept(listener.fd, nullptr, nullptr)};
  ASSERT_GE(server.fd, 0);

  const int client_port = port_of(client.fd, false), server_port = port_of(server.fd, false);
  const ClientConnection conn("127.0.0.1", client_port, "127.0.0.1", server_port);
  ASSERT_TRUE(conn.found());
  EXPECT_FALSE(conn.closed());

  // Other addresses find nothing (and then never report a close).
  EXPECT_FALSE(ClientConnection("127.0.0.1", client_port, "127.0.0.1", server_port + 1).found());
  EXPECT_FALSE(ClientConnection("127.0.0.2", client_port, "", -1).found());
  EXPECT_TRUE(ClientConnection("127.0.0.1", client_port, "", -1).found());  // local side unknown

  // Bytes sent ahead (a pipelined request) are not a hang-up, and stay unread.
  ASSERT_EQ(write(client.fd, "GET", 3), 3);
  EXPECT_FALSE(closed_within(conn, std::chrono::milliseconds(100)));
  char buf[3];
  EXPECT_EQ(recv(server.fd, buf, sizeof(buf), MSG_DONTWAIT), 3);

  close(client.fd);
  client.fd = -1;
  EXPECT_TRUE(closed_within(conn, std::chrono::milliseconds(2000)));
}

}  // namespace
}  // namespace loom::serve
