// What the CPU we run on can do, read once at start-up (cpuid on x86-64,
// the auxiliary vector on AArch64). Kernels are compiled once per
// instruction set and the best one this CPU supports is picked at run time.
//
//   const CpuFeatures& f = cpu_features();
//   if (f.avx512_vnni) ...
#pragma once

#include <string>

namespace loom::backend::cpu {

struct CpuFeatures {
  // x86-64
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_vnni = false, avx512_bf16 = false;
  // AArch64
  bool neon = false, dotprod = false;

  std::string describe() const;  // "avx2 fma f16c avx512f ..."
};

const CpuFeatures& cpu_features();

}  // namespace loom::backend::cpu
