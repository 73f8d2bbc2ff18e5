#include "loom/train/optimizer.h"

#include <cmath>
#include <numbers>

#include "loom/core/error.h"

namespace loom::train {

AdamW::AdamW(const AdamWOptions& options, std::vector<ParamInfo> params) : o_(options), info_(std::move(params)) {
  LOOM_CHECK(o_.beta1 >= 0 && o_.beta1 < 1 && o_.beta2 >= 0 && o_.beta2 < 1 && o_.eps > 0 && o_.weight_decay >= 0,
             "[train] AdamW: betas must be in [0, 1), eps > 0 and weight decay >= 0 (got {}, {}, {}, {})", o_.beta1,
             o_.beta2, o_.eps, o_.weight_decay);
  for (const auto& p : info_) {
    LOOM_CHECK(p.size >= 0, "[train] AdamW: parameter '{}' has size {}", p.name, p.size);
    m_.emplace_back(static_cast<size_t>(p.size), 0.0f);
    v_.emplace_back(static_cast<size_t>(p.size), 0.0f);
  }
}

void AdamW::step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, float lr) {
  LOOM_CHECK(params.size() == info_.size() && grads.size() == info_.size(),
             "[train] AdamW: {} parameters and {} gradients for an optimizer of {}", params.size(), grads.size(),
             info_.size());
  ++t_;
  const double bc1 = 1 - std::pow(double(o_.beta1), double(t_));
  const double bc2 = 1 - std::pow(double(o_.beta2), double(t_));
  const float step_size = float(lr / bc1);
  const float inv_sqrt_bc2 = float(1 / std::sqrt(bc2));
  const float b1 = o_.beta1, b2 = o_.beta2;
  for (size_t i = 0; i < info_.size(); ++i) {
    const auto p = params[i];
    const auto g = grads[i];
    LOOM_CHECK(int64_t(p.size()) == info_[i].size && int64_t(g.size()) == info_[i].size,
               "[train] AdamW: parameter '{}' has {} elements and gradient {}, expected {}", info_[i].name, p.size(),
               g.size(), info_[i].size);
    const float decay = info_[i].decay ? 1 - lr * o_.weight_decay : 1.0f;
    float* m = m_[i].data();
    float* v = v_[i].data();
    for (size_t k = 0; k < p.size(); ++k) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
      p[k] = p[k] * decay - step_size * m[k] / (std::sqrt(v[k]) * inv_sqrt_bc2 + o_.eps);
    }
  }
}

void AdamW::restore(int64_t steps, std::span<const std::vector<float>> m, std::span<const std::vector<float>> v) {
  LOOM_CHECK(steps >= 0 && m.size() == info_.size() && v.size() == info_.size(),
             "[train] AdamW: restoring {} + {} moments into an optimizer of {} parameters", m.size(), v.size(),
             info_.size());
  for (size_t i = 0; i < info_.size(); ++i)
    LOOM_CHECK(int64_t(m[i].size()) == info_[i].size && int64_t(v[i].size()) == info_[i].size,
               "[train] AdamW: saved moments of '{}' have {} and {} elements, expected {}", info_[i].name, m[i].size(),
               v[i].size(), info_[i].size);
  m_.assign(m.begin(), m.end());
  v_.assign(v.begin(), v.end());
  t_ = steps;
}

float CosineSchedule::lr(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return max_lr * float(step + 1) / float(warmup_steps);
  if (step >= total_steps) return min_lr;
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = double(step - warmup_steps) / double(span);
  return float(min_lr + 0.5 * (max_lr - min_lr) * (1 + std::cos(std::numbers::pi * progress)));
}

float clip_grad_norm(std::span<const std::span<float>> grads, float max_norm) {
  double sq = 0;
  for (const auto& g : grads)
    for (float x : g) sq += double(x) * double(x);
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / (norm + 1e-6));
    for (const auto& g : grads)
      for (float& x : g) x *= s;
  }
  return float(norm);
}

}  // namespace loom::train
