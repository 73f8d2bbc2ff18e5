#include "loom/tokenizer/chat_stop.h"

#include <algorithm>

namespace loom::tokenizer {

ChatStop::ChatStop(std::vector<std::string> stop_texts) : stops_(std::move(stop_texts)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

bool ChatStop::is_stop(std::string_view text) const {
  return std::find(stops_.begin(), stops_.end(), text) != stops_.end();
}

std::string ChatStop::push(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);
  // The earliest complete stop text ends the answer.
  size_t cut = std::string::npos;
  for (const auto& s : stops_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    stopped_ = true;
    return out;
  }
  // Hold back the longest tail that is the beginning of a stop text. Such a
  // tail starts where a stop text starts, so the released part never ends
  // inside a UTF-8 character the decoder completed.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n) {
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string ChatStop::finish() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  pending_.clear();
  return out;
}

}  // namespace loom::tokenizer
