#include "loom/sample/json_schema.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string_view>

#include "loom/core/error.h"

namespace loom::sample::json {

namespace {

// ordered_json keeps the properties in the schema's order, which is the order
// the keys are generated in.
using Json = nlohmann::ordered_json;

// Keywords that only describe (JSON Schema "annotations"): they do not
// restrict values, so they are accepted and ignored. "format" is one too
// (JSON Schema 2020-12 makes it an annotation unless a validator opts in);
// loom does not check it. Keywords starting with "x-" are extensions.
constexpr std::array<std::string_view, 13> kAnnotations = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment",
    "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "format"};
constexpr std::array<std::string_view, 14> kSupported = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "minLength", "maxLength", "enum", "const", "anyOf", "allOf", "$ref"};
constexpr std::string_view kSupportedList =
    "type, properties, required, additionalProperties, items, minItems, maxItems, minLength, maxLength, enum, "
    "const, anyOf, $ref, $defs";

template <size_t N>
bool contains(const std::array<std::string_view, N>& list, std::string_view key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

uint8_t type_bit(const Json& name, const std::string& where) {
  static const std::map<std::string, uint8_t, std::less<>> kTypes = {
      {"object", kObject}, {"array", kArray},     {"string", kString}, {"number", kNumber},
      {"integer", kInteger}, {"boolean", kBoolean}, {"null", kNull}};
  LOOM_CHECK(name.is_string(), "[sample] json schema: \"type\" at {} must be a string or an array of strings", where);
  auto it = kTypes.find(name.get<std::string>());
  LOOM_CHECK(it != kTypes.end(), "[sample] json schema: unknown type \"{}\" at {}", name.get<std::string>(), where);
  return it->second;
}

// Whether a value given by enum/const has one of the types in `mask`
// ("integer" includes numbers like 2.0, as in JSON Schema).
bool admits(uint8_t mask, const Json& v) {
  if (v.is_object()) return mask & kObject;
  if (v.is_array()) return mask & kArray;
  if (v.is_string()) return mask & kString;
  if (v.is_boolean()) return mask & kBoolean;
  if (v.is_null()) return mask & kNull;
  if (mask & kNumber) return true;
  if (!(mask & kInteger)) return false;
  if (v.is_number_integer()) return true;
  const double d = v.get<double>();
  return std::isfinite(d) && d == std::floor(d);
}

uint32_t count(const Json& v, const char* key, const std::string& where) {
  LOOM_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= UINT32_MAX,
             "[sample] json schema: {} at {} must be a non-negative integer", key, where);
  return static_cast<uint32_t>(v.get<int64_t>());
}

// "~1" -> "/", "~0" -> "~" (RFC 6901).
std::string unescape_pointer_token(std::string_view t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '~' && i + 1 < t.size() && (t[i + 1] == '0' || t[i + 1] == '1')) {
      out += t[i + 1] == '0' ? '~' : '/';
      ++i;
    } else {
      out += t[i];
    }
  }
  return out;
}

class Compiler {
 public:
  explicit Compiler(const Json& root) : root_(root) {
    SchemaNode any;
    any.types = kAllTypes;
    any.additional = Grammar::kAnyNode;
    any.items = Grammar::kAnyNode;
    g_.nodes.push_back(any);
    g_.literal_sets = {{"false", "true"}, {"null"}};
  }

  Grammar run() {
    g_.root = compile(root_, "#");
    finish();
    return std::move(g_);
  }

 private:
  uint32_t add(SchemaNode n) {
    g_.nodes.push_back(std::move(n));
    return static_cast<uint32_t>(g_.nodes.size() - 1);
  }

  uint32_t compile(const Json& s, const std::string& where) {
    if (s.is_boolean()) {
      LOOM_CHECK(s.get<bool>(), "[sample] json schema: the schema at {} is false, which no value satisfies", where);
      return Grammar::kAnyNode;
    }
    LOOM_CHECK(s.is_object(), "[sample] json schema: the schema at {} must be an object or a boolean, got {}", where,
               s.type_name());
    std::string unsupported;
    std::vector<std::string> used;  // the supported keywords present
    for (const auto& [key, value] : s.items()) {
      if (contains(kAnnotations, key) || key.starts_with("x-")) continue;
      if (contains(kSupported, key)) {
        used.push_back(key);
        continue;
      }
      unsupported += (unsupported.empty() ? "'" : ", '") + key + "'";
    }
    LOOM_CHECK(unsupported.empty(), "[sample] json schema: unsupported keyword {} at {}; supported: {}", unsupported,
               where, kSupportedList);

    if (s.contains("allOf")) {
      // Only the form some generators emit to attach a description to a
      // $ref: one subschema, which is then the schema itself.
      const Json& all = s["allOf"];
      LOOM_CHECK(all.is_array() && all.size() == 1 && used.size() == 1,
                 "[sample] json schema: unsupported keyword 'allOf' at {} (only a lone allOf with one subschema "
                 "is supported); supported: {}", where, kSupportedList);
      return compile(all[0], where + "/allOf/0");
    }
    if (s.contains("$ref")) {
      LOOM_CHECK(used.size() == 1, "[sample] json schema: $ref at {} has sibling keywords; move them into the "
                 "referenced schema", where);
      return reference(s["$ref"], where);
    }
    if (s.contains("anyOf")) {
      LOOM_CHECK(used.size() == 1, "[sample] json schema: anyOf at {} together with other keywords is not supported; "
                 "move them into each alternative", where);
      const Json& alts = s["anyOf"];
      LOOM_CHECK(alts.is_array() && !alts.empty(), "[sample] json schema: anyOf at {} must be a non-empty array",
                 where);
      SchemaNode n;
      n.kind = SchemaNode::Kind::AnyOf;
      for (size_t i = 0; i < alts.size(); ++i) n.alternatives.push_back(compile(alts[i], where + "/anyOf/" +
                                                                                              std::to_string(i)));
      return add(std::move(n));
    }

    uint8_t mask = kAllTypes;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_array()) {
        mask = 0;
        for (const Json& name : t) mask |= type_bit(name, where);
        LOOM_CHECK(mask != 0, "[sample] json schema: \"type\" at {} is an empty array", where);
      } else {
        mask = type_bit(t, where);
      }
    }
    if (s.contains("enum") || s.contains("const")) return literals(s, mask, used, where);
    return types(s, mask, where);
  }

  uint32_t literals(const Json& s, uint8_t mask, const std::vector<std::string>& used, const std::string& where) {
    for (const std::string& k : used) {
      LOOM_CHECK(k == "enum" || k == "const" || k == "type",
                 "[sample] json schema: enum/const at {} together with '{}' is not supported", where, k);
    }
    std::vector<Json> values;
    if (s.contains("enum")) {
      LOOM_CHECK(s["enum"].is_array(), "[sample] json schema: enum at {} must be an array", where);
      for (const Json& v : s["enum"]) values.push_back(v);
    } else {
      values.push_back(s["const"]);
    }
    std::vector<std::string> set;
    for (const Json& v : values) {
      if (s.contains("const") && v != s["const"]) continue;
      if (admits(mask, v)) set.push_back(v.dump());
    }
    LOOM_CHECK(!set.empty(), "[sample] json schema: no value of enum/const at {} has the schema's type", where);
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
    g_.literal_sets.push_back(std::move(set));
    SchemaNode n;
    n.kind = SchemaNode::Kind::Literals;
    n.target = static_cast<uint32_t>(g_.literal_sets.size() - 1);
    return add(std::move(n));
  }

  uint32_t types(const Json& s, uint8_t mask, const std::string& where) {
    SchemaNode n;
    n.types = mask;
    n.items = Grammar::kAnyNode;
    n.additional = Grammar::kAnyNode;
    if (s.contains("additionalProperties")) {
      const Json& a = s["additionalProperties"];
      if (a.is_boolean()) {
        n.additional = a.get<bool>() ? Grammar::kAnyNode : kNoNode;
      } else {
        n.additional = compile(a, where + "/additionalProperties");
      }
    }
    if (s.contains("properties")) {
      const Json& props = s["properties"];
      LOOM_CHECK(props.is_object(), "[sample] json schema: properties at {} must be an object", where);
      for (const auto& [name, sub] : props.items()) {
        Property p;
        const std::string quoted = Json(name).dump();
        p.name = quoted.substr(1, quoted.size() - 2);
        p.node = compile(sub, where + "/properties/" + name);
        n.properties.push_back(std::move(p));
      }
    }
    if (s.contains("required")) {
      const Json& req = s["required"];
      LOOM_CHECK(req.is_array(), "[sample] json schema: required at {} must be an array of names", where);
      for (const Json& r : req) {
        LOOM_CHECK(r.is_string(), "[sample] json schema: required at {} must be an array of names", where);
        const std::string quoted = r.dump();
        const std::string name = quoted.substr(1, quoted.size() - 2);
        auto it = std::find_if(n.properties.begin(), n.properties.end(), [&](const Property& p) {
          return p.name == name;
        });
        if (it == n.properties.end()) {
          // A required key that is not declared is checked by additionalProperties.
          LOOM_CHECK(n.additional != kNoNode, "[sample] json schema: required property {} at {} is not in "
                     "properties and additionalProperties is false, so no object satisfies it", quoted, where);
          n.properties.push_back({name, n.additional, true});
        } else {
          it->required = true;
        }
      }
    }
    LOOM_CHECK(n.properties.size() <= kMaxProperties,
               "[sample] json schema: the object at {} declares {} properties; at most {} are supported", where,
               n.properties.size(), kMaxProperties);
    for (size_t i = 0; i < n.properties.size(); ++i) {
      if (n.properties[i].required) n.required_mask |= uint64_t{1} << i;
    }
    for (uint32_t i = 0; i < n.properties.size(); ++i) n.by_name.push_back(i);
    std::sort(n.by_name.begin(), n.by_name.end(),
              [&](uint32_t a, uint32_t b) { return n.properties[a].name < n.properties[b].name; });

    if (s.contains("items")) {
      const Json& it = s["items"];
      LOOM_CHECK(!it.is_array(), "[sample] json schema: items as an array (tuple validation) at {} is not "
                 "supported; use one schema for all items", where);
      if (it.is_boolean() && !it.get<bool>()) {
        n.max_items = 0;  // items: false admits only the empty array
      } else {
        n.items = compile(it, where + "/items");
      }
    }
    if (s.contains("minItems")) n.min_items = count(s["minItems"], "minItems", where);
    if (s.contains("maxItems")) n.max_items = std::min(n.max_items, count(s["maxItems"], "maxItems", where));
    if (s.contains("minLength")) n.min_length = count(s["minLength"], "minLength", where);
    if (s.contains("maxLength")) n.max_length = count(s["maxLength"], "maxLength", where);
    LOOM_CHECK(n.min_length <= n.max_length || !(mask & kString),
               "[sample] json schema: minLength {} exceeds maxLength {} at {}, so no string satisfies it",
               n.min_length, n.max_length, where);
    LOOM_CHECK(n.min_items <= n.max_items || !(mask & kArray),
               "[sample] json schema: minItems {} exceeds maxItems {} at {}, so no array satisfies it", n.min_items,
               n.max_items, where);
    return add(std::move(n));
  }

  // Local references only ("#", "#/$defs/Name", any JSON pointer into the
  // document). Each target is compiled once, so a recursive schema becomes a
  // cycle of nodes instead of an endless expansion.
  uint32_t reference(const Json& ref, const std::string& where) {
    LOOM_CHECK(ref.is_string(), "[sample] json schema: $ref at {} must be a string", where);
    const std::string p = ref.get<std::string>();
    LOOM_CHECK(!p.empty() && p[0] == '#', "[sample] json schema: $ref \"{}\" at {}: only references into the same "
               "schema (\"#/$defs/Name\") are supported", p, where);
    if (auto it = refs_.find(p); it != refs_.end()) return it->second;
    const Json* target = &root_;
    std::string_view rest = std::string_view(p).substr(1);
    LOOM_CHECK(rest.empty() || rest[0] == '/', "[sample] json schema: $ref \"{}\" at {} is not a JSON pointer", p,
               where);
    while (!rest.empty()) {
      rest.remove_prefix(1);
      const size_t slash = std::min(rest.find('/'), rest.size());
      const std::string token = unescape_pointer_token(rest.substr(0, slash));
      rest.remove_prefix(slash);
      if (target->is_object() && target->contains(token)) {
        target = &(*target)[token];
      } else if (target->is_array() && !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
                 std::stoull(token) < target->size()) {
        target = &(*target)[std::stoull(token)];
      } else {
        fail("[sample] json schema: $ref \"{}\" at {} does not point into the schema", p, where);
      }
    }
    SchemaNode alias;
    alias.kind = SchemaNode::Kind::Ref;
    const uint32_t id = add(std::move(alias));
    refs_[p] = id;
    const uint32_t t = compile(*target, p);
    g_.nodes[id].target = t;
    return id;
  }

  // Follows $ref aliases to the node they stand for.
  uint32_t resolve(uint32_t id) const {
    for (size_t hops = 0; id != kNoNode && g_.nodes[id].kind == SchemaNode::Kind::Ref; ++hops) {
      LOOM_CHECK(hops < g_.nodes.size(), "[sample] json schema: $ref cycle with no schema in between");
      id = g_.nodes[id].target;
    }
    return id;
  }

  void flatten(uint32_t id, std::vector<uint32_t>& out, std::vector<uint32_t>& visiting) const {
    LOOM_CHECK(std::find(visiting.begin(), visiting.end(), id) == visiting.end(),
               "[sample] json schema: anyOf refers back to itself before any value starts");
    visiting.push_back(id);
    for (uint32_t alt : g_.nodes[id].alternatives) {
      alt = resolve(alt);
      if (g_.nodes[alt].kind == SchemaNode::Kind::AnyOf) {
        flatten(alt, out, visiting);
      } else if (std::find(out.begin(), out.end(), alt) == out.end()) {
        out.push_back(alt);
      }
    }
    visiting.pop_back();
  }

  // Replaces aliases by their targets and flattens nested anyOf, so the
  // recognizer sees neither.
  void finish() {
    g_.root = resolve(g_.root);
    for (SchemaNode& n : g_.nodes) {
      for (Property& p : n.properties) p.node = resolve(p.node);
      n.additional = resolve(n.additional);
      n.items = resolve(n.items);
    }
    for (uint32_t id = 0; id < g_.nodes.size(); ++id) {
      if (g_.nodes[id].kind != SchemaNode::Kind::AnyOf) continue;
      std::vector<uint32_t> flat, visiting;
      flatten(id, flat, visiting);
      g_.nodes[id].alternatives = std::move(flat);
    }
  }

  const Json& root_;
  Grammar g_;
  std::map<std::string, uint32_t> refs_;
};

}  // namespace

Grammar compile_schema(const std::string& schema_json) {
  if (schema_json.empty()) {
    // OpenAI's json_object: the text is one JSON object, of any content.
    Grammar g = Compiler(Json::object()).run();
    g.nodes[g.root].types = kObject;
    return g;
  }
  Json schema;
  try {
    schema = Json::parse(schema_json);
  } catch (const nlohmann::json::exception& e) {
    fail("[sample] json schema is not valid JSON: {}", e.what());
  }
  try {
    return Compiler(schema).run();
  } catch (const nlohmann::json::exception& e) {
    fail("[sample] json schema: {}", e.what());
  }
}

}  // namespace loom::sample::json
