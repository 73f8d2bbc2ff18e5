// Jinja2's filters and tests, as chat templates use them. tojson is the
// version transformers installs (json.dumps with ensure_ascii=False, no HTML
// escaping), since that is what the templates were written against.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>

#include "loom/tokenizer/jinja/evaluator.h"
#include "loom/tokenizer/jinja/text.h"

namespace loom::tokenizer::jinja {

namespace {

using Filter = std::function<Value(Evaluator&, const Value&, CallArgs&)>;
using Test = std::function<bool(Evaluator&, const Value&, CallArgs&)>;

const Value kNone = Value::none();

int64_t length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return int64_t(text::char_count(v.as_string()));
    case Value::Kind::List: return int64_t(v.as_list().size());
    case Value::Kind::Dict: return int64_t(v.as_dict().items.size());
    default: throw EvalError(fmt::format("object of type '{}' has no len()", v.type_name()));
  }
}

// Jinja's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Value get_path(Evaluator& ev, const Value& item, const std::string& path) {
  Value v = item;
  for (const std::string& part : text::split(path, std::string("."))) {
    int64_t index = 0;
    const auto r = std::from_chars(part.data(), part.data() + part.size(), index);
    const bool numeric = !part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size() && part[0] != '-';
    v = ev.get_item(v, numeric ? Value(index) : Value(part));
  }
  return v;
}

// Sort key of a value: strings lower-cased unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(text::lower(v.as_string()));
  return v;
}

List keyed(Evaluator& ev, const Value& input, const Value& attribute) {
  List items = iterate(input);
  if (attribute.is_string())
    for (Value& v : items) v = get_path(ev, v, attribute.as_string());
  return items;
}

bool run_test(Evaluator& ev, const Value& item, const Value& name, const CallArgs& a, size_t first_arg) {
  if (name.is_none() || name.is_undefined()) return item.truthy();
  if (!name.is_string()) throw EvalError("the test name must be a string");
  CallArgs targs;
  targs.positional.assign(a.positional.begin() + long(std::min(first_arg, a.positional.size())), a.positional.end());
  return apply_test(ev, name.as_string(), item, targs);
}

Value select(Evaluator& ev, const Value& input, CallArgs& a, bool by_attr, bool keep) {
  List out;
  for (const Value& item : iterate(input)) {
    ev.spend(1);
    Value subject = item;
    size_t first = 0;
    if (by_attr) {
      if (a.positional.empty() || !a.positional[0].is_string()) throw EvalError("the first argument must be an attribute name");
      subject = get_path(ev, item, a.positional[0].as_string());
      first = 1;
    }
    const Value& test = first < a.positional.size() ? a.positional[first] : kNone;
    if (run_test(ev, subject, test, a, first + 1) == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value to_int(const Value& v, const Value& fallback, int base) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) return std::isfinite(v.as_float()) ? Value(int64_t(v.as_float())) : fallback;
  if (!v.is_string()) return fallback;
  std::string s = text::strip(v.as_string());
  std::erase(s, '_');
  if (s.empty()) return fallback;
  errno = 0;
  char* end = nullptr;
  const long long n = std::strtoll(s.c_str(), &end, base);
  if (errno == 0 && end == s.c_str() + s.size()) return Value(int64_t(n));
  const double d = std::strtod(s.c_str(), &end);  // Jinja falls back to int(float(s))
  if (end == s.c_str() + s.size() && std::isfinite(d)) return Value(int64_t(d));
  return fallback;
}

std::string indent(const std::string& s, const std::string& pad, bool first, bool blank) {
  // Jinja appends a newline before splitting, so a trailing newline survives.
  const std::vector<std::string> lines = text::splitlines(s + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    if (i > 0 && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
  }
  return first ? pad + out : out;
}

const std::map<std::string, Filter, std::less<>>& filters() {
  static const std::map<std::string, Filter, std::less<>> f = [] {
    std::map<std::string, Filter, std::less<>> m;
    m["abs"] = [](Evaluator&, const Value& v, CallArgs&) {
      v.require_defined();
      if (v.is_float()) return Value(std::fabs(v.as_float()));
      if (v.is_int() || v.is_bool()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
      throw EvalError(fmt::format("bad operand type for abs(): '{}'", v.type_name()));
    };
    m["attr"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      return ev.get_attr(v, a.get(0, "name", kNone).str());
    };
    m["capitalize"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(text::capitalize(v.str())); };
    m["length"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(length(v)); };
    m["count"] = m["length"];
    m["default"] = [](Evaluator&, const Value& v, CallArgs& a) {
      a.check("default", 2, {"default_value", "boolean"});
      const bool boolean = a.get(1, "boolean", Value(false)).truthy();
      if (v.is_undefined() || (boolean && !v.truthy())) return a.get(0, "default_value", Value(""));
      return v;
    };
    m["d"] = m["default"];
    m["dictsort"] = [](Evaluator&, const Value& v, CallArgs& a) {
      if (!v.is_dict()) throw EvalError("dictsort needs a mapping");
      const bool cs = a.get(0, "case_sensitive", Value(false)).truthy();
      const bool by_value = a.get(1, "by", Value("key")).str() == "value";
      const bool rev = a.get(2, "reverse", Value(false)).truthy();
      List pairs;
      for (const auto& [k, val] : v.as_dict().items) pairs.push_back(Value::tuple({k, val}));
      std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
        const size_t i = by_value ? 1 : 0;
        return rev ? less(sort_key(y.as_list()[i], cs), sort_key(x.as_list()[i], cs))
                   : less(sort_key(x.as_list()[i], cs), sort_key(y.as_list()[i], cs));
      });
      return Value::list(std::move(pairs));
    };
    m["escape"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(text::html_escape(v.str())); };
    m["e"] = m["escape"];
    m["first"] = [](Evaluator&, const Value& v, CallArgs&) {
      const List items = iterate(v);
      return items.empty() ? Value::undefined("first() of an empty sequence") : items.front();
    };
    m["last"] = [](Evaluator&, const Value& v, CallArgs&) {
      const List items = iterate(v);
      return items.empty() ? Value::undefined("last() of an empty sequence") : items.back();
    };
    m["float"] = [](Evaluator&, const Value& v, CallArgs& a) {
      const Value fallback = a.get(0, "default", Value(0.0));
      if (v.is_number()) return Value(v.as_float());
      if (!v.is_string()) return fallback;
      const std::string s = text::strip(v.as_string());
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      return !s.empty() && end == s.c_str() + s.size() ? Value(d) : fallback;
    };
    m["indent"] = [](Evaluator&, const Value& v, CallArgs& a) {
      a.check("indent", 3, {"width", "first", "blank"});
      const Value width = a.get(0, "width", Value(4));
      const std::string pad = width.is_string() ? width.as_string() : std::string(size_t(std::max<int64_t>(0, width.as_int())), ' ');
      return Value(indent(v.str(), pad, a.get(1, "first", Value(false)).truthy(), a.get(2, "blank", Value(false)).truthy()));
    };
    m["int"] = [](Evaluator&, const Value& v, CallArgs& a) {
      a.check("int", 2, {"default", "base"});
      return to_int(v, a.get(0, "default", Value(0)), int(a.get(1, "base", Value(10)).as_int()));
    };
    m["items"] = [](Evaluator&, const Value& v, CallArgs&) {
      if (v.is_undefined()) return Value::list({});
      if (!v.is_dict()) throw EvalError(fmt::format("can only get item pairs from a mapping, not '{}'", v.type_name()));
      List out;
      for (const auto& [k, val] : v.as_dict().items) out.push_back(Value::tuple({k, val}));
      return Value::list(std::move(out));
    };
    m["join"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      a.check("join", 2, {"d", "attribute"});
      const std::string sep = a.get(0, "d", Value("")).str();
      std::string out;
      bool first = true;
      for (const Value& item : keyed(ev, v, a.get(1, "attribute", kNone))) {
        if (!first) out += sep;
        first = false;
        out += item.str();
        ev.check_size(out.size());
      }
      return Value(std::move(out));
    };
    m["list"] = [](Evaluator&, const Value& v, CallArgs&) { return Value::list(iterate(v)); };
    m["lower"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(text::lower(v.str())); };
    m["upper"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(text::upper(v.str())); };
    m["map"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      List out;
      const Value* attribute = nullptr;
      for (const auto& [k, val] : a.named)
        if (k == "attribute") attribute = &val;
      for (const Value& item : iterate(v)) {
        ev.spend(1);
        if (attribute) {
          Value got = get_path(ev, item, attribute->str());
          if (got.is_undefined()) got = a.get(size_t(-1), "default", got);
          out.push_back(std::move(got));
          continue;
        }
        if (a.positional.empty() || !a.positional[0].is_string()) throw EvalError("map needs a filter name or attribute=");
        CallArgs fargs;
        fargs.positional.assign(a.positional.begin() + 1, a.positional.end());
        out.push_back(apply_filter(ev, a.positional[0].as_string(), item, fargs));
      }
      return Value::list(std::move(out));
    };
    auto extreme = [](bool want_max) {
      return [want_max](Evaluator& ev, const Value& v, CallArgs& a) {
        const bool cs = a.get(0, "case_sensitive", Value(false)).truthy();
        const List items = iterate(v);
        const List keys = keyed(ev, v, a.get(1, "attribute", kNone));
        if (items.empty()) return Value::undefined("no items to take the extreme of");
        size_t best = 0;
        for (size_t i = 1; i < items.size(); ++i) {
          const bool better = want_max ? less(sort_key(keys[best], cs), sort_key(keys[i], cs))
                                       : less(sort_key(keys[i], cs), sort_key(keys[best], cs));
          if (better) best = i;
        }
        return items[best];
      };
    };
    m["max"] = extreme(true);
    m["min"] = extreme(false);
    m["select"] = [](Evaluator& ev, const Value& v, CallArgs& a) { return select(ev, v, a, false, true); };
    m["reject"] = [](Evaluator& ev, const Value& v, CallArgs& a) { return select(ev, v, a, false, false); };
    m["selectattr"] = [](Evaluator& ev, const Value& v, CallArgs& a) { return select(ev, v, a, true, true); };
    m["rejectattr"] = [](Evaluator& ev, const Value& v, CallArgs& a) { return select(ev, v, a, true, false); };
    m["replace"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      a.check("replace", 3, {"old", "new", "count"});
      const Value count = a.get(2, "count", kNone);
      std::string out = text::replace(v.str(), a.get(0, "old", Value("")).str(), a.get(1, "new", Value("")).str(),
                                      count.is_none() ? -1 : count.as_int());
      ev.check_size(out.size());
      return Value(std::move(out));
    };
    m["reverse"] = [](Evaluator&, const Value& v, CallArgs&) {
      if (v.is_string()) {
        std::vector<std::string> cs = text::chars(v.as_string());
        std::string out;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
        return Value(std::move(out));
      }
      List items = iterate(v);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    };
    m["round"] = [](Evaluator&, const Value& v, CallArgs& a) {
      v.require_defined();
      if (!v.is_number()) throw EvalError(fmt::format("round needs a number, not '{}'", v.type_name()));
      const int64_t precision = a.get(0, "precision", Value(0)).as_int();
      const std::string method = a.get(1, "method", Value("common")).str();
      const double scale = std::pow(10.0, double(precision));
      const double x = v.as_float() * scale;
      // "common" is Python's round(): halves go to the even neighbour.
      const double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
      return Value(r / scale);
    };
    m["safe"] = [](Evaluator&, const Value& v, CallArgs&) { return v; };
    m["sort"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      a.check("sort", 3, {"reverse", "case_sensitive", "attribute"});
      const bool rev = a.get(0, "reverse", Value(false)).truthy();
      const bool cs = a.get(1, "case_sensitive", Value(false)).truthy();
      const List items = iterate(v);
      const List keys = keyed(ev, v, a.get(2, "attribute", kNone));
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        return rev ? less(sort_key(keys[y], cs), sort_key(keys[x], cs)) : less(sort_key(keys[x], cs), sort_key(keys[y], cs));
      });
      List out;
      for (size_t i : order) out.push_back(items[i]);
      return Value::list(std::move(out));
    };
    m["string"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(v.str()); };
    m["sum"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      Value total = a.get(1, "start", Value(0));
      for (const Value& item : keyed(ev, v, a.get(0, "attribute", kNone))) {
        if (!item.is_number() || !total.is_number()) throw EvalError("sum() needs numbers");
        total = total.is_float() || item.is_float() ? Value(total.as_float() + item.as_float())
                                                    : Value(total.as_int() + item.as_int());
      }
      return total;
    };
    m["title"] = [](Evaluator&, const Value& v, CallArgs&) { return Value(text::jinja_title(v.str())); };
    m["tojson"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      a.check("tojson", 1, {"indent", "ensure_ascii", "sort_keys"});
      const Value ind = a.get(0, "indent", kNone);
      if (a.get(size_t(-1), "ensure_ascii", Value(false)).truthy())
        throw EvalError("ensure_ascii=True is not supported (the output keeps non-ASCII text as it is)");
      std::string out = to_json(v, ind.is_none() ? -1 : int(std::clamp<int64_t>(ind.as_int(), 0, 64)),
                                a.get(size_t(-1), "sort_keys", Value(false)).truthy());
      ev.check_size(out.size());
      return Value(std::move(out));
    };
    m["trim"] = [](Evaluator&, const Value& v, CallArgs& a) {
      const Value chars = a.get(0, "chars", kNone);
      return Value(text::strip(v.str(), chars.is_none() ? std::nullopt : std::optional<std::string>(chars.str())));
    };
    m["unique"] = [](Evaluator& ev, const Value& v, CallArgs& a) {
      const bool cs = a.get(0, "case_sensitive", Value(false)).truthy();
      const List items = iterate(v);
      const List keys = keyed(ev, v, a.get(1, "attribute", kNone));
      List out, seen;
      for (size_t i = 0; i < items.size(); ++i) {
        const Value k = sort_key(keys[i], cs);
        if (contains(Value::list(seen), k)) continue;
        seen.push_back(k);
        out.push_back(items[i]);
      }
      return Value::list(std::move(out));
    };
    return m;
  }();
  return f;
}

bool same_as(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return false;
  if (a.is_none() || a.is_undefined()) return true;
  if (a.is_bool() || a.is_int() || a.is_float() || a.is_string()) return equals(a, b);
  return false;  // containers: identity is not observable here
}

const std::map<std::string, Test, std::less<>>& tests() {
  static const std::map<std::string, Test, std::less<>> t = [] {
    std::map<std::string, Test, std::less<>> m;
    auto arg = [](const CallArgs& a, const char* test) -> const Value& {
      if (a.positional.empty()) throw EvalError(fmt::format("the '{}' test needs an argument", test));
      return a.positional[0];
    };
    m["defined"] = [](Evaluator&, const Value& v, CallArgs&) { return !v.is_undefined(); };
    m["undefined"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_undefined(); };
    m["none"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_none(); };
    m["boolean"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_bool(); };
    m["true"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_bool() && v.as_bool(); };
    m["false"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_bool() && !v.as_bool(); };
    m["integer"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_int(); };
    m["float"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_float(); };
    m["number"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_number(); };
    m["string"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_string(); };
    m["mapping"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_dict(); };
    // Jinja2's Undefined supports iter() and len(), so it passes these two.
    m["iterable"] = [](Evaluator&, const Value& v, CallArgs&) {
      return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
    };
    m["sequence"] = m["iterable"];
    m["callable"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_callable(); };
    m["sameas"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return same_as(v, arg(a, "sameas")); };
    m["odd"] = [](Evaluator&, const Value& v, CallArgs&) {
      if (!v.is_int()) throw EvalError("the 'odd' test needs an integer");
      return v.as_int() % 2 != 0;
    };
    m["even"] = [](Evaluator&, const Value& v, CallArgs&) {
      if (!v.is_int()) throw EvalError("the 'even' test needs an integer");
      return v.as_int() % 2 == 0;
    };
    m["divisibleby"] = [arg](Evaluator&, const Value& v, CallArgs& a) {
      const Value& n = arg(a, "divisibleby");
      if (!v.is_int() || !n.is_int() || n.as_int() == 0) throw EvalError("divisibleby needs integers (and not 0)");
      return v.as_int() % n.as_int() == 0;
    };
    m["eq"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return equals(v, arg(a, "eq")); };
    m["ne"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return !equals(v, arg(a, "ne")); };
    m["lt"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return less(v, arg(a, "lt")); };
    m["gt"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return less(arg(a, "gt"), v); };
    m["le"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return !less(arg(a, "le"), v); };
    m["ge"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return !less(v, arg(a, "ge")); };
    for (const auto& [alias, name] : {std::pair{"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"lessthan", "lt"},
                                      {"<", "lt"}, {"greaterthan", "gt"}, {">", "gt"}, {"<=", "le"}, {">=", "ge"}})
      m[alias] = m[name];
    m["in"] = [arg](Evaluator&, const Value& v, CallArgs& a) { return contains(arg(a, "in"), v); };
    m["lower"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_string() && text::is_lower(v.as_string()); };
    m["upper"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_string() && text::is_upper(v.as_string()); };
    m["escaped"] = [](Evaluator&, const Value&, CallArgs&) { return false; };
    m["filter"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_string() && is_known_filter(v.as_string()); };
    m["test"] = [](Evaluator&, const Value& v, CallArgs&) { return v.is_string() && is_known_test(v.as_string()); };
    return m;
  }();
  return t;
}

}  // namespace

bool is_known_filter(std::string_view name) { return filters().find(name) != filters().end(); }
bool is_known_test(std::string_view name) { return tests().find(name) != tests().end(); }

Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args) {
  auto it = filters().find(name);
  if (it == filters().end()) throw EvalError(fmt::format("no filter named '{}'", name));
  return it->second(ev, input, args);
}

bool apply_test(Evaluator& ev, const std::string& name, const Value& value, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw EvalError(fmt::format("no test named '{}'", name));
  return it->second(ev, value, args);
}

}  // namespace loom::tokenizer::jinja
