// Runs small graphs on a named backend from host data, for the conformance
// suite: every op on every registered backend against `reference`.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "loom/backend/backend.h"
#include "loom/core/half.h"
#include "loom/graph/ops.h"

namespace loom::test {

// A tensor's worth of host bytes.
struct HostTensor {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<std::byte> bytes;
};

inline HostTensor host_f32(Shape s, const std::vector<float>& v) {
  HostTensor h{DType::F32, s, std::vector<std::byte>(v.size() * 4)};
  std::memcpy(h.bytes.data(), v.data(), h.bytes.size());
  return h;
}

inline HostTensor host_i32(Shape s, const std::vector<int32_t>& v) {
  HostTensor h{DType::I32, s, std::vector<std::byte>(v.size() * 4)};
  std::memcpy(h.bytes.data(), v.data(), h.bytes.size());
  return h;
}

// Deterministic uniform floats in [lo, hi), the same on every platform.
inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * float(rng() >> 8) * (1.0f / 16777216.0f);
  return v;
}

struct GraphCase {
  std::vector<HostTensor> constants;
  std::vector<HostTensor> inputs;
  // Constants imported from a read-only mapping of a file (as a model's weights
  // are) instead of uploaded into buffers the backend allocates.
  bool mapped_constants = false;
  // Builds the graph from Values of the constants and inputs (same order); returns the output.
  std::function<graph::Value(graph::Graph&, const std::vector<graph::Value>&, const std::vector<graph::Value>&)> build;
};

// Runs the case on a backend and returns the output as floats.
inline std::vector<float> run_case(backend::Backend& be, const GraphCase& c) {
  graph::Graph g;
  std::vector<graph::Value> consts, ins;
  for (size_t i = 0; i < c.constants.size(); ++i) {
    const HostTensor& h = c.constants[i];
    Tensor t;
    if (c.mapped_constants) {
      char path[] = "/tmp/loom-mapped-XXXXXX";
      const int fd = mkstemp(path);
      if (fd < 0 || write(fd, h.bytes.data(), h.bytes.size()) != ssize_t(h.bytes.size())) std::abort();
      void* p = mmap(nullptr, h.bytes.size(), PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) std::abort();
      close(fd);
      unlink(path);  // the mapping keeps the file
      std::shared_ptr<const void> keep(p, [n = h.bytes.size()](const void* q) { munmap(const_cast<void*>(q), n); });
      t = Tensor(be.import_host(p, h.bytes.size(), keep, /*file_backed=*/true), 0, h.dtype, h.shape);
    } else {
      t = Tensor(be.allocate(h.bytes.size()), 0, h.dtype, h.shape);
      be.upload(t, h.bytes.data(), h.bytes.size());
    }
    consts.push_back(g.constant(t, "c" + std::to_string(i)));
  }
  for (size_t i = 0; i < c.inputs.size(); ++i)
    ins.push_back(g.input("in" + std::to_string(i), c.inputs[i].dtype, c.inputs[i].shape));
  graph::Value out = c.build(g, consts, ins);
  g.mark_output(out);
  auto exe = be.compile(g);
  for (size_t i = 0; i < c.inputs.size(); ++i) exe->set_input(ins[i], c.inputs[i].bytes.data(), c.inputs[i].bytes.size());
  exe->run();
  std::vector<float> result(size_t(out.shape().numel()));
  exe->read(out, result.data(), result.size() * 4);
  return result;
}

}  // namespace loom::test
