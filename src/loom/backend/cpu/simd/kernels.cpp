#include "loom/backend/cpu/simd/kernels.h"

#include <cstdlib>
#include <cstring>
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

void pack_q4_0x16(const BlockQ4_0* rows, int64_t groups, int64_t nb, std::byte* out) {
  const int64_t gbytes = packed_q4_0x16_group_bytes(nb);
  for (int64_t g = 0; g < groups; ++g) {
    const BlockQ4_0* src = rows + g * kPackRows * nb;
    std::byte* group = out + g * gbytes;
    std::memset(group, 0, size_t(gbytes));  // the unused half of an odd last pair
    for (int64_t b = 0; b < nb; ++b) {
      std::byte* qs = group + packed_q4_0x16_nibbles_offset(b);
      auto* d = reinterpret_cast<uint16_t*>(group + packed_q4_0x16_scales_offset(b));
      for (int r = 0; r < kPackRows; ++r) {
        const BlockQ4_0& blk = src[r * nb + b];
        d[r] = blk.d;
        for (int c = 0; c < 4; ++c) std::memcpy(qs + c * 64 + r * 4, blk.qs + 4 * c, 4);
      }
    }
  }
}

const Kernels& kernels() {
  static const Kernels& k = pick();
  return k;
}

}  // namespace loom::backend::cpu::simd
