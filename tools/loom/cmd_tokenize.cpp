// loom tokenize: the token ids a model's tokenizer gives a text, exactly as
// the model sees them (for checking a tokenizer against its reference, or
// counting tokens). MODEL_OR_TOKENIZER is anything tokenizer::load reads.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "commands.h"
#include "loom/core/error.h"
#include "loom/tokenizer/tokenizer.h"
#include "loom/tokenizer/utf8.h"

namespace loom::cli {

namespace {

struct TokenizeArgs {
  std::string model;
  std::string file;
  std::string text;
  bool special = false;
  bool pieces = false;
  bool bos = false;
  bool has_text = false;  // TEXT was given (possibly empty)
};

// A token's text on one line: well-formed UTF-8 as it is; backslash, tab,
// newline and carriage return as \\ \t \n \r; other control bytes and bytes
// that are only part of a character (byte tokens) as \xNN.
std::string escape(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    const size_t n = tokenizer::utf8::char_length(bytes, i);
    if (n > 1) {
      out.append(bytes, i, n);
      i += n;
      continue;
    }
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c >= 0x7F) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  return out;
}

std::string read_input(const TokenizeArgs& a) {
  if (!a.file.empty()) {
    std::ifstream in(a.file, std::ios::binary);
    LOOM_CHECK(in, "[cli] {}: cannot open the input file; check the path given to --file", a.file);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  if (a.has_text) return a.text;
  // Neither: the text comes from standard input (e.g. a pipe).
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

void tokenize(const TokenizeArgs& a) {
  const std::string path = a.model.empty() ? default_model_path() : a.model;
  const auto tok = tokenizer::load(path);
  const std::string text = read_input(a);
  const auto ids = tok->encode(text, {.add_bos = a.bos, .add_eos = a.bos && tok->default_add_eos(),
                                      .parse_special = a.special});
  std::string out;
  if (a.pieces) {
    for (int32_t id : ids) out += fmt::format("{}\t{}\n", id, escape(tok->token_bytes(id, /*special=*/true)));
  } else {
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
    out += '\n';
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand(
      "tokenize",
      "Print the token ids of a text: one line of ids separated by single spaces (no BOS/EOS unless --bos)");
  c->add_option("-m,--model", a->model,
                 "Model or tokenizer: a GGUF file, tokenizer.model (SentencePiece or tiktoken), tokenizer.json, "
                 "a llama2.c tokenizer .bin, or a folder holding one (default: $LOOM_MODEL or the default model)");
  c->add_flag("--special", a->special,
              "Read special-token text in the input (e.g. <|im_start|>) as those tokens; without it, it is plain text");
  c->add_flag("--pieces", a->pieces,
              "Print one 'id<TAB>piece' line per token instead, the piece being the token's raw text (what it "
              "decodes to; special tokens by their text) with \\\\, \\t, \\n, \\r and other control or partial-"
              "character bytes escaped (\\xNN) so each stays on one line");
  c->add_flag("--bos", a->bos, "Add what the model puts around a prompt: BOS (or its prompt prefix) and, if the "
              "model asks for it, EOS");
  auto* file = c->add_option("--file", a->file, "Read the text from FILE (exactly, trailing newline included)");
  auto* text = c->add_option("TEXT", a->text, "The text (without --file or TEXT, standard input is read)");
  file->excludes(text);
  text->excludes(file);
  c->callback([a, text] {
    a->has_text = text->count() > 0;
    tokenize(*a);
  });
}

}  // namespace loom::cli
