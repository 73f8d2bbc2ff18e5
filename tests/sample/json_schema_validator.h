// A small JSON Schema validator for tests, written from the JSON Schema
// 2020-12 text for the subset json_constraint supports (type, properties,
// required, additionalProperties, items, minItems, maxItems, minLength,
// maxLength, enum, const, anyOf, allOf, $ref). Independent of loom's recognizer.
//
//   test::SchemaValidator v{schema};
//   EXPECT_TRUE(v.valid(nlohmann::json::parse(text), schema));
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace loom::test {

using Json = nlohmann::json;

inline size_t code_points(const std::string& s) {
  return size_t(std::count_if(s.begin(), s.end(), [](char c) { return (uint8_t(c) & 0xC0) != 0x80; }));
}

struct SchemaValidator {
  const Json& root;

  const Json& resolve(const std::string& ref) const {
    return ref == "#" ? root : root.at(Json::json_pointer(ref.substr(1)));
  }

  bool has_type(const Json& v, const std::string& t) const {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    if (t == "number") return v.is_number();
    if (t == "integer") {
      return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
    }
    return false;
  }

  bool valid(const Json& v, const Json& s) const {
    if (s.is_boolean()) return s.get<bool>();
    if (s.contains("$ref")) return valid(v, resolve(s["$ref"].get<std::string>()));
    if (s.contains("allOf")) {
      for (const Json& sub : s["allOf"]) {
        if (!valid(v, sub)) return false;
      }
    }
    if (s.contains("anyOf")) {
      bool any = false;
      for (const Json& alt : s["anyOf"]) any = any || valid(v, alt);
      if (!any) return false;
    }
    if (s.contains("type")) {
      const Json types = s["type"].is_array() ? s["type"] : Json::array({s["type"]});
      bool any = false;
      for (const Json& t : types) any = any || has_type(v, t.get<std::string>());
      if (!any) return false;
    }
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) return false;
    if (s.contains("const") && v != s["const"]) return false;
    if (v.is_object()) {
      const Json props = s.value("properties", Json::object());
      for (const auto& [k, x] : v.items()) {
        if (props.contains(k)) {
          if (!valid(x, props[k])) return false;
        } else if (s.contains("additionalProperties") && !valid(x, s["additionalProperties"])) {
          return false;
        }
      }
      for (const Json& r : s.value("required", Json::array())) {
        if (!v.contains(r.get<std::string>())) return false;
      }
    }
    if (v.is_array()) {
      if (s.contains("items")) {
        for (const Json& x : v) {
          if (!valid(x, s["items"])) return false;
        }
      }
      if (v.size() < s.value("minItems", size_t{0}) || v.size() > s.value("maxItems", SIZE_MAX)) return false;
    }
    if (v.is_string()) {
      const size_t n = code_points(v.get<std::string>());
      if (n < s.value("minLength", size_t{0}) || n > s.value("maxLength", SIZE_MAX)) return false;
    }
    return true;
  }
};

}  // namespace loom::test
