// The softmax family of the SIMD kernels: a vector exp, SwiGLU and the
// decode/prefill attention over a paged KV cache. Part of the one kernel
// source: included by kernels_impl.h inside its per-ISA namespace (V, the
// float loaders and prefetch_l2 come from there), never on its own.

// --- softmax and attention ------------------------------------------------

// e^x for a vector: x = n ln2 + r with |r| <= ln2 / 2, e^r by its Taylor
// series to r^7 (truncation below 1e-8 relative), 2^n from exponent bits.
// ln2 is split so that n * hi is exact (hi has 9 significant bits) and r
// loses nothing to cancellation, fused multiply-add or not. 2^n is applied as
// two normal factors, so that results down to the smallest denormal round
// only once; below x = -104 the result is 0.
inline typename V::F vexp(typename V::F x) {
  x = V::max(V::min(x, V::set1(88.7f)), V::set1(-104.0f));
  const auto n = V::round(V::mul(x, V::set1(1.44269504f)));
  auto r = V::fma(n, V::set1(-0.693359375f), x);
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  auto p = V::set1(1.0f / 5040);
  p = V::fma(p, r, V::set1(1.0f / 720));
  p = V::fma(p, r, V::set1(1.0f / 120));
  p = V::fma(p, r, V::set1(1.0f / 24));
  p = V::fma(p, r, V::set1(1.0f / 6));
  p = V::fma(p, r, V::set1(0.5f));
  p = V::fma(p, r, V::set1(1.0f));
  p = V::fma(p, r, V::set1(1.0f));
  const auto n1 = V::round(V::mul(n, V::set1(0.5f)));
  return V::mul(V::mul(p, V::exp2i(n1)), V::exp2i(V::sub(n, n1)));
}

void exp_f32(const float* x, float* y, int64_t n) {
  constexpr int L = V::kLanes;
  int64_t i = 0;
  for (; i + L <= n; i += L) V::store(y + i, vexp(V::load(x + i)));
  if (i < n) {  // the tail as one padded vector
    float t[L] = {};
    std::copy(x + i, x + n, t);
    V::store(t, vexp(V::load(t)));
    std::copy(t, t + (n - i), y + i);
  }
}

// o[i] = g[i] / (1 + e^-g[i]) * u[i] (SwiGLU's gate times up). For g below
// -88.7, e^-g is clamped and o is a tiny number rather than a denormal.
void swiglu_f32(const float* g, const float* u, float* o, int64_t n) {
  constexpr int L = V::kLanes;
  const auto one = V::set1(1.0f), zero = V::zero();
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const auto gv = V::load(g + i);
    const auto e = vexp(V::sub(zero, gv));
    V::store(o + i, V::div(V::mul(gv, V::load(u + i)), V::add(one, e)));
  }
  for (; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// A cache row as dp floats (converted from F16, zero-padded past D) in dst.
template <typename Load>
void attend_row(const std::byte* src, int64_t D, int64_t dp, float* dst) {
  int64_t d = 0;
  for (; d + V::kLanes <= D; d += V::kLanes) V::store(dst + d, Load::vec(src, d));
  for (; d < D; ++d) dst[d] = Load::one(src, d);
  for (; d < dp; ++d) dst[d] = 0;
}

// The attention kernels below are compiled for rows of NC vectors (the
// common head sizes, so that every loop over a row unrolls and its sums stay
// in registers), and with NC = 0 for any other size (nc = dp / kLanes at run time).

// acc[b] += q . k_b over the NQ vectors from vector c, for the kLanes key
// rows from k (dp floats apart).
template <int NQ>
inline void attend_dots(typename V::F* acc, const float* k, int64_t dp, const float* q, int64_t c) {
  constexpr int L = V::kLanes;
  typename V::F qv[NQ];
  for (int j = 0; j < NQ; ++j) qv[j] = V::load(q + (c + j) * L);
  for (int b = 0; b < L; ++b)
    for (int j = 0; j < NQ; ++j) acc[b] = V::fma(V::load(k + b * dp + (c + j) * L), qv[j], acc[b]);
}

// s[i] = scale * q . k_i for the keys [0, lp) of a step (lp a multiple of
// kLanes): kLanes dots at a time, summed by one hsums; QB vectors of q at a
// time stay in registers.
template <int NC>
void attend_scores(const float* k, int64_t lp, const float* q, int64_t nc, float scale, float* s) {
  constexpr int L = V::kLanes, QB = L >= 16 ? 8 : 4;  // registers: L sums, QB of q, a temporary
  const int64_t dp = (NC > 0 ? NC : nc) * L;
  const auto sc = V::set1(scale);
  for (int64_t i = 0; i < lp; i += L) {
    typename V::F acc[L];
    for (auto& a : acc) a = V::zero();
    if constexpr (NC > 0) {
      static_assert(NC % QB == 0 || NC < QB);
      for (int c = 0; c < NC; c += QB) attend_dots<std::min(NC, QB)>(acc, k + i * dp, dp, q, c);
    } else {
      int64_t c = 0;
      for (; c + QB <= nc; c += QB) attend_dots<QB>(acc, k + i * dp, dp, q, c);
      for (; c < nc; ++c) attend_dots<1>(acc, k + i * dp, dp, q, c);
    }
    V::store(s + i, V::mul(V::hsums(acc), sc));
  }
}

// For HB heads (rows dp floats apart in o, kAttendTile apart in p) and NR
// vectors from vector c: o_h = alpha_h o_h + sum_i p_h[i] v_i. The sums stay
// in registers over the step's keys, each value load serves HB heads.
template <int HB, int NR>
void attend_values(float* o, const float* alpha, const float* p, const float* v, int64_t len, int64_t dp, int64_t c) {
  constexpr int L = V::kLanes;
  typename V::F acc[HB][NR];
  for (int h = 0; h < HB; ++h)
    for (int r = 0; r < NR; ++r) acc[h][r] = V::mul(V::load(o + h * dp + (c + r) * L), V::set1(alpha[h]));
  for (int64_t i = 0; i < len; ++i) {
    typename V::F pi[HB];
    for (int h = 0; h < HB; ++h) pi[h] = V::set1(p[h * kAttendTile + i]);
    for (int r = 0; r < NR; ++r) {
      const auto vv = V::load(v + i * dp + (c + r) * L);
      for (int h = 0; h < HB; ++h) acc[h][r] = V::fma(pi[h], vv, acc[h][r]);
    }
  }
  for (int h = 0; h < HB; ++h)
    for (int r = 0; r < NR; ++r) V::store(o + h * dp + (c + r) * L, acc[h][r]);
}

// attend_values over whole rows of HB heads, NR = 4 vectors at a time.
template <int HB>
void attend_values_rows(float* o, const float* alpha, const float* p, const float* v, int64_t len, int64_t nc) {
  const int64_t dp = nc * V::kLanes;
  int64_t c = 0;
  for (; c + 4 <= nc; c += 4) attend_values<HB, 4>(o, alpha, p, v, len, dp, c);
  for (; c + 2 <= nc; c += 2) attend_values<HB, 2>(o, alpha, p, v, len, dp, c);
  for (; c < nc; ++c) attend_values<HB, 1>(o, alpha, p, v, len, dp, c);
}

// The slots of consecutive keys of a sequence, from key j on.
struct SlotWalk {
  const int32_t* blocks;
  int64_t block_size, blk, off;
  SlotWalk(const AttendArgs& a, int64_t j)
      : blocks(a.blocks), block_size(a.block_size), blk(j / block_size), off(j % block_size) {}
  int64_t next() {
    const int64_t slot = int64_t(blocks[blk]) * block_size + off;
    if (++off == block_size) off = 0, ++blk;
    return slot;
  }
};

// Online softmax over steps of keys: each step's keys and values are read
// once for the whole group, copied into scratch one after the other
// (converted from F16, padded to whole vectors): rows of a cache are a slot
// apart, often a power of two, and would evict each other from L1 while
// every head reads them. A head's sums so far are rescaled when its maximum
// grows; the per-step bookkeeping (maxima, rescale factors, sums) runs
// kLanes heads to a vector.
template <typename Load, int NC>
void attend(const AttendArgs& a, float* m, float* l, float* out, float* scratch) {
  constexpr int L = V::kLanes;
  constexpr int HB = L >= 16 ? 4 : 2;  // heads per pass over the values: HB x 4 sums in registers
  const int64_t g = a.g, gp = (g + L - 1) / L * L, D = a.D, nc = NC > 0 ? NC : (D + L - 1) / L, dp = nc * L;
  // Keys per step: a step's keys (16 KB) stay in L1 while every head reads them.
  const int64_t tile = std::clamp<int64_t>(4096 / dp / L * L, L, kAttendTile);
  float* score = scratch;  // kAttendTile per head
  float* kt = score + g * kAttendTile;
  float* vt = kt + kAttendTile * dp;
  float* qt = vt + kAttendTile * dp;
  float* mrun = qt + g * dp;  // per head, gp of each: running maximum and sum,
  float* lrun = mrun + gp;    // the step's maximum, and the factor from the
  float* smax = lrun + gp;    // last maximum to the new one
  float* alpha = smax + gp;
  float* o = D == dp ? out : alpha + gp;
  const float* q = a.q;
  if (D != dp) {  // padded with zeros, which add nothing to the dots
    for (int64_t h = 0; h < g; ++h) {
      std::copy(a.q + h * D, a.q + (h + 1) * D, qt + h * dp);
      std::fill(qt + h * dp + D, qt + (h + 1) * dp, 0.0f);
    }
    q = qt;
  }
  std::fill(o, o + g * dp, 0.0f);
  std::fill(mrun, mrun + g, -INFINITY);
  std::fill(mrun + g, mrun + gp, 0.0f);  // padding heads: finite, so their factors stay 1
  std::fill(lrun, lrun + gp, 0.0f);
  std::fill(smax + g, smax + gp, 0.0f);
  // Keys and values are prefetched into L2 about 32 KB ahead of their use:
  // decoding streams them from memory, and the rows of a step are too
  // scattered (a block of slots each) for the hardware to see a stream.
  const int64_t row_bytes = D * Load::kBytes, ahead_keys = std::max<int64_t>(16, 16384 / row_bytes);
  SlotWalk key(a, a.j0), ahead(a, std::min(a.j0 + ahead_keys, a.j1));
  for (int64_t j0 = a.j0; j0 < a.j1; j0 += tile) {
    const int64_t len = std::min(tile, a.j1 - j0), lp = (len + L - 1) / L * L;
    for (int64_t i = 0; i < len; ++i) {
      if (j0 + i + ahead_keys < a.j1) {
        const int64_t slot = ahead.next();
        for (int64_t b = 0; b < row_bytes; b += 64) {
          prefetch_l2(a.k + slot * a.slot_bytes + b);
          prefetch_l2(a.v + slot * a.slot_bytes + b);
        }
      }
      const int64_t slot = key.next();
      attend_row<Load>(a.k + slot * a.slot_bytes, D, dp, kt + i * dp);
      attend_row<Load>(a.v + slot * a.slot_bytes, D, dp, vt + i * dp);
    }
    std::fill(kt + len * dp, kt + lp * dp, 0.0f);  // whole vectors of scores; these become -inf
    for (int64_t h = 0; h < g; ++h) {
      float* s = score + h * kAttendTile;
      attend_scores<NC>(kt, lp, q + h * dp, nc, a.scale, s);
      std::fill(s + len, s + lp, -INFINITY);  // e^-inf = 0
      auto mx = V::load(s);
      for (int64_t i = L; i < lp; i += L) mx = V::max(mx, V::load(s + i));
      smax[h] = V::reduce_max(mx);
    }
    for (int64_t h = 0; h < gp; h += L) {
      const auto mo = V::load(mrun + h), mn = V::max(mo, V::load(smax + h));
      V::store(alpha + h, vexp(V::sub(mo, mn)));  // 0 on the first step (m = -inf)
      V::store(mrun + h, mn);
    }
    for (int64_t h0 = 0; h0 < gp; h0 += L) {  // e^(score - max) in place, and its sums
      typename V::F sum[L];
      for (int64_t h = h0; h < h0 + L; ++h) {
        sum[h - h0] = V::zero();
        if (h >= g) continue;
        float* s = score + h * kAttendTile;
        const auto mv = V::set1(mrun[h]);
        for (int64_t i = 0; i < lp; i += L) {
          const auto p = vexp(V::sub(V::load(s + i), mv));
          V::store(s + i, p);
          sum[h - h0] = V::add(sum[h - h0], p);
        }
      }
      V::store(lrun + h0, V::fma(V::load(lrun + h0), V::load(alpha + h0), V::hsums(sum)));
    }
    int64_t h = 0;
    for (; h + HB <= g; h += HB) attend_values_rows<HB>(o + h * dp, alpha + h, score + h * kAttendTile, vt, len, nc);
    for (; h + 2 <= g; h += 2) attend_values_rows<2>(o + h * dp, alpha + h, score + h * kAttendTile, vt, len, nc);
    for (; h < g; ++h) attend_values_rows<1>(o + h * dp, alpha + h, score + h * kAttendTile, vt, len, nc);
  }
  std::copy(mrun, mrun + g, m);
  std::copy(lrun, lrun + g, l);
  if (o != out)
    for (int64_t h = 0; h < g; ++h) std::copy(o + h * dp, o + h * dp + D, out + h * D);
}

// Head sizes of 64 and 128 floats on every instruction set get their own code.
template <typename Load>
void attend_any(const AttendArgs& a, float* m, float* l, float* o, float* scratch) {
  switch ((a.D + V::kLanes - 1) / V::kLanes) {
    case 4: attend<Load, 4>(a, m, l, o, scratch); break;
    case 8: attend<Load, 8>(a, m, l, o, scratch); break;
    case 16: attend<Load, 16>(a, m, l, o, scratch); break;
    default: attend<Load, 0>(a, m, l, o, scratch); break;
  }
}

void attend_f32(const AttendArgs& a, float* m, float* l, float* o, float* scratch) {
  attend_any<LoadF32>(a, m, l, o, scratch);
}

void attend_f16(const AttendArgs& a, float* m, float* l, float* o, float* scratch) {
  attend_any<LoadF16>(a, m, l, o, scratch);
}
