// `loom bench --train`: the JSON it prints and the model-FLOP count it uses,
// checked against a count done by hand for the `tiny` shape. `loom bench -m`:
// the JSON keys issue 5 names, and limits that hold whatever the machine.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

TEST(BenchTrainCli, TinyShapeReportsSpeedAndAFractionOfThePeak) {
  const test::LoomRun r =
      test::run_loom({"bench", "--train", "--train-shape", "tiny", "-p", "64", "--batch", "2", "-t", "1", "-r", "2",
                      "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  // tiny: V 512, C 64, L 2, 4 query / 2 KV heads of 16, F 172, tied output.
  // Matrices: embedding/head 512*64 = 32768; per layer q 4096, k 2048, v 2048,
  // o 4096, gate/up/down 3 * 172*64 = 33024, so 45312; in all 123392.
  // Norms: 5 * 64 = 320. FLOPs per token: 6 * 123392 + 6 * L * C * T (T = 64).
  EXPECT_EQ(j.at("params").get<double>(), 123392.0 + 320.0);
  EXPECT_EQ(j.at("flops_per_token").get<double>(), 6.0 * 123392 + 6.0 * 2 * 64 * 64);
  const double tps = j.at("train_tps").at("1").get<double>();
  const double peak = j.at("peak_gflops").at("1").get<double>();
  const double fraction = j.at("train_roofline").at("1").get<double>();
  EXPECT_GT(tps, 0);
  EXPECT_GT(peak, 0);
  // Training cannot run faster than the machine's measured FMA peak.
  EXPECT_GT(fraction, 0);
  EXPECT_LE(fraction, 1.0);
  EXPECT_LE(j.at("train_tps_min").at("1").get<double>(), tps);
  EXPECT_GE(j.at("train_tps_max").at("1").get<double>(), tps);
}

TEST(BenchTrainCli, UnknownShapeIsAClearError) {
  const test::LoomRun r = test::run_loom({"bench", "--train", "--train-shape", "gpt5", "-t", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown --train-shape 'gpt5'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gpt2-small"), std::string::npos) << r.err;
}

// A quantized copy of the default model: its prompt speed is held to the int8
// peak, and the process's memory to the file plus 100 MB (the bandwidth
// pass's 1.5 GiB of arrays are not the model's and must not count).
TEST(BenchCli, JsonReportsSpeedsAndLimitsPerThreadCount) {
  const std::string model = std::string(LOOM_BINARY_DIR) + "/models/default.gguf";
  const std::string q8 = test::scratch_dir("bench-cli") + "/default-q8_0.gguf";
  const test::LoomRun q = test::run_loom({"quantize", model, q8, "--type", "q8_0"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const test::LoomRun r = test::run_loom({"bench", "-m", q8, "-p", "16", "-n", "4", "-r", "2", "-t", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (const char* key : {"pp_tps", "tg_tps", "tg_roofline", "pp_roofline", "bandwidth_gbs", "peak_gflops",
                          "peak_int8_gops", "peak_rss_mb"})
    EXPECT_GT(j.at(key).at("1").get<double>(), 0) << key;
  // Prompt processing cannot beat the arithmetic peaks measured on the same cores.
  EXPECT_LE(j.at("pp_roofline").at("1").get<double>(), 1.0);
  const double file_mb = double(std::filesystem::file_size(q8)) / (1 << 20);
  EXPECT_LE(j.at("peak_rss_mb").at("1").get<double>(), file_mb + 100);
}

}  // namespace
}  // namespace loom
