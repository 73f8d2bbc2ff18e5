// `loom quantize`: the mix of types it writes (rules in model/quantize_mix.h,
// applied by hand to stories260K's shapes) and that the result still runs.
#include <gtest/gtest.h>

#include "loom/format/gguf.h"
#include "support/run_loom.h"
#include "support/test_data.h"

namespace loom {
namespace {

std::string type_of(const format::GgufFile& f, const std::string& tensor) {
  const auto* t = f.find_tensor(tensor);
  if (!t) return "missing";
  return std::string(format::ggml_type_info(t->ggml_type)->name);
}

TEST(QuantizeCli, WritesTheUsualMixForStories260K) {
  LOOM_DATA(model, "models/stories260K.bin");
  LOOM_DATA(tok, "models/tok512.bin");
  const std::string dir = test::scratch_dir("quantize");
  const std::string f32 = dir + "/f32.gguf", q4 = dir + "/q4_0.gguf", pure = dir + "/pure.gguf";
  ASSERT_EQ(test::run_loom({"convert", model, "--tokenizer", tok, "-o", f32}).exit_code, 0);
  const auto r = test::run_loom({"quantize", f32, q4, "--type", "q4_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = format::GgufFile::open(q4);
  // stories260K: dim 64, hidden 172, tied output. Q/K/V/O and gate/up rows are
  // 64 long (two 32-blocks): Q4_0. The down projection's rows are 172 long,
  // not a whole number of 32-blocks: F16. The tied embedding is the output
  // projection, which the 4-bit mix keeps at Q6_K -- but 64 is not a whole
  // 256-block, so it falls back to Q8_0. Norms stay F32.
  EXPECT_EQ(type_of(*f, "blk.0.attn_q.weight"), "Q4_0");
  EXPECT_EQ(type_of(*f, "blk.4.ffn_gate.weight"), "Q4_0");
  EXPECT_EQ(type_of(*f, "blk.2.ffn_down.weight"), "F16");
  EXPECT_EQ(type_of(*f, "token_embd.weight"), "Q8_0");
  EXPECT_EQ(type_of(*f, "blk.0.attn_norm.weight"), "F32");
  // --pure: the embedding takes the requested type too.
  ASSERT_EQ(test::run_loom({"quantize", f32, pure, "--type", "q4_0", "--pure"}).exit_code, 0);
  EXPECT_EQ(type_of(*format::GgufFile::open(pure), "token_embd.weight"), "Q4_0");
  // The quantized model runs and starts the golden story the same way.
  const auto run = test::run_loom({"run", "-m", q4, "--temp", "0", "-n", "8"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out.rfind("Once upon a time", 0), 0u) << run.out;
}

TEST(QuantizeCli, RejectsUnknownTypesAndMissingFiles) {
  const auto bad = test::run_loom({"quantize", "/nonexistent.gguf", "/tmp/x.gguf", "--type", "q3_x"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("q3_x"), std::string::npos) << bad.err;
  const auto missing = test::run_loom({"quantize", "/nonexistent.gguf", "/tmp/x.gguf", "--type", "q8_0"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent.gguf"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace loom
