// JSON Schema -> the grammar the JSON recognizer walks (json_recognizer.h).
// A schema becomes a graph of nodes: a set of admitted value types with the
// keywords of each type, a set of literal values (enum/const), or a choice
// between nodes (anyOf). $ref targets are compiled once, so recursive schemas
// become cycles in the graph.
//
//   json::Grammar g = json::compile_schema(R"({"type":"object","properties":{"a":{"type":"integer"}}})");
//   json::Grammar any = json::compile_schema("");  // any JSON object
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace loom::sample::json {

inline constexpr uint32_t kNoNode = std::numeric_limits<uint32_t>::max();
inline constexpr size_t kMaxProperties = 64;  // declared properties of one object schema

// The value types a node admits.
enum TypeBits : uint8_t {
  kObject = 1,
  kArray = 2,
  kString = 4,
  kNumber = 8,
  kInteger = 16,
  kBoolean = 32,
  kNull = 64,
  kAllTypes = 127,
};

struct Property {
  std::string name;  // the key as written between its quotes: JSON-escaped, UTF-8
  uint32_t node = kNoNode;
  bool required = false;
};

struct SchemaNode {
  enum class Kind : uint8_t { Types, Literals, AnyOf, Ref };
  Kind kind = Kind::Types;
  uint8_t types = 0;  // Types: TypeBits

  // Objects. Keys may come in any order, each at most once (a bit per
  // declared property, hence at most kMaxProperties of them); undeclared keys
  // are allowed if `additional` is a node.
  std::vector<Property> properties;
  std::vector<uint32_t> by_name;  // property indices, sorted by name bytes (for matching keys)
  uint64_t required_mask = 0;     // bit i: properties[i] is required
  uint32_t additional = kNoNode;  // schema of undeclared keys' values; kNoNode: not allowed

  // Strings: length in characters (Unicode code points), as JSON Schema counts.
  uint32_t min_length = 0;
  uint32_t max_length = std::numeric_limits<uint32_t>::max();

  // Arrays.
  uint32_t items = kNoNode;
  uint32_t min_items = 0;
  uint32_t max_items = std::numeric_limits<uint32_t>::max();

  // Literals: index into Grammar::literal_sets. Ref: the target node.
  uint32_t target = kNoNode;
  // AnyOf: the alternatives, flattened (none of them is itself an AnyOf or a Ref).
  std::vector<uint32_t> alternatives;
};

struct Grammar {
  std::vector<SchemaNode> nodes;
  // Sets of values written out exactly (compact JSON), each sorted bytewise.
  // The first two serve every schema: booleans and null.
  std::vector<std::vector<std::string>> literal_sets;
  uint32_t root = kNoNode;

  static constexpr uint32_t kAnyNode = 0;      // any JSON value
  static constexpr uint32_t kBooleanSet = 0;   // {"false", "true"}
  static constexpr uint32_t kNullSet = 1;      // {"null"}
};

// Empty `schema_json`: any JSON object. Otherwise the schema, which must stay
// inside the subset described in constraint.h, plus minLength/maxLength,
// minItems/maxItems and a lone one-element allOf (as generators wrap a $ref).
// Annotations (title, description, default, examples, format, ...) and "x-"
// extensions are ignored; any other keyword (pattern, oneOf, allOf of
// several, not, minimum, ...) throws loom::Error naming it and where it is (a
// JSON pointer such as #/properties/a), so no restriction is silently dropped.
Grammar compile_schema(const std::string& schema_json);

}  // namespace loom::sample::json
