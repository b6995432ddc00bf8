// Synod's persistent-memory addon: map / unmap a file, flush cache lines (CLWB, else CLFLUSHOPT, else
// CLFLUSH), drain (SFENCE), msync a page-aligned range, posix_fallocate, and a hardware CRC32C.
// Plain N-API (C), no dependencies. Errors are thrown as Error objects with `code` set to the errno name.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <nmmintrin.h>
#endif

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define CACHE_LINE 64

static int has_clwb = 0, has_clflushopt = 0, has_sse42 = 0;

static void detect_cpu(void) {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) has_sse42 = (c >> 20) & 1;
  if (__get_cpuid_max(0, 0) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    has_clflushopt = (b >> 23) & 1;
    has_clwb = (b >> 24) & 1;
  }
#endif
}

static napi_value throw_errno(napi_env env, int err, const char* what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_value msg, code, error;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  const char* name = err == EIO ? "EIO" : err == ENOSPC ? "ENOSPC" : err == EINVAL ? "EINVAL" : err == ENOMEM ? "ENOMEM"
                     : err == EOPNOTSUPP ? "EOPNOTSUPP" : err == EBADF ? "EBADF" : err == EACCES ? "EACCES" : "EUNKNOWN";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

// Live mappings, so that unmap() can clear the record the GC finalizer will later see (no double munmap).
typedef struct mapping { void* addr; size_t length; struct mapping* next; } mapping_t;
static mapping_t* live = NULL;

static void finalize_mapping(napi_env env, void* data, void* hint) {
  (void)env; (void)data;
  mapping_t* m = (mapping_t*)hint;
  for (mapping_t** p = &live; *p; p = &(*p)->next) if (*p == m) { *p = m->next; break; }
  if (m->addr) munmap(m->addr, m->length);
  free(m);
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return argc >= want;
}

static int get_range(napi_env env, napi_value* argv, uint8_t** base, size_t* offset, size_t* length) {
  void* data; size_t size; double off, len;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &size) != napi_ok) return 0;
  if (napi_get_value_double(env, argv[1], &off) != napi_ok || napi_get_value_double(env, argv[2], &len) != napi_ok) return 0;
  if (off < 0 || len < 0 || off + len > (double)size) return 0;
  *base = (uint8_t*)data; *offset = (size_t)off; *length = (size_t)len;
  return 1;
}

// map(fd, length, trySync) -> { buffer, mapSync }
static napi_value Map(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return throw_type(env, "map(fd, length, trySync)");
  int32_t fd; double length; bool try_sync;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_double(env, argv[1], &length);
  napi_get_value_bool(env, argv[2], &try_sync);
  if (length <= 0) return throw_type(env, "map: length must be > 0");
  void* addr = MAP_FAILED;
  bool map_sync = false;
  if (try_sync) {
    addr = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC | MAP_POPULATE, fd, 0);
    map_sync = addr != MAP_FAILED;
  }
  if (addr == MAP_FAILED) addr = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (addr == MAP_FAILED) return throw_errno(env, errno, "mmap");
  mapping_t* m = malloc(sizeof *m);
  m->addr = addr; m->length = (size_t)length; m->next = live; live = m;
  napi_value buffer, result, flag;
  if (napi_create_external_arraybuffer(env, addr, (size_t)length, finalize_mapping, m, &buffer) != napi_ok) {
    munmap(addr, (size_t)length);
    live = m->next;
    free(m);
    return throw_type(env, "map: external array buffers are not allowed here");
  }
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "buffer", buffer);
  napi_get_boolean(env, map_sync, &flag);
  napi_set_named_property(env, result, "mapSync", flag);
  return result;
}

// unmap(buffer): detaches the buffer; the finalizer (run now or at GC) unmaps. Here: munmap at once.
static napi_value Unmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return throw_type(env, "unmap(buffer)");
  void* data; size_t size;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &size) != napi_ok) return throw_type(env, "unmap: not an ArrayBuffer");
  if (data == NULL) return NULL; // already detached
  mapping_t* m = NULL;
  for (mapping_t* p = live; p; p = p->next) if (p->addr == data) { m = p; break; }
  if (m == NULL) return throw_type(env, "unmap: not a mapping made by map()");
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) return throw_type(env, "unmap: cannot detach the buffer");
  m->addr = NULL; // the finalizer, when it runs, frees only the record
  munmap(data, size);
  return NULL;
}

#if defined(__x86_64__)
__attribute__((target("clwb"))) static void flush_clwb(uint8_t* p, size_t n) {
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1), end = (uintptr_t)p + n;
  for (uintptr_t a = start; a < end; a += CACHE_LINE) _mm_clwb((void*)a);
}
__attribute__((target("clflushopt"))) static void flush_clflushopt(uint8_t* p, size_t n) {
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1), end = (uintptr_t)p + n;
  for (uintptr_t a = start; a < end; a += CACHE_LINE) _mm_clflushopt((void*)a);
}
static void flush_clflush(uint8_t* p, size_t n) {
  uintptr_t start = (uintptr_t)p & ~(uintptr_t)(CACHE_LINE - 1), end = (uintptr_t)p + n;
  for (uintptr_t a = start; a < end; a += CACHE_LINE) _mm_clflush((void*)a);
}
#endif

static napi_value Flush(napi_env env, napi_callback_info info) {
  napi_value argv[3]; uint8_t* base; size_t off, len;
  if (!get_args(env, info, 3, argv) || !get_range(env, argv, &base, &off, &len)) return throw_type(env, "flush(buffer, offset, length): bad range");
#if defined(__x86_64__)
  if (has_clwb) flush_clwb(base + off, len);
  else if (has_clflushopt) flush_clflushopt(base + off, len);
  else flush_clflush(base + off, len);
#else
  if (msync((void*)((uintptr_t)(base + off) & ~(uintptr_t)4095), len + ((uintptr_t)(base + off) & 4095), MS_SYNC) != 0) return throw_errno(env, errno, "msync");
#endif
  return NULL;
}

static napi_value Drain(napi_env env, napi_callback_info info) {
  (void)env; (void)info;
#if defined(__x86_64__)
  _mm_sfence();
#else
  __sync_synchronize();
#endif
  return NULL;
}

static napi_value Msync(napi_env env, napi_callback_info info) {
  napi_value argv[3]; uint8_t* base; size_t off, len;
  if (!get_args(env, info, 3, argv) || !get_range(env, argv, &base, &off, &len)) return throw_type(env, "msync(buffer, offset, length): bad range");
  long page = sysconf(_SC_PAGESIZE);
  uintptr_t start = (uintptr_t)(base + off) & ~(uintptr_t)(page - 1);
  uintptr_t end = (uintptr_t)(base + off + len);
  if (msync((void*)start, end - start, MS_SYNC) != 0) return throw_errno(env, errno, "msync");
  return NULL;
}

static napi_value Fallocate(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return throw_type(env, "fallocate(fd, length)");
  int32_t fd; double length;
  napi_get_value_int32(env, argv[0], &fd);
  napi_get_value_double(env, argv[1], &length);
  int err = posix_fallocate(fd, 0, (off_t)length);
  if (err != 0) return throw_errno(env, err, "posix_fallocate");
  return NULL;
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t* p, size_t n) {
  while (n--) { crc ^= *p++; for (int k = 0; k < 8; k++) crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78 : crc >> 1; }
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) { uint64_t v; memcpy(&v, p, 8); c = _mm_crc32_u64(c, v); p += 8; n -= 8; }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

// crc32c(bytes: Uint8Array, previous, start, end)
static napi_value Crc32c(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return throw_type(env, "crc32c(bytes, previous, start, end)");
  napi_typedarray_type type; size_t length; void* data; napi_value ab; size_t byte_offset;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, &ab, &byte_offset) != napi_ok || type != napi_uint8_array)
    return throw_type(env, "crc32c: bytes must be a Uint8Array");
  uint32_t previous, start, end;
  napi_get_value_uint32(env, argv[1], &previous);
  napi_get_value_uint32(env, argv[2], &start);
  napi_get_value_uint32(env, argv[3], &end);
  if (start > end || end > length) return throw_type(env, "crc32c: bad range");
  uint32_t crc = ~previous;
#if defined(__x86_64__)
  crc = has_sse42 ? crc32c_hw(crc, (const uint8_t*)data + start, end - start) : crc32c_sw(crc, (const uint8_t*)data + start, end - start);
#else
  crc = crc32c_sw(crc, (const uint8_t*)data + start, end - start);
#endif
  napi_value result;
  napi_create_uint32(env, ~crc, &result);
  return result;
}

static napi_value Features(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, v;
  napi_create_object(env, &result);
  napi_get_boolean(env, has_clwb, &v); napi_set_named_property(env, result, "clwb", v);
  napi_get_boolean(env, has_clflushopt, &v); napi_set_named_property(env, result, "clflushopt", v);
  napi_get_boolean(env, has_sse42, &v); napi_set_named_property(env, result, "sse42", v);
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  detect_cpu();
  napi_property_descriptor props[] = {
    {"map", 0, Map, 0, 0, 0, napi_default, 0},
    {"unmap", 0, Unmap, 0, 0, 0, napi_default, 0},
    {"flush", 0, Flush, 0, 0, 0, napi_default, 0},
    {"drain", 0, Drain, 0, 0, 0, napi_default, 0},
    {"msync", 0, Msync, 0, 0, 0, napi_default, 0},
    {"fallocate", 0, Fallocate, 0, 0, 0, napi_default, 0},
    {"crc32c", 0, Crc32c, 0, 0, 0, napi_default, 0},
    {"features", 0, Features, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
