// Reference kernels of the training ops (graph/op.h, "Training"): forward ops
// without a KV cache and the backward ops, scalar and in float64 like the rest
// of the reference backend. They define what those ops mean.
#pragma once

#include <span>

#include "loom/core/tensor.h"
#include "loom/graph/op.h"

namespace loom::backend::reference {

void fill(const graph::Fill& p, const Tensor& out);
void transpose(std::span<const Tensor> in, const Tensor& out);
void sum_to(std::span<const Tensor> in, const Tensor& out);
void causal_attention(const graph::CausalAttention& p, std::span<const Tensor> in, const Tensor& out);
void cross_entropy(std::span<const Tensor> in, const Tensor& out);
void rms_norm_backward(const graph::RmsNormBackward& p, std::span<const Tensor> in, const Tensor& out);
void rope_backward(const graph::RopeBackward& p, std::span<const Tensor> in, const Tensor& out);
void swiglu_backward(const graph::SwiGluBackward& p, std::span<const Tensor> in, const Tensor& out);
void softmax_backward(std::span<const Tensor> in, const Tensor& out);
void get_rows_backward(std::span<const Tensor> in, const Tensor& out);
void slice_backward(const graph::SliceBackward& p, std::span<const Tensor> in, const Tensor& out);
void causal_attention_backward(const graph::CausalAttentionBackward& p, std::span<const Tensor> in, const Tensor& out);
void cross_entropy_backward(std::span<const Tensor> in, const Tensor& out);

}  // namespace loom::backend::reference
