#include "loom/engine/sequence.h"

#include <algorithm>

namespace loom::engine {

TextOutput::TextOutput(const tokenizer::Tokenizer& tok, std::vector<std::string> stops,
                       std::span<const int32_t> prompt)
    : decoder_(tok), stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  // The decoder drops the tokenizer's dummy-prefix space from the first text
  // token of a stream. The completion continues the prompt, so that space
  // was the prompt's: run the prompt's first text token through the decoder
  // and throw its text away. (A prompt ending inside a UTF-8 character is not
  // joined with the completion: the completion's bytes then show as U+FFFD.)
  for (int32_t id : prompt) {
    decoder_.push(id);
    if (tok.type(id) != tokenizer::TokenType::Control) break;
  }
  decoder_.flush();
}

std::string TextOutput::push(int32_t id, bool& stopped) { return release(decoder_.push(id), false, stopped); }

std::string TextOutput::finish() {
  bool stopped = false;
  return release(decoder_.flush(), true, stopped);
}

std::string TextOutput::release(std::string text, bool final, bool& stopped) {
  if (stops_.empty()) return text;
  held_ += text;
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    return out;
  }
  size_t keep = 0;
  if (!final) {
    // The longest tail that is a proper prefix of a stop string may still
    // become one; it starts at a character boundary because stop strings do.
    for (const auto& s : stops_) {
      for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k) {
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

}  // namespace loom::engine
