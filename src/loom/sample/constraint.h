// Constraint: limits generated text to a language (a grammar such as "one
// JSON object", or a JSON Schema). Compiled once and shared; each sequence
// walks its own State. At every step the state removes the tokens that could
// not continue a valid text, and advances by the token that was chosen.
//
//   auto c = sample::json_constraint(vocab, "");           // any JSON object
//   auto st = c->start();
//   st->mask(logits);           // forbidden tokens -> -inf
//   int32_t id = sampler.sample(logits, history);
//   st->accept(id);
//   if (st->complete()) ...     // a full value was produced
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace loom::sample {

// What a constraint needs to know of the vocabulary: the bytes each token
// adds to the text (empty for control tokens) and which ids end generation.
struct TokenTable {
  std::vector<std::string> bytes;  // indexed by token id
  std::vector<int32_t> end_of_generation;
};

class ConstraintState {
 public:
  virtual ~ConstraintState() = default;
  // Sets logits[id] = -infinity for every token that cannot come next.
  // End-of-generation tokens are allowed only once the text is complete.
  virtual void mask(std::span<float> logits) = 0;
  // Advances by `token`, which mask() allowed. Throws loom::Error otherwise.
  virtual void accept(int32_t token) = 0;
  // True when the text so far is a complete value and nothing but end of
  // generation can follow (the caller stops here). A value that could still
  // grow (a top-level number) is not complete yet, but mask() already allows
  // end-of-generation tokens, so the model decides where it ends.
  virtual bool complete() const = 0;
};

class Constraint {
 public:
  virtual ~Constraint() = default;
  virtual std::unique_ptr<ConstraintState> start() const = 0;
};

// JSON output: with `schema_json` empty, any JSON object (OpenAI's
// response_format json_object); otherwise text valid under that JSON Schema
// (the subset OpenAI's json_schema structured outputs use: object,
// properties, required, additionalProperties: false, array + items, string,
// number, integer, boolean, null, enum, const, anyOf, $defs/$ref). Throws a
// loom::Error naming the unsupported keyword for schemas outside the subset.
std::shared_ptr<const Constraint> json_constraint(std::shared_ptr<const TokenTable> vocab,
                                                  const std::string& schema_json);

}  // namespace loom::sample
