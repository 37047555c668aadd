/* skyhost plugin ABI, version 1: native functions that skyhost dispatches to its nodes like Lua
 * functions (`sky.plugin(path, name)`, docs/plugins.md).
 *
 * A plugin is a shared library exporting one record per function:
 *
 *     static int gemm(const sky_api* api, sky_call* call, const sky_value* args, size_t nargs);
 *     SKY_PLUGIN_EXPORT_C(gemm, gemm);       // exports `sky_plugin_gemm`
 *
 * and `sky.plugin("libgemm.so", "gemm")` names it. Arguments arrive as read-only views over the
 * task's bytes (strings are not copied); results are appended through `api` in order. The
 * function returns 0, or nonzero after `api->error` (or with no message: a generic one).
 *
 * Values are the codec's plain values: nil, booleans, integers, floats, binary strings, lists
 * (Lua tables with only 1..n keys) and maps (any other table). Functions and metatables do not
 * reach a plugin. Views stay valid until the function returns.
 *
 * Compatibility: a worker runs records whose `abi_version` it knows. New members are only
 * appended to `sky_api` (check `api->size` before using one newer than version 1); the layout
 * of `sky_value` and `sky_plugin` is fixed for a major version.
 *
 * C++ authors use <skyhost/plugin.hpp>: typed arguments and results, exceptions as errors.
 */
#ifndef SKYHOST_PLUGIN_H
#define SKYHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SKY_PLUGIN_ABI_VERSION 1u

typedef enum sky_type {
  SKY_NIL = 0,
  SKY_BOOL = 1,
  SKY_INT = 2,
  SKY_FLOAT = 3,
  SKY_STRING = 4, /* binary-safe bytes; not NUL-terminated, not aligned */
  SKY_LIST = 5,   /* items[0 .. size): Lua's t[1 .. size]; holes are SKY_NIL */
  SKY_MAP = 6     /* kv[0 .. 2*size): key, value, key, value, ... */
} sky_type;

typedef struct sky_value sky_value;

struct sky_value {
  uint32_t type; /* a sky_type */
  uint32_t reserved;
  union {
    int boolean;
    int64_t integer;
    double number;
    struct {
      const char* data;
      size_t size;
    } string;
    struct {
      const sky_value* items;
      size_t size;
    } list;
    struct {
      const sky_value* kv;
      size_t size; /* pairs */
    } map;
  } as;
};

/* One call in progress: where results go. Opaque. */
typedef struct sky_call sky_call;

/* What a plugin can do during a call. Results are appended in order: scalars are one value;
 * begin_list(n) opens a list whose next n values are its items, begin_map(n) a map whose next
 * 2n values are keys and values (a key is neither nil nor NaN). */
typedef struct sky_api {
  uint32_t abi_version; /* SKY_PLUGIN_ABI_VERSION of the worker */
  uint32_t size;        /* sizeof(sky_api) as the worker knows it */
  void (*push_nil)(sky_call* call);
  void (*push_bool)(sky_call* call, int value);
  void (*push_int)(sky_call* call, int64_t value);
  void (*push_float)(sky_call* call, double value);
  /* Copies size bytes into the result. */
  void (*push_string)(sky_call* call, const char* data, size_t size);
  /* Appends a string of `size` bytes and returns where to write them: the result is built in
   * place, with no copy afterwards. NULL when out of memory (the call then fails). The pointer
   * is valid until the next push. */
  char* (*push_string_alloc)(sky_call* call, size_t size);
  void (*begin_list)(sky_call* call, size_t size);
  void (*begin_map)(sky_call* call, size_t pairs);
  /* Fails the task with `message` (copied). Returns 1, so `return api->error(call, "...")`. */
  int (*error)(sky_call* call, const char* message);
} sky_api;

typedef int (*sky_plugin_fn)(const sky_api* api, sky_call* call, const sky_value* args,
                             size_t nargs);

/* The exported record, named sky_plugin_<name>. */
typedef struct sky_plugin {
  uint32_t abi_version; /* SKY_PLUGIN_ABI_VERSION the plugin was built with */
  uint32_t reserved;
  const char* name;
  sky_plugin_fn fn;
} sky_plugin;

#if defined(__GNUC__)
#define SKY_PLUGIN_VISIBLE __attribute__((visibility("default")))
#else
#define SKY_PLUGIN_VISIBLE
#endif

#ifdef __cplusplus
#define SKY_PLUGIN_EXTERN_C extern "C"
#else
#define SKY_PLUGIN_EXTERN_C
#endif

/* Exports C function `fn` under `name`: sky.plugin(path, "name"). */
#define SKY_PLUGIN_EXPORT_C(name, fn)                                           \
  SKY_PLUGIN_EXTERN_C SKY_PLUGIN_VISIBLE const sky_plugin sky_plugin_##name = { \
      SKY_PLUGIN_ABI_VERSION, 0, #name, fn}

#ifdef __cplusplus
}
#endif

#endif /* SKYHOST_PLUGIN_H */
