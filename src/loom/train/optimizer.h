// Optimizer: AdamW over FP32 master weights, the learning-rate schedule
// (linear warmup, then cosine decay) and gradient clipping by global norm.
// Parameters and gradients are host float arrays: the training loop keeps
// the master weights in FP32 and hands the backend whatever compute type it
// runs in. Optimizer state (moments and step count) is saved with every
// checkpoint, so a resumed run continues bit for bit.
//
//   train::AdamW opt({.weight_decay = 0.1f}, {{"tok_embd", n, /*decay=*/true}, ...});
//   const float norm = train::clip_grad_norm(grads, 1.0f);
//   opt.step(params, grads, schedule.lr(step));
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom::train {

struct AdamWOptions {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;  // decoupled (Loshchilov & Hutter), applied to params with decay = true
};

struct ParamInfo {
  std::string name;
  int64_t size = 0;
  bool decay = true;  // false for norms and biases, as usual
};

class AdamW {
 public:
  AdamW(const AdamWOptions& options, std::vector<ParamInfo> params);

  // One update of every parameter with its gradient at learning rate lr:
  //   p -= lr * wd * p                      (decay params only)
  //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
  //   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
  void step(std::span<const std::span<float>> params, std::span<const std::span<const float>> grads, float lr);

  int64_t steps() const { return t_; }
  const std::vector<ParamInfo>& params() const { return info_; }
  // The moments of parameter i (for checkpoints), and restoring them.
  std::span<const float> m(size_t i) const { return m_[i]; }
  std::span<const float> v(size_t i) const { return v_[i]; }
  void restore(int64_t steps, std::span<const std::vector<float>> m, std::span<const std::vector<float>> v);

 private:
  AdamWOptions o_;
  std::vector<ParamInfo> info_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

// Learning rate at optimizer step `step` (0-based): rises linearly to max_lr
// over warmup_steps ((step + 1) / warmup_steps), then follows half a cosine
// from max_lr down to min_lr at total_steps, and stays at min_lr after.
struct CosineSchedule {
  float max_lr = 3e-4f;
  float min_lr = 3e-5f;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  float lr(int64_t step) const;
};

// Scales every gradient by max_norm / ||g|| when the global L2 norm over all
// of them exceeds max_norm (max_norm <= 0: no clipping). Returns the norm
// before clipping (accumulated in double).
float clip_grad_norm(std::span<const std::span<float>> grads, float max_norm);

}  // namespace loom::train
