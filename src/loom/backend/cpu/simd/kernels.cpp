#include "loom/backend/cpu/simd/kernels.h"

#include <cstdlib>
#include <string>

#include "loom/backend/cpu/cpu_features.h"
#include "loom/core/error.h"

namespace loom::backend::cpu::simd {

std::vector<const Kernels*> available_kernels() {
  const CpuFeatures& f = cpu_features();
  std::vector<const Kernels*> out = {&kKernelsScalar};
#if defined(__x86_64__)
  if (f.avx2 && f.fma && f.f16c) out.push_back(&kKernelsAvx2);
  if (f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512_vnni)
    out.push_back(&kKernelsAvx512);
#endif
#if defined(__aarch64__)
  out.push_back(&kKernelsNeon);
  if (f.dotprod) out.push_back(&kKernelsNeonDot);
#endif
  (void)f;
  return out;
}

namespace {

const Kernels& pick() {
  const auto all = available_kernels();
  const char* env = std::getenv("LOOM_CPU_ISA");
  if (env == nullptr || *env == '\0') return *all.back();
  std::string known;
  for (const Kernels* k : all) {
    if (std::string(k->name) == env) return *k;
    known += std::string(known.empty() ? "" : ", ") + k->name;
  }
  fail("[backend] LOOM_CPU_ISA={} is not available on this CPU; choose one of: {}", env, known);
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = pick();
  return k;
}

}  // namespace loom::backend::cpu::simd
