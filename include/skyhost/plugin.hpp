// skyhost plugins in C++: a typed layer over the C ABI in <skyhost/plugin.h>. Header only.
//
//   #include <skyhost/plugin.hpp>
//
//   std::string greet(std::string_view who, int64_t times) { ... }
//   SKY_PLUGIN(greet);                     // sky.plugin("libgreet.so", "greet")
//
// Parameters are converted from the task's arguments (a wrong count or type fails the task with
// a message naming the argument); the return value becomes the task's result (std::tuple for
// several, void for none). A thrown exception fails the task with its what(). A first
// parameter `sky::Call&` gives direct access to the results, e.g. call.push_bytes(n) to write a
// large result in place. Supported types: bool, integers, floating point, std::string,
// std::string_view (a view of the argument's bytes: no copy), std::vector<T>, std::map /
// std::unordered_map, std::optional<T> (nil), sky::Value (any argument, as a view).
#pragma once

#include <skyhost/plugin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sky {

/// Thrown by conversions; any std::exception fails the task with its what().
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline const char* type_name(uint32_t t) {
  static const char* const names[] = {"nil",      "a boolean", "an integer", "a float",
                                      "a string", "a list",    "a map"};
  return t <= SKY_MAP ? names[t] : "an unknown value";
}

/// A read-only view of one value; valid while the call runs.
class Value {
 public:
  explicit Value(const sky_value* v) : v_(v) {}
  sky_type type() const { return static_cast<sky_type>(v_->type); }
  bool is_nil() const { return v_->type == SKY_NIL; }
  /// Items of a list, pairs of a map, bytes of a string; 0 otherwise.
  size_t size() const {
    switch (v_->type) {
      case SKY_STRING:
        return v_->as.string.size;
      case SKY_LIST:
        return v_->as.list.size;
      case SKY_MAP:
        return v_->as.map.size;
      default:
        return 0;
    }
  }
  /// Item i (from 0) of a list.
  Value operator[](size_t i) const {
    if (v_->type != SKY_LIST || i >= v_->as.list.size) throw Error("list index out of range");
    return Value(&v_->as.list.items[i]);
  }
  /// Key and value of pair i of a map.
  std::pair<Value, Value> pair(size_t i) const {
    if (v_->type != SKY_MAP || i >= v_->as.map.size) throw Error("map index out of range");
    return {Value(&v_->as.map.kv[2 * i]), Value(&v_->as.map.kv[2 * i + 1])};
  }
  template <typename T>
  T as() const;
  const sky_value* raw() const { return v_; }

 private:
  const sky_value* v_;
};

/// The results of the call in progress.
class Call {
 public:
  Call(const sky_api* api, sky_call* call) : api_(api), call_(call) {}
  template <typename T>
  void push(const T& v);
  /// Appends a string of n bytes and returns where to write them (no copy afterwards). Valid
  /// until the next push.
  char* push_bytes(size_t n) {
    char* p = api_->push_string_alloc(call_, n);
    if (p == nullptr && n > 0) throw std::bad_alloc();
    return p;
  }
  void begin_list(size_t n) { api_->begin_list(call_, n); }
  void begin_map(size_t pairs) { api_->begin_map(call_, pairs); }
  const sky_api* api() const { return api_; }
  sky_call* raw() const { return call_; }

 private:
  const sky_api* api_;
  sky_call* call_;
};

template <typename T>
struct Convert;  // from(const sky_value&) -> T; push(Call&, const T&)

namespace detail {

template <typename T>
inline constexpr bool is_int = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};

[[noreturn]] inline void expected(const char* what, const sky_value& v) {
  throw Error(std::string("expected ") + what + ", got " + type_name(v.type));
}

template <typename Map>
Map to_map(const sky_value& v) {
  using K = typename Map::key_type;
  using V = typename Map::mapped_type;
  Map out;
  if (v.type == SKY_MAP) {
    for (size_t i = 0; i < v.as.map.size; ++i)
      out.emplace(Convert<K>::from(v.as.map.kv[2 * i]), Convert<V>::from(v.as.map.kv[2 * i + 1]));
    return out;
  }
  if constexpr (is_int<K>) {  // a table with keys 1..n
    if (v.type == SKY_LIST) {
      for (size_t i = 0; i < v.as.list.size; ++i)
        if (v.as.list.items[i].type != SKY_NIL)
          out.emplace(static_cast<K>(i + 1), Convert<V>::from(v.as.list.items[i]));
      return out;
    }
  }
  if (!(v.type == SKY_LIST && v.as.list.size == 0)) expected("a map", v);  // {} is a map too
  return out;
}

template <typename Map>
void push_map(Call& c, const Map& m) {
  c.begin_map(m.size());
  for (const auto& [k, v] : m) {
    c.push(k);
    c.push(v);
  }
}

}  // namespace detail

template <typename T>
requires detail::is_int<T>
struct Convert<T> {
  static T from(const sky_value& v) {
    int64_t i;
    if (v.type == SKY_INT) {
      i = v.as.integer;
    } else if (v.type == SKY_FLOAT && std::trunc(v.as.number) == v.as.number &&
               v.as.number >= -9223372036854775808.0 && v.as.number < 9223372036854775808.0) {
      i = static_cast<int64_t>(v.as.number);
    } else {
      detail::expected("an integer", v);
    }
    bool fits =
        std::is_signed_v<T>
            ? i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                  (sizeof(T) >= 8 || i <= static_cast<int64_t>(std::numeric_limits<T>::max()))
            : i >= 0 &&
                  (sizeof(T) >= 8 || static_cast<uint64_t>(i) <= std::numeric_limits<T>::max());
    if (!fits) throw Error("integer " + std::to_string(i) + " out of range");
    return static_cast<T>(i);
  }
  static void push(Call& c, T v) { c.api()->push_int(c.raw(), static_cast<int64_t>(v)); }
};

template <typename T>
requires std::is_floating_point_v<T>
struct Convert<T> {
  static T from(const sky_value& v) {
    if (v.type == SKY_FLOAT) return static_cast<T>(v.as.number);
    if (v.type == SKY_INT) return static_cast<T>(v.as.integer);
    detail::expected("a number", v);
  }
  static void push(Call& c, T v) { c.api()->push_float(c.raw(), static_cast<double>(v)); }
};

template <>
struct Convert<bool> {
  static bool from(const sky_value& v) {
    if (v.type != SKY_BOOL) detail::expected("a boolean", v);
    return v.as.boolean != 0;
  }
  static void push(Call& c, bool v) { c.api()->push_bool(c.raw(), v ? 1 : 0); }
};

template <>
struct Convert<std::string_view> {
  static std::string_view from(const sky_value& v) {
    if (v.type != SKY_STRING) detail::expected("a string", v);
    return {v.as.string.data, v.as.string.size};
  }
  static void push(Call& c, std::string_view s) {
    c.api()->push_string(c.raw(), s.data(), s.size());
  }
};

template <>
struct Convert<std::string> {
  static std::string from(const sky_value& v) {
    return std::string(Convert<std::string_view>::from(v));
  }
  static void push(Call& c, const std::string& s) { Convert<std::string_view>::push(c, s); }
};

template <>
struct Convert<const char*> {
  static void push(Call& c, const char* s) {
    if (s == nullptr) return c.api()->push_nil(c.raw());
    Convert<std::string_view>::push(c, s);
  }
};

template <>
struct Convert<std::nullptr_t> {
  static void push(Call& c, std::nullptr_t) { c.api()->push_nil(c.raw()); }
};

template <typename T>
struct Convert<std::optional<T>> {
  static std::optional<T> from(const sky_value& v) {
    if (v.type == SKY_NIL) return std::nullopt;
    return Convert<T>::from(v);
  }
  static void push(Call& c, const std::optional<T>& v) {
    if (!v) return c.api()->push_nil(c.raw());
    c.push(*v);
  }
};

template <typename T>
struct Convert<std::vector<T>> {
  static std::vector<T> from(const sky_value& v) {
    std::vector<T> out;
    if (v.type == SKY_MAP && v.as.map.size == 0) return out;
    if (v.type != SKY_LIST) detail::expected("a list", v);
    out.reserve(v.as.list.size);
    for (size_t i = 0; i < v.as.list.size; ++i) out.push_back(Convert<T>::from(v.as.list.items[i]));
    return out;
  }
  static void push(Call& c, const std::vector<T>& v) {
    c.begin_list(v.size());
    for (const auto& x : v) c.push(x);
  }
};

template <typename K, typename V, typename... Rest>
struct Convert<std::map<K, V, Rest...>> {
  using M = std::map<K, V, Rest...>;
  static M from(const sky_value& v) { return detail::to_map<M>(v); }
  static void push(Call& c, const M& m) { detail::push_map(c, m); }
};

template <typename K, typename V, typename... Rest>
struct Convert<std::unordered_map<K, V, Rest...>> {
  using M = std::unordered_map<K, V, Rest...>;
  static M from(const sky_value& v) { return detail::to_map<M>(v); }
  static void push(Call& c, const M& m) { detail::push_map(c, m); }
};

/// Any value as a view; pushing one copies it (deeply) into the results.
template <>
struct Convert<Value> {
  static Value from(const sky_value& v) { return Value(&v); }
  static void push(Call& c, const Value& v) {
    const sky_value& r = *v.raw();
    const sky_api* api = c.api();
    switch (r.type) {
      case SKY_BOOL:
        return api->push_bool(c.raw(), r.as.boolean);
      case SKY_INT:
        return api->push_int(c.raw(), r.as.integer);
      case SKY_FLOAT:
        return api->push_float(c.raw(), r.as.number);
      case SKY_STRING:
        return api->push_string(c.raw(), r.as.string.data, r.as.string.size);
      case SKY_LIST:
        c.begin_list(r.as.list.size);
        for (size_t i = 0; i < r.as.list.size; ++i) push(c, Value(&r.as.list.items[i]));
        return;
      case SKY_MAP:
        c.begin_map(r.as.map.size);
        for (size_t i = 0; i < 2 * r.as.map.size; ++i) push(c, Value(&r.as.map.kv[i]));
        return;
      default:
        return api->push_nil(c.raw());
    }
  }
};

template <typename T>
T Value::as() const {
  return Convert<T>::from(*v_);
}

template <typename T>
void Call::push(const T& v) {
  if constexpr (std::is_array_v<T>) {
    Convert<const char*>::push(*this, v);
  } else {
    Convert<std::remove_cvref_t<T>>::push(*this, v);
  }
}

namespace detail {

template <typename F>
struct Signature;
template <typename R, typename... A>
struct Signature<R (*)(A...)> {
  using Result = R;
  using Args = std::tuple<A...>;
};
template <typename R, typename... A>
struct Signature<R (*)(A...) noexcept> : Signature<R (*)(A...)> {};

template <typename T>
struct is_tuple : std::false_type {};
template <typename... T>
struct is_tuple<std::tuple<T...>> : std::true_type {};

/// The parameters that take arguments: all but a leading sky::Call&.
template <typename Tuple>
struct Params {
  using type = Tuple;
  static constexpr bool with_call = false;
};
template <typename... A>
struct Params<std::tuple<Call&, A...>> {
  using type = std::tuple<A...>;
  static constexpr bool with_call = true;
};

template <typename T>
std::remove_cvref_t<T> arg(const sky_value* args, size_t nargs, size_t i) {
  using U = std::remove_cvref_t<T>;
  static const sky_value nil{};  // missing trailing arguments of optional type
  const sky_value& v = i < nargs ? args[i] : nil;
  try {
    return Convert<U>::from(v);
  } catch (const std::exception& e) {
    throw Error("argument " + std::to_string(i + 1) + ": " + e.what());
  }
}

/// How many arguments a call needs: parameters after the last non-optional one may be left out.
template <typename Tuple, size_t... I>
constexpr size_t required(std::index_sequence<I...>) {
  size_t n = 0;
  ((n = is_optional<std::remove_cvref_t<std::tuple_element_t<I, Tuple>>>::value ? n : I + 1), ...);
  return n;
}

template <auto F, typename P, bool WithCall, size_t... I>
decltype(auto) invoke(Call& c, const sky_value* args, size_t nargs, std::index_sequence<I...>) {
  if constexpr (WithCall) {
    return F(c, arg<std::tuple_element_t<I, P>>(args, nargs, I)...);
  } else {
    return F(arg<std::tuple_element_t<I, P>>(args, nargs, I)...);
  }
}

template <auto F>
int trampoline(const sky_api* api, sky_call* call, const sky_value* args, size_t nargs) noexcept {
  using Sig = Signature<decltype(F)>;
  using R = typename Sig::Result;
  using P = Params<typename Sig::Args>;
  using Types = typename P::type;
  constexpr size_t n = std::tuple_size_v<Types>;
  constexpr auto seq = std::make_index_sequence<n>{};
  constexpr size_t min = required<Types>(seq);
  try {
    if (nargs < min || nargs > n) {
      std::string want =
          min == n ? std::to_string(n) : std::to_string(min) + " to " + std::to_string(n);
      throw Error("expected " + want + " argument" + (n == 1 ? "" : "s") + ", got " +
                  std::to_string(nargs));
    }
    Call c(api, call);
    if constexpr (std::is_void_v<R>) {
      invoke<F, Types, P::with_call>(c, args, nargs, seq);
    } else if constexpr (is_tuple<R>::value) {
      R r = invoke<F, Types, P::with_call>(c, args, nargs, seq);
      std::apply([&](const auto&... x) { (c.push(x), ...); }, r);
    } else {
      c.push(invoke<F, Types, P::with_call>(c, args, nargs, seq));
    }
    return 0;
  } catch (const std::exception& e) {
    return api->error(call, e.what());
  } catch (...) {
    return api->error(call, "unknown C++ exception");
  }
}

}  // namespace detail

}  // namespace sky

/// Exports C++ function `fn` as a plugin: sky.plugin(path, "fn").
#define SKY_PLUGIN(fn) SKY_PLUGIN_EXPORT_C(fn, (::sky::detail::trampoline<&fn>))
