// Run by ctest as `mpirun -np 2 dist_mpi_check`: every collective of the MPI
// communicator between real processes, against values computed here from
// the rank formulas (rank r contributes (r + 1) * (i + 1) to element i).
// Exits non-zero, naming the check, if any rank sees a wrong value.
#include <cstdio>
#include <cstring>
#include <vector>

#include "loom/dist/communicator.h"

namespace {
int failures = 0;
void expect(bool ok, const char* what, int rank) {
  if (!ok) {
    std::fprintf(stderr, "rank %d: FAILED %s\n", rank, what);
    ++failures;
  }
}
}  // namespace

int main() {
  using namespace loom::dist;
  if (!launched_by_mpi()) {
    std::fprintf(stderr, "dist_mpi_check: start me with mpirun -np N (N >= 2)\n");
    return 2;
  }
  auto c = from_environment();
  const int r = c->rank(), n = c->size();
  expect(c->name() == "mpi", "communicator is MPI", r);
  expect(n >= 2, "at least 2 ranks", r);

  // Sum: element i = (i + 1) * sum_{r < n} (r + 1) = (i + 1) * n (n + 1) / 2.
  std::vector<float> f(1000);
  for (size_t i = 0; i < f.size(); ++i) f[i] = float((r + 1) * int(i + 1));
  c->all_reduce(f, ReduceOp::Sum);
  bool ok = true;
  for (size_t i = 0; i < f.size(); ++i) ok &= f[i] == float(int(i + 1) * n * (n + 1) / 2);
  expect(ok, "all_reduce float sum", r);

  std::vector<double> d = {double(r), -double(r)};
  c->all_reduce(d, ReduceOp::Max);
  expect(d[0] == n - 1 && d[1] == 0, "all_reduce double max", r);
  std::vector<int64_t> k = {int64_t(r) + (int64_t(1) << 40)};
  c->all_reduce(k, ReduceOp::Min);
  expect(k[0] == (int64_t(1) << 40), "all_reduce int64 min", r);

  std::vector<float> mine = {float(r), float(10 * r)}, all(2 * size_t(n));
  c->all_gather(mine, all);
  ok = true;
  for (int q = 0; q < n; ++q) ok &= all[2 * size_t(q)] == float(q) && all[2 * size_t(q) + 1] == float(10 * q);
  expect(ok, "all_gather in rank order", r);

  std::vector<std::byte> b(16, std::byte(r == 1 ? 0x5a : 0));
  c->broadcast(b, 1);
  expect(b[0] == std::byte(0x5a) && b[15] == std::byte(0x5a), "broadcast from rank 1", r);

  if (r == 0) {
    const char msg[] = "gradients";
    c->send(std::as_bytes(std::span(msg)), 1, 7);
  } else if (r == 1) {
    char got[sizeof "gradients"] = {};
    c->recv(std::as_writable_bytes(std::span(got)), 0, 7);
    expect(std::strcmp(got, "gradients") == 0, "send/recv", r);
  }
  c->barrier();
  // Every rank learns whether any rank failed.
  std::vector<int64_t> total = {failures};
  c->all_reduce(total, ReduceOp::Sum);
  if (r == 0) std::printf("dist_mpi_check: %d ranks, %lld failed checks\n", n, static_cast<long long>(total[0]));
  return total[0] == 0 ? 0 : 1;
}
