// Methods of str and dict values, the global functions chat templates call,
// and Python's iteration and membership rules.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <optional>

#include "loom/tokenizer/jinja/evaluator.h"
#include "loom/tokenizer/jinja/text.h"

namespace loom::tokenizer::jinja {

namespace {

constexpr std::string_view kStringMethods[] = {
    "strip",   "lstrip",  "rstrip",   "startswith", "endswith", "split",   "rsplit",
    "splitlines",                "upper",   "lower",    "replace",    "title",    "capitalize", "join",
    "find",                      "count",   "isdigit",  "isalpha",    "isalnum",  "isspace", "islower",
    "isupper"};
constexpr std::string_view kDictMethods[] = {"items", "keys", "values", "get"};

std::string need_string(const Value& v, std::string_view what) {
  if (!v.is_string()) throw EvalError(fmt::format("{} must be a string, not '{}'", what, v.type_name()));
  return v.as_string();
}

std::optional<std::string> optional_string(const Value& v, std::string_view what) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  return need_string(v, what);
}

int64_t need_int(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool()) throw EvalError(fmt::format("{} must be an integer, not '{}'", what, v.type_name()));
  return v.as_int();
}

Value strings(const std::vector<std::string>& parts) {
  List out;
  for (const auto& p : parts) out.emplace_back(p);
  return Value::list(std::move(out));
}

// The character class test behind isdigit/isalpha/...: ASCII rules, and
// non-ASCII characters count as letters (so "你好".isalpha() is true).
template <typename F>
bool all_chars(const std::string& s, F&& ok) {
  if (s.empty()) return false;
  for (char c : s)
    if (!ok(static_cast<unsigned char>(c))) return false;
  return true;
}

Value string_method(Evaluator& ev, const std::string& s, const std::string& name, CallArgs& a) {
  const Value none = Value::none();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    a.check(name, 1, {"chars"});
    return Value(text::strip(s, optional_string(a.get(0, "chars", none), "chars"), name != "rstrip", name != "lstrip"));
  }
  if (name == "startswith" || name == "endswith") {
    a.check(name, 1, {});
    const Value what = a.get(0, "prefix", none);
    std::vector<std::string> options;
    if (what.is_list()) {
      for (const Value& v : what.as_list()) options.push_back(need_string(v, "each prefix"));
    } else {
      options.push_back(need_string(what, name + "() argument"));
    }
    for (const auto& o : options) {
      if (name == "startswith" ? s.compare(0, o.size(), o) == 0
                               : s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0)
        return Value(true);
    }
    return Value(false);
  }
  if (name == "split" || name == "rsplit") {
    a.check(name, 2, {"sep", "maxsplit"});
    const auto sep = optional_string(a.get(0, "sep", none), "sep");
    if (sep && sep->empty()) throw EvalError("empty separator");
    const int64_t maxsplit = need_int(a.get(1, "maxsplit", Value(-1)), "maxsplit");
    return strings(text::split(s, sep, maxsplit, name == "rsplit"));
  }
  if (name == "splitlines") return strings(text::splitlines(s));
  if (name == "upper") return Value(text::upper(s));
  if (name == "lower") return Value(text::lower(s));
  if (name == "title") return Value(text::py_title(s));
  if (name == "capitalize") return Value(text::capitalize(s));
  if (name == "replace") {
    a.check(name, 3, {"count"});
    const std::string from = need_string(a.get(0, "old", none), "replace() old");
    const std::string to = need_string(a.get(1, "new", none), "replace() new");
    std::string out = text::replace(s, from, to, need_int(a.get(2, "count", Value(-1)), "count"));
    ev.check_size(out.size());
    return Value(std::move(out));
  }
  if (name == "join") {
    a.check(name, 1, {});
    std::string out;
    bool first = true;
    for (const Value& item : iterate(a.get(0, "iterable", none))) {
      if (!first) out += s;
      first = false;
      out += need_string(item, "each joined item");
      ev.check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (name == "find") return Value(text::find(s, need_string(a.get(0, "sub", none), "find() argument")));
  if (name == "count") return Value(text::count(s, need_string(a.get(0, "sub", none), "count() argument")));
  if (name == "isdigit") return Value(all_chars(s, [](unsigned char c) { return c >= '0' && c <= '9'; }));
  if (name == "isalpha") return Value(all_chars(s, [](unsigned char c) { return std::isalpha(c) || c >= 0x80; }));
  if (name == "isalnum") return Value(all_chars(s, [](unsigned char c) { return std::isalnum(c) || c >= 0x80; }));
  if (name == "isspace") return Value(all_chars(s, [](unsigned char c) { return std::isspace(c) != 0; }));
  if (name == "islower") return Value(text::is_lower(s));
  if (name == "isupper") return Value(text::is_upper(s));
  throw EvalError(fmt::format("'str' object has no method '{}'", name));
}

Value dict_method(const Dict& d, const std::string& name, CallArgs& a) {
  if (name == "items") {
    a.check(name, 0, {});
    List out;
    for (const auto& [k, v] : d.items) out.push_back(Value::tuple({k, v}));
    return Value::list(std::move(out));
  }
  if (name == "keys" || name == "values") {
    a.check(name, 0, {});
    List out;
    for (const auto& [k, v] : d.items) out.push_back(name == "keys" ? k : v);
    return Value::list(std::move(out));
  }
  // get(key, default=None)
  a.check(name, 2, {"default"});
  if (a.positional.empty()) throw EvalError("get() needs a key");
  if (const Value* v = d.find(a.positional[0])) return *v;
  return a.get(1, "default", Value::none());
}

std::string strftime_now(const std::string& format) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
  if (n == 0 && !format.empty()) throw EvalError("strftime_now(): the formatted date is empty or too long");
  return std::string(buf, n);
}

}  // namespace

bool has_method(const Value& obj, std::string_view name) {
  if (obj.is_string()) return std::find(std::begin(kStringMethods), std::end(kStringMethods), name) != std::end(kStringMethods);
  if (obj.is_dict()) return std::find(std::begin(kDictMethods), std::end(kDictMethods), name) != std::end(kDictMethods);
  return false;
}

Value call_method(Evaluator& ev, const Value& obj, const std::string& name, CallArgs& args) {
  if (obj.is_string()) return string_method(ev, obj.as_string(), name, args);
  if (obj.is_dict()) return dict_method(obj.as_dict(), name, args);
  throw EvalError(fmt::format("'{}' object has no method '{}'", obj.type_name(), name));
}

List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.as_list();
    case Value::Kind::String: {
      List out;
      for (auto& c : text::chars(v.as_string())) out.emplace_back(std::move(c));
      return out;
    }
    case Value::Kind::Dict: {
      List out;
      for (const auto& kv : v.as_dict().items) out.push_back(kv.first);
      return out;
    }
    default: throw EvalError(fmt::format("'{}' object is not iterable", v.type_name()));
  }
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      throw EvalError(fmt::format("'in <string>' requires string as left operand, not {}", item.type_name()));
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_dict()) return container.as_dict().find(item) != nullptr;
  if (container.is_namespace()) return container.as_namespace().attrs.find(item) != nullptr;
  if (container.is_undefined()) return false;
  if (!container.is_list()) throw EvalError(fmt::format("argument of type '{}' is not iterable", container.type_name()));
  for (const Value& v : container.as_list())
    if (equals(v, item)) return true;
  return false;
}

void add_globals(Evaluator& ev, std::unordered_map<std::string, Value>& g) {
  g["range"] = Value::callable("range", [&ev](CallArgs& a) {
    a.check("range", 3, {});
    if (a.positional.empty()) throw EvalError("range expected at least 1 argument");
    int64_t start = 0, stop = 0, step = 1;
    if (a.positional.size() == 1) {
      stop = need_int(a.positional[0], "range() argument");
    } else {
      start = need_int(a.positional[0], "range() start");
      stop = need_int(a.positional[1], "range() stop");
      if (a.positional.size() == 3) step = need_int(a.positional[2], "range() step");
    }
    if (step == 0) throw EvalError("range() arg 3 must not be zero");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      ev.spend(1);
      out.emplace_back(i);
    }
    return Value::list(std::move(out));
  });
  g["namespace"] = Value::callable("namespace", [&ev](CallArgs& a) {
    auto ns = std::make_shared<Namespace>();
    ev.track(ns);
    for (const Value& p : a.positional) {
      if (!p.is_dict()) throw EvalError("namespace() takes keyword arguments or a dict");
      for (const auto& [k, v] : p.as_dict().items) ns->attrs.set(k, v);
    }
    for (const auto& [k, v] : a.named) ns->attrs.set(Value(k), v);
    return Value::ns(ns);
  });
  g["dict"] = Value::callable("dict", [](CallArgs& a) {
    Dict d;
    for (const Value& p : a.positional) {
      if (!p.is_dict()) throw EvalError("dict() takes keyword arguments or a dict");
      for (const auto& [k, v] : p.as_dict().items) d.set(k, v);
    }
    for (const auto& [k, v] : a.named) d.set(Value(k), v);
    return Value::dict(std::move(d));
  });
  g["raise_exception"] = Value::callable("raise_exception", [](CallArgs& a) -> Value {
    const std::string msg = a.positional.empty() ? std::string("(no message)") : a.positional[0].str();
    throw EvalError("the template raised an error: " + msg);
  });
  g["strftime_now"] = Value::callable("strftime_now", [](CallArgs& a) {
    a.check("strftime_now", 1, {});
    return Value(strftime_now(need_string(a.get(0, "format", Value::none()), "strftime_now() format")));
  });
}

}  // namespace loom::tokenizer::jinja
