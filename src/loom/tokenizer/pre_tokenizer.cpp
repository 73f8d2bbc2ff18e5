#include "loom/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <cstdlib>

#include "loom/core/error.h"
#include "loom/tokenizer/utf8.h"

namespace loom::tokenizer {

// The patterns as the families publish them (tokenizer.json, tiktoken
// definitions). Unlike ECMAScript regexes, PCRE2 takes them unchanged: it has
// (?i:...), \p{..} classes with Unicode properties (UCP), lookahead and
// possessive quantifiers, so none needs the rewriting llama.cpp does for
// std::regex.
namespace patterns {
const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}  // namespace patterns

namespace {

// DeepSeek LLM's tokenizer.json: a sequence of isolating splits. The second
// one is its own list of cased letters (written here as code points, because
// several of them, e.g. U+212A KELVIN SIGN, change under Unicode
// normalisation of the source text).
const std::vector<std::string> kDeepseekLlm = {
    R"([\r\n])",
    R"(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C})"
    R"(\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5})"
    R"(\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77})"
    R"(\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57})"
    R"(\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC})"
    R"(\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D})"
    R"(\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B})"
    R"(\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A})"
    R"(\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2})"
    R"(\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)",
    R"(\s?[\x{21}-\x{2F}\x{3A}-\x{7E}\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
    R"(\s+$)",
    R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
    R"(\p{N}+)",
};

const std::vector<std::string> kDeepseekCoder = {
    R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)", R"(\p{N})",
};

const std::vector<std::string> kDeepseekV3 = {
    R"(\p{N}{1,3})",
    R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

PreTokenizerSpec pre_tokenizer_spec(std::string_view name) {
  const auto is = [&](std::initializer_list<std::string_view> names) {
    for (std::string_view n : names)
      if (n == name) return true;
    return false;
  };
  if (is({"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "exaone4"})) return {{patterns::kGpt2}};
  if (is({"llama3", "llama-v3", "llama-bpe", "dbrx", "smaug-bpe", "falcon3", "pixtral"}))
    return {{patterns::kLlama3}, false, true};
  // GLM-4 ships a tiktoken file; tiktoken takes a word that is a token whole.
  if (is({"glm4", "chatglm-bpe"})) return {{patterns::kLlama3}, false, true};
  if (is({"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"})) return {{patterns::kQwen2}, true, false};
  if (is({"deepseek-llm"})) return {kDeepseekLlm};
  if (is({"deepseek-coder"})) return {kDeepseekCoder};
  if (is({"deepseek-v3"})) return {kDeepseekV3};
  if (is({"starcoder", "refact", "command-r", "smollm", "codeshell"})) return {{R"(\p{N})", patterns::kGpt2}};
  fail("[tokenizer] pre-tokenizer '{}' is not known to loom (known: gpt-2, llama-bpe/llama3, qwen2, deepseek-llm, "
       "deepseek-coder, deepseek-v3, chatglm-bpe/glm4, starcoder and their aliases); the GGUF key "
       "'tokenizer.ggml.pre' names it",
       name);
}

struct PreTokenizer::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::vector<std::string> patterns, std::string source) : source_(std::move(source)) {
  for (const std::string& p : patterns) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    auto c = std::make_unique<Compiled>();
    c->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &error,
                            &error_offset, nullptr);
    LOOM_CHECK(c->code, "[tokenizer] {}: the pre-tokenizer pattern '{}' does not compile at offset {}: {}", source_, p,
               error_offset, pcre2_message(error));
    // JIT is an optimisation: without it (a platform PCRE2 lacks it for) the
    // interpreter gives the same matches.
    c->jit = pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE) == 0;
    compiled_.push_back(std::move(c));
  }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

void PreTokenizer::split(std::string_view text, std::vector<Span>& words) const {
  LOOM_CHECK(text.size() < (size_t{1} << 32), "[tokenizer] {}: a text of {} bytes is too long to encode at once",
             source_, text.size());
  size_t run = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (utf8::char_length(text, i) > 0) {
      i += utf8::char_length(text, i);
      continue;
    }
    if (i > run) split_valid(text, {static_cast<uint32_t>(run), static_cast<uint32_t>(i)}, words);
    const size_t n = utf8::maximal_subpart(text, i);
    words.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + n)});
    i += n;
    run = i;
  }
  if (i > run) split_valid(text, {static_cast<uint32_t>(run), static_cast<uint32_t>(i)}, words);
}

void PreTokenizer::split_valid(std::string_view text, Span run, std::vector<Span>& words) const {
  if (compiled_.empty()) {
    words.push_back(run);
    return;
  }
  // Only the whole match (group 0) is used, so one match block of one pair
  // serves every pattern.
  struct MatchData {
    pcre2_match_data* data;
    ~MatchData() { pcre2_match_data_free(data); }
  } md{pcre2_match_data_create(1, nullptr)};
  LOOM_CHECK(md.data, "[tokenizer] {}: out of memory for regular expression matching", source_);
  // The patterns see one piece at a time: lookarounds stop at its ends.
  std::vector<Span> current{run};
  std::vector<Span> next;
  for (size_t k = 0; k < compiled_.size(); ++k) {
    std::vector<Span>& out = k + 1 == compiled_.size() ? words : next;
    for (const Span& piece : current) apply(*compiled_[k], text, piece, md.data, out);
    if (k + 1 < compiled_.size()) {
      current.swap(next);
      next.clear();
    }
  }
}

void PreTokenizer::apply(const Compiled& pattern, std::string_view text, Span piece, pcre2_match_data* md,
                         std::vector<Span>& out) const {
  struct JitStack {
    pcre2_jit_stack* stack = nullptr;
    pcre2_match_context* context = nullptr;
    ~JitStack() {
      pcre2_match_context_free(context);
      pcre2_jit_stack_free(stack);
    }
  } jit;

  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.begin);
  const PCRE2_SIZE length = piece.end - piece.begin;
  PCRE2_SIZE start = 0;
  PCRE2_SIZE last = 0;  // end of the previous word
  while (start < length) {
    int rc = pcre2_match(pattern.code, subject, length, start, PCRE2_NO_UTF_CHECK, md, jit.context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !jit.stack) {
      // The default 32 KiB machine stack is too small for this text (very
      // long runs); retry once with a growable one.
      jit.stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
      jit.context = pcre2_match_context_create(nullptr);
      LOOM_CHECK(jit.stack && jit.context, "[tokenizer] {}: out of memory for regular expression matching", source_);
      pcre2_jit_stack_assign(jit.context, nullptr, jit.stack);
      rc = pcre2_match(pattern.code, subject, length, start, PCRE2_NO_UTF_CHECK, md, jit.context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    LOOM_CHECK(rc >= 0, "[tokenizer] {}: pre-tokenizer regular expression failed on a text of {} bytes: {}", source_,
               length, pcre2_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const PCRE2_SIZE b = ov[0];
    const PCRE2_SIZE e = ov[1];
    if (e == b) {
      // An empty match cuts nothing; step over one character and go on.
      start = b + 1;
      while (start < length && (subject[start] & 0xC0) == 0x80) ++start;
      continue;
    }
    if (b > last) out.push_back({piece.begin + static_cast<uint32_t>(last), piece.begin + static_cast<uint32_t>(b)});
    out.push_back({piece.begin + static_cast<uint32_t>(b), piece.begin + static_cast<uint32_t>(e)});
    last = e;
    start = e;
  }
  if (length > last) out.push_back({piece.begin + static_cast<uint32_t>(last), piece.end});
}

std::string nfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto normalize_run = [&](std::string_view run) {
    if (run.empty()) return;
    // ASCII is already NFC and combines with nothing before it.
    bool ascii = true;
    for (char c : run) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) {
      out.append(run);
      return;
    }
    utf8proc_uint8_t* result = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                                            static_cast<utf8proc_ssize_t>(run.size()), &result,
                                            static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) {
      std::free(result);
      // Characters utf8proc does not know (newer than its Unicode version)
      // stay as they are rather than failing the whole encode.
      out.append(run);
      return;
    }
    out.append(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
    std::free(result);
  };
  size_t run = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t n = utf8::char_length(text, i);
    if (n > 0) {
      i += n;
      continue;
    }
    normalize_run(text.substr(run, i - run));
    const size_t bad = utf8::maximal_subpart(text, i);
    out.append(text.substr(i, bad));
    i += bad;
    run = i;
  }
  normalize_run(text.substr(run, i - run));
  return out;
}

}  // namespace loom::tokenizer
