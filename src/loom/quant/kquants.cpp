// Quantizers for the K-quant super-block formats (layouts in core/dtype.h).
// Each sub-block's scale (and min) is chosen by a small search that refits
// the scale by least squares for each candidate rounding, then the scales
// themselves are quantized (6 or 8 bits) and the values re-rounded with the
// scales as stored, so the file holds the best values for what it decodes to.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "loom/core/half.h"
#include "loom/quant/kquants.h"

namespace loom::quant {

namespace {

int nearest(float v) { return int(std::nearbyint(v)); }

// Signed scale s for n values so that x ~ s * q, q in [-nmax, nmax - 1]:
// tries maps of the largest magnitude onto -nmax +- small offsets and keeps
// the one whose least-squares refit has the smallest error.
float signed_scale(const float* x, int n, int nmax) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  if (amax == 0) return 0;
  float best_scale = vmax / float(-nmax), best_err = INFINITY;
  for (int step = -8; step <= 8; ++step) {
    const float inv = float(-nmax) / vmax * (1.0f + 0.01f * float(step));
    double sxq = 0, sqq = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest(x[i] * inv), -nmax, nmax - 1);
      sxq += double(x[i]) * q;
      sqq += double(q) * q;
    }
    if (sqq == 0) continue;
    const float s = float(sxq / sqq);
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest(x[i] * inv), -nmax, nmax - 1);
      const double e = x[i] - s * q;
      err += e * e;
    }
    if (err < best_err) {
      best_err = float(err);
      best_scale = s;
    }
  }
  return best_scale;
}

// Scale a >= 0 and min m >= 0 for n values so that x ~ a * q - m, q in 0..nmax:
// alternates rounding and a least-squares fit of (a, m).
void scale_and_min(const float* x, int n, int nmax, float* a_out, float* m_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  lo = std::min(lo, 0.0f);
  if (hi <= lo) {
    *a_out = 0;
    *m_out = -lo;
    return;
  }
  float a = (hi - lo) / float(nmax), m = -lo;
  auto error = [&](float sa, float sm) {
    double err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = sa > 0 ? std::clamp(nearest((x[i] + sm) / sa), 0, nmax) : 0;
      const double e = x[i] - (sa * q - sm);
      err += e * e;
    }
    return err;
  };
  double best = error(a, m);
  float best_a = a, best_m = m;
  for (int iter = 0; iter < 5; ++iter) {
    double sq = 0, sqq = 0, sx = 0, sxq = 0;
    for (int i = 0; i < n; ++i) {
      const int q = std::clamp(nearest((x[i] + m) / a), 0, nmax);
      sq += q;
      sqq += double(q) * q;
      sx += x[i];
      sxq += double(x[i]) * q;
    }
    const double det = n * sqq - sq * sq;
    if (det <= 0) break;
    double na = (n * sxq - sq * sx) / det;
    double nm = -(sx - na * sq) / n;
    if (nm < 0) {  // the min must stay >= 0: refit the scale alone
      nm = 0;
      na = sqq > 0 ? sxq / sqq : 0;
    }
    if (na <= 0) break;
    a = float(na);
    m = float(nm);
    const double err = error(a, m);
    if (err < best) {
      best = err;
      best_a = a;
      best_m = m;
    }
  }
  *a_out = best_a;
  *m_out = best_m;
}

}  // namespace

void quantize_row_q4_k(const float* x, BlockQ4_K* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float a[8], m[8];
    for (int j = 0; j < 8; ++j) scale_and_min(x + 32 * j, 32, 15, &a[j], &m[j]);
    const float amax = *std::max_element(a, a + 8), mmax = *std::max_element(m, m + 8);
    BlockQ4_K& b = out[i];
    b.d = f32_to_f16(amax / 63.0f);
    b.dmin = f32_to_f16(mmax / 63.0f);
    const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = uint8_t(d > 0 ? std::clamp(nearest(a[j] / d), 0, 63) : 0);
      mn[j] = uint8_t(dmin > 0 ? std::clamp(nearest(m[j] / dmin), 0, 63) : 0);
    }
    for (int j = 0; j < 4; ++j) {
      b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      b.scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
      b.scales[j + 8] = uint8_t((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    uint8_t q[kQK_K];
    for (int j = 0; j < 8; ++j) {
      const float as = d * float(sc[j]), ms = dmin * float(mn[j]);
      for (int l = 0; l < 32; ++l)
        q[32 * j + l] = uint8_t(as > 0 ? std::clamp(nearest((x[32 * j + l] + ms) / as), 0, 15) : 0);
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b.qs[32 * c + l] = uint8_t(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

void quantize_row_q6_k(const float* x, BlockQ6_K* out, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float s[16];
    float amax = 0;
    for (int j = 0; j < 16; ++j) {
      s[j] = signed_scale(x + 16 * j, 16, 32);
      amax = std::max(amax, std::fabs(s[j]));
    }
    BlockQ6_K& b = out[i];
    std::memset(&b, 0, sizeof b);
    b.d = f32_to_f16(amax / 127.0f);
    const float d = f16_to_f32(b.d);
    uint8_t q[kQK_K];
    for (int j = 0; j < 16; ++j) {
      b.scales[j] = int8_t(d > 0 ? std::clamp(nearest(s[j] / d), -127, 127) : 0);
      const float step = d * float(b.scales[j]);
      for (int l = 0; l < 16; ++l)
        q[16 * j + l] = uint8_t((step != 0 ? std::clamp(nearest(x[16 * j + l] / step), -32, 31) : 0) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t* e = q + 128 * h + l;  // e[32k] is element 128h + 32k + l
        b.ql[64 * h + l] = uint8_t((e[0] & 15) | ((e[64] & 15) << 4));
        b.ql[64 * h + l + 32] = uint8_t((e[32] & 15) | ((e[96] & 15) << 4));
        b.qh[32 * h + l] = uint8_t((e[0] >> 4) | ((e[32] >> 4) << 2) | ((e[64] >> 4) << 4) | ((e[96] >> 4) << 6));
      }
    }
  }
}

}  // namespace loom::quant
