// `loom bench --train`: training speed of a Llama-architecture stack of a
// named shape (random weights, random tokens): tokens/s of whole optimizer
// steps (forward, backward, gradient read-back, AdamW) and the model FLOP/s
// they achieve as a fraction of the peak FMA throughput measured in the same run.
#pragma once

#include <string>
#include <vector>

namespace loom::cli {

struct TrainBenchOptions {
  std::string shape = "gpt2-small";
  int64_t seq_len = 256, batch = 1;
  std::vector<int> threads;
  int repeats = 3;
  std::string backend = "cpu";
  bool json = false;
};

// Names of the shapes --train-shape accepts.
std::vector<std::string> train_bench_shapes();
void bench_train(const TrainBenchOptions& o);

}  // namespace loom::cli
