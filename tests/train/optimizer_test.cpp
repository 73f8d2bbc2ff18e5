// AdamW, the cosine schedule and gradient clipping against hand-computed
// values and a float64 transcription of the AdamW paper's update rule.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "loom/core/error.h"
#include "loom/train/optimizer.h"

namespace loom::train {
namespace {

TEST(AdamW, FirstStepMovesEachWeightByTheLearningRateAgainstItsGradient) {
  // Step 1: m^ = g and v^ = g^2, so the Adam step is lr * g / (|g| + eps),
  // i.e. lr * sign(g), after the decoupled decay p *= 1 - lr * wd.
  AdamW opt({.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f},
            {{"w", 2, true}, {"norm", 1, false}});
  std::vector<float> w = {1.0f, -2.0f}, n = {0.5f};
  const std::vector<float> gw = {0.5f, -0.25f}, gn = {-3.0f};
  std::vector<std::span<float>> p = {w, n};
  std::vector<std::span<const float>> g = {gw, gn};
  opt.step(p, g, 0.1f);
  EXPECT_NEAR(w[0], 1.0 * 0.99 - 0.1, 1e-6);   // 0.89
  EXPECT_NEAR(w[1], -2.0 * 0.99 + 0.1, 1e-6);  // -1.88
  EXPECT_NEAR(n[0], 0.5 + 0.1, 1e-6);          // no decay on norms
  EXPECT_EQ(opt.steps(), 1);
}

// The update rule in float64, written from the paper (Algorithm 2).
struct AdamW64 {
  double b1, b2, eps, wd;
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& p, const std::vector<float>& g, double lr) {
    ++t;
    for (size_t k = 0; k < p.size(); ++k) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * double(g[k]) * g[k];
      const double mh = m[k] / (1 - std::pow(b1, t)), vh = v[k] / (1 - std::pow(b2, t));
      p[k] = p[k] - lr * wd * p[k] - lr * mh / (std::sqrt(vh) + eps);
    }
  }
};

TEST(AdamW, TwentyStepsFollowTheFloat64Definition) {
  const size_t n = 37;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> w(n);
  for (float& x : w) x = nd(rng);
  std::vector<double> w64(w.begin(), w.end());
  AdamW opt({.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.05f}, {{"w", int64_t(n), true}});
  AdamW64 ref{0.9, 0.99, 1e-6, 0.05, std::vector<double>(n), std::vector<double>(n)};
  CosineSchedule sched{.max_lr = 1e-2f, .min_lr = 1e-3f, .warmup_steps = 3, .total_steps = 20};
  for (int s = 0; s < 20; ++s) {
    std::vector<float> g(n);
    for (size_t k = 0; k < n; ++k) g[k] = nd(rng) * 0.1f + 0.01f * w[k];
    std::vector<std::span<float>> p = {w};
    std::vector<std::span<const float>> gs = {g};
    opt.step(p, gs, sched.lr(s));
    ref.step(w64, g, double(sched.lr(s)));
  }
  for (size_t k = 0; k < n; ++k) EXPECT_NEAR(w[k], w64[k], 1e-5 * (1 + std::fabs(w64[k]))) << k;
}

TEST(AdamW, RestoredStateContinuesExactly) {
  const std::vector<float> g1 = {0.3f, -0.7f}, g2 = {-0.1f, 0.2f};
  auto run = [&](bool restore_between) {
    AdamW a({}, {{"w", 2, true}});
    std::vector<float> w = {0.5f, 0.25f};
    std::vector<std::span<float>> p = {w};
    std::vector<std::span<const float>> s1 = {g1}, s2 = {g2};
    a.step(p, s1, 1e-2f);
    if (restore_between) {
      AdamW b({}, {{"w", 2, true}});
      std::vector<std::vector<float>> m = {{a.m(0).begin(), a.m(0).end()}}, v = {{a.v(0).begin(), a.v(0).end()}};
      b.restore(a.steps(), m, v);
      b.step(p, s2, 1e-2f);
    } else {
      a.step(p, s2, 1e-2f);
    }
    return w;
  };
  EXPECT_EQ(run(false), run(true));  // bit for bit
}

TEST(AdamW, RejectsMismatchedSizes) {
  AdamW opt({}, {{"w", 3, true}});
  std::vector<float> w(2), g(2);
  std::vector<std::span<float>> p = {w};
  std::vector<std::span<const float>> gs = {g};
  EXPECT_THROW(opt.step(p, gs, 1e-3f), Error);
}

TEST(CosineSchedule, WarmsUpLinearlyThenDecaysByHalfACosine) {
  const CosineSchedule s{.max_lr = 1e-3f, .min_lr = 1e-4f, .warmup_steps = 10, .total_steps = 110};
  EXPECT_NEAR(s.lr(0), 1e-4, 1e-9);    // (0 + 1) / 10 of the peak
  EXPECT_NEAR(s.lr(4), 5e-4, 1e-9);
  EXPECT_NEAR(s.lr(9), 1e-3, 1e-9);    // peak at the end of warmup
  EXPECT_NEAR(s.lr(10), 1e-3, 1e-9);   // cos(0) = 1
  EXPECT_NEAR(s.lr(60), 5.5e-4, 1e-9); // halfway: (max + min) / 2
  EXPECT_NEAR(s.lr(35), 1e-4 + 0.5 * 9e-4 * (1 + std::cos(M_PI / 4)), 1e-9);
  EXPECT_NEAR(s.lr(110), 1e-4, 1e-9);
  EXPECT_NEAR(s.lr(500), 1e-4, 1e-9);
}

TEST(ClipGradNorm, ScalesToTheMaximumNormAndReportsTheOriginal) {
  std::vector<float> a = {3.0f}, b = {0.0f, 4.0f};  // global norm 5
  std::vector<std::span<float>> g = {a, b};
  EXPECT_NEAR(clip_grad_norm(g, 1.0f), 5.0, 1e-6);
  EXPECT_NEAR(a[0], 0.6, 1e-5);
  EXPECT_NEAR(b[1], 0.8, 1e-5);
  EXPECT_NEAR(clip_grad_norm(g, 10.0f), 1.0, 1e-5);  // below the maximum: unchanged
  EXPECT_NEAR(a[0], 0.6, 1e-5);
}

}  // namespace
}  // namespace loom::train
