// ChatStop: ends an answer at a template's end-of-turn text ("<|im_end|>",
// "<|user|>") when the model writes it as plain text rather than as one
// special token. Streamed text goes through it; it holds back only what could
// still become a stop text, so nothing of the marker is ever printed.
//
//   ChatStop stop(tmpl.stop_texts());
//   std::cout << stop.push(decoder.push(id));   // "" while "<|im" might be a marker
//   if (stop.stopped()) break;
//   std::cout << stop.finish();                 // at the end: what was held back
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace loom::tokenizer {

class ChatStop {
 public:
  explicit ChatStop(std::vector<std::string> stop_texts);

  // Adds generated text; returns the part that can be shown now. After a
  // stop text appears, returns the text before it and stopped() is true.
  std::string push(std::string_view text);
  // The held-back tail, when the answer ended some other way.
  std::string finish();
  bool stopped() const { return stopped_; }
  // True if `text` is one of the stop texts (for a special token's text).
  bool is_stop(std::string_view text) const;

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace loom::tokenizer
