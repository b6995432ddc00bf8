// Synod's persistent-memory addon: map / unmap a file, flush cache lines (CLWB, else CLFLUSHOPT, else
// CLFLUSH), drain (SFENCE), msync a page-aligned range, posix_fallocate, a hardware CRC32C, and
// an ordered writer: pwritev (split at IOV_MAX) + fdatasync as ONE job on libuv's pool, jobs of a writer
// strictly in order, so a group commit needs no round trip through the (busy) JS thread between its write
// and its sync, nor between one group's sync and the next group's write.
// Plain N-API (C), no dependencies. Errors are thrown as Error objects with `code` set to the errno name.
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
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

static const char* errno_name(int err) {
  switch (err) {
    case EIO: return "EIO";
    case ENOSPC: return "ENOSPC";
#ifdef EDQUOT
    case EDQUOT: return "EDQUOT";
#endif
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EFBIG: return "EFBIG";
    case EROFS: return "EROFS";
    default: return "EUNKNOWN";
  }
}

static napi_value errno_error(napi_env env, int err, const char* what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_value msg, code, syscall, error;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &syscall);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "syscall", syscall);
  return error;
}

static napi_value throw_errno(napi_env env, int err, const char* what) {
  napi_throw(env, errno_error(env, err, what));
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
// Three independent CRC streams over three adjacent blocks hide the crc32 instruction's 3-cycle latency
// (one stream: ~5 GB/s here; three: ~3x); the streams are joined by "appending zeros" operators
// (GF(2) matrices, tabulated at load). The construction is Mark Adler's (crc32c.c, zlib licence terms).
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t crc_long[4][256], crc_short[4][256];

static uint32_t gf2_times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  while (vec) { if (vec & 1) sum ^= *mat; vec >>= 1; mat++; }
  return sum;
}
static void gf2_square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}
// The operator that appends `len` zero bytes (a power of two) to a raw CRC register.
static void zeros_op(uint32_t* even, size_t len) {
  uint32_t odd[32];
  odd[0] = 0x82f63b78;
  uint32_t row = 1;
  for (int n = 1; n < 32; n++) { odd[n] = row; row <<= 1; }
  gf2_square(even, odd); // 2 zero bits
  gf2_square(odd, even); // 4 zero bits
  do {
    gf2_square(even, odd);
    len >>= 1;
    if (len == 0) return;
    gf2_square(odd, even);
    len >>= 1;
  } while (len);
  for (int n = 0; n < 32; n++) even[n] = odd[n];
}
static void zeros_table(uint32_t zeros[][256], size_t len) {
  uint32_t op[32];
  zeros_op(op, len);
  for (uint32_t n = 0; n < 256; n++) {
    zeros[0][n] = gf2_times(op, n);
    zeros[1][n] = gf2_times(op, n << 8);
    zeros[2][n] = gf2_times(op, n << 16);
    zeros[3][n] = gf2_times(op, n << 24);
  }
}
static inline uint32_t crc_shift(uint32_t zeros[][256], uint32_t crc) {
  return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

// Raw register in, raw register out (the caller inverts).
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c0 = crc, c1, c2, v0, v1, v2;
  while (n && ((uintptr_t)p & 7)) { c0 = _mm_crc32_u8((uint32_t)c0, *p++); n--; }
  while (n >= 3 * CRC_LONG) {
    c1 = 0; c2 = 0;
    const uint8_t* end = p + CRC_LONG;
    do {
      memcpy(&v0, p, 8); memcpy(&v1, p + CRC_LONG, 8); memcpy(&v2, p + 2 * CRC_LONG, 8);
      c0 = _mm_crc32_u64(c0, v0); c1 = _mm_crc32_u64(c1, v1); c2 = _mm_crc32_u64(c2, v2);
      p += 8;
    } while (p < end);
    c0 = crc_shift(crc_long, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = crc_shift(crc_long, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * CRC_LONG;
    n -= 3 * CRC_LONG;
  }
  while (n >= 3 * CRC_SHORT) {
    c1 = 0; c2 = 0;
    const uint8_t* end = p + CRC_SHORT;
    do {
      memcpy(&v0, p, 8); memcpy(&v1, p + CRC_SHORT, 8); memcpy(&v2, p + 2 * CRC_SHORT, 8);
      c0 = _mm_crc32_u64(c0, v0); c1 = _mm_crc32_u64(c1, v1); c2 = _mm_crc32_u64(c2, v2);
      p += 8;
    } while (p < end);
    c0 = crc_shift(crc_short, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = crc_shift(crc_short, (uint32_t)c0) ^ (uint32_t)c2;
    p += 2 * CRC_SHORT;
    n -= 3 * CRC_SHORT;
  }
  while (n >= 8) { memcpy(&v0, p, 8); c0 = _mm_crc32_u64(c0, v0); p += 8; n -= 8; }
  uint32_t c32 = (uint32_t)c0;
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

#if defined(__x86_64__)
// The CRCs (final, inverted) of three records at bytes+pos[k], each over [pos+4, pos+size): interleaved over
// their common length, then each finished alone.
__attribute__((target("sse4.2"))) static void crc3_hw(const uint8_t* bytes, const uint32_t* pos, const uint64_t* size, uint32_t* out) {
  const uint8_t *a = bytes + pos[0] + 4, *b = bytes + pos[1] + 4, *c = bytes + pos[2] + 4;
  size_t na = (size_t)size[0] - 4, nb = (size_t)size[1] - 4, nc = (size_t)size[2] - 4;
  size_t common = na < nb ? na : nb;
  if (nc < common) common = nc;
  common &= ~(size_t)7;
  uint64_t x = 0xffffffffu, y = 0xffffffffu, z = 0xffffffffu, va, vb, vc;
  for (size_t i = 0; i < common; i += 8) {
    memcpy(&va, a + i, 8); memcpy(&vb, b + i, 8); memcpy(&vc, c + i, 8);
    x = _mm_crc32_u64(x, va); y = _mm_crc32_u64(y, vb); z = _mm_crc32_u64(z, vc);
  }
  out[0] = ~crc32c_hw((uint32_t)x, a + common, na - common);
  out[1] = ~crc32c_hw((uint32_t)y, b + common, nb - common);
  out[2] = ~crc32c_hw((uint32_t)z, c + common, nc - common);
}
#endif

static uint32_t crc_raw(uint32_t crc, const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  return has_sse42 ? crc32c_hw(crc, p, n) : crc32c_sw(crc, p, n);
#else
  return crc32c_sw(crc, p, n);
#endif
}

// sealRecords(bytes: Uint8Array, start, end, chain) -> chain. [start, end) holds whole log records whose
// CRC words (the first u32 of each) are not yet set: for each in order, writes
// crc32c(header[4,32) ++ payload ++ padding) into its first word and extends `chain` (the group's
// recordsCrc) with that word. One call per run of records instead of one per record (format.ts).
static napi_value SealRecords(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return throw_type(env, "sealRecords(bytes, start, end, chain)");
  napi_typedarray_type type; size_t length; void* data;
  if (napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return throw_type(env, "sealRecords: bytes must be a Uint8Array");
  uint32_t start, end, chain;
  napi_get_value_uint32(env, argv[1], &start);
  napi_get_value_uint32(env, argv[2], &end);
  napi_get_value_uint32(env, argv[3], &chain);
  if (start > end || end > length || (start & 7)) return throw_type(env, "sealRecords: bad range");
  uint8_t* bytes = (uint8_t*)data;
  uint32_t at = start;
#if defined(__x86_64__)
  // Three records at a time, their CRCs as three independent streams (see crc32c_hw): ~2x at 1 KiB.
  while (has_sse42) {
    uint32_t pos[3]; uint64_t size[3];
    uint32_t p = at;
    int k = 0;
    for (; k < 3 && end - p >= 32; k++) {
      uint32_t payload;
      memcpy(&payload, bytes + p + 4, 4);
      size[k] = 32 + (((uint64_t)payload + 7) & ~(uint64_t)7);
      if (size[k] > end - p) break;
      pos[k] = p;
      p += (uint32_t)size[k];
    }
    if (k < 3) break; // fewer than three left: one at a time below
    uint32_t crc[3];
    crc3_hw(bytes, pos, size, crc);
    for (k = 0; k < 3; k++) {
      memcpy(bytes + pos[k], &crc[k], 4);
      chain = ~crc_raw(~chain, bytes + pos[k], 4);
    }
    at = p;
  }
#endif
  while (at < end) {
    if (end - at < 32) return throw_type(env, "sealRecords: record header runs past the end");
    uint32_t payload;
    memcpy(&payload, bytes + at + 4, 4); // little endian (x86-64, arm64)
    uint64_t size = 32 + (((uint64_t)payload + 7) & ~(uint64_t)7);
    if (size > end - at) return throw_type(env, "sealRecords: record runs past the end");
    uint32_t crc = ~crc_raw(0xffffffffu, bytes + at + 4, (size_t)size - 4);
    memcpy(bytes + at, &crc, 4);
    chain = ~crc_raw(~chain, bytes + at, 4);
    at += (uint32_t)size;
  }
  napi_value result;
  napi_create_uint32(env, chain, &result);
  return result;
}

// ---------------------------------------------------------------- writer, writeSync

// createWriter() -> writer; writeSync(writer, fd, buffers: Uint8Array[], position, sync) -> Promise<void>.
// Each call is one job on libuv's pool: pwritev of all buffers at `position` (IOV_MAX buffers per call,
// looping over short writes) then, if `sync`, one fdatasync — no round trip through the JS thread between
// them. Jobs of one writer run strictly one after another in call order: job n+1 starts writing only once
// job n's fdatasync has returned, so the caller may queue the next group while one is in flight and the
// disk never waits for the (busy) JS thread, yet a crash can tear only the last group. libuv's pool is
// FIFO, so job n has started before job n+1 waits for it (at most one waiting thread per queued job).
// A failure is sticky: later jobs of the writer write nothing and reject with the same error.
// Rejects with an Error whose `code` is the errno name and `syscall` the failing call. The buffers are
// kept alive until the job completes; the caller must not touch their bytes meanwhile.
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint64_t next_seq; // main thread only
  uint64_t done_seq; // under mu
  int err;           // sticky, under mu
  const char* failed;
} writer_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep;
  napi_ref writer_ref;
  writer_t* writer;
  uint64_t seq;
  int fd;
  int sync;
  off_t position;
  struct iovec* iov;
  uint32_t iovcnt;
  int err;
  const char* failed;
} write_job_t;

static void finalize_writer(napi_env env, void* data, void* hint) {
  (void)env; (void)hint;
  writer_t* w = (writer_t*)data;
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

static napi_value CreateWriter(napi_env env, napi_callback_info info) {
  (void)info;
  writer_t* w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "createWriter");
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  napi_value result;
  if (napi_create_external(env, w, finalize_writer, NULL, &result) != napi_ok) { finalize_writer(env, w, NULL); return throw_type(env, "createWriter failed"); }
  return result;
}

static void write_all(write_job_t* job) {
  struct iovec* iov = job->iov;
  uint32_t i = 0, count = job->iovcnt;
  off_t at = job->position;
  for (;;) {
    while (i < count && iov[i].iov_len == 0) i++;
    if (i == count) break;
    int n = (int)(count - i < IOV_MAX ? count - i : IOV_MAX);
    ssize_t w = pwritev(job->fd, iov + i, n, at);
    if (w < 0) {
      if (errno == EINTR) continue;
      job->err = errno; job->failed = "pwritev";
      return;
    }
    if (w == 0) { job->err = EIO; job->failed = "pwritev"; return; }
    at += w;
    size_t left = (size_t)w;
    while (left > 0) {
      if (left >= iov[i].iov_len) { left -= iov[i].iov_len; i++; }
      else { iov[i].iov_base = (uint8_t*)iov[i].iov_base + left; iov[i].iov_len -= left; left = 0; }
    }
  }
  if (job->sync) {
    while (fdatasync(job->fd) != 0) {
      if (errno == EINTR) continue;
      job->err = errno; job->failed = "fdatasync";
      return;
    }
  }
}

static void write_execute(napi_env env, void* data) {
  (void)env;
  write_job_t* job = (write_job_t*)data;
  writer_t* w = job->writer;
  pthread_mutex_lock(&w->mu);
  while (w->done_seq + 1 != job->seq) pthread_cond_wait(&w->cv, &w->mu);
  int sticky = w->err;
  const char* sticky_what = w->failed;
  pthread_mutex_unlock(&w->mu);
  if (sticky) { job->err = sticky; job->failed = sticky_what; }
  else write_all(job);
  pthread_mutex_lock(&w->mu);
  if (job->err && !w->err) { w->err = job->err; w->failed = job->failed; }
  w->done_seq = job->seq;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void write_complete(napi_env env, napi_status status, void* data) {
  write_job_t* job = (write_job_t*)data;
  if (status != napi_ok && job->err == 0) { job->err = EIO; job->failed = "writeSync (cancelled)"; }
  if (job->err) napi_reject_deferred(env, job->deferred, errno_error(env, job->err, job->failed));
  else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  }
  napi_delete_reference(env, job->keep);
  napi_delete_reference(env, job->writer_ref);
  napi_delete_async_work(env, job->work);
  free(job->iov);
  free(job);
}

static napi_value WriteSync(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) return throw_type(env, "writeSync(writer, fd, buffers, position, sync)");
  writer_t* w; int32_t fd; double position; bool sync, is_array; uint32_t count;
  if (napi_get_value_external(env, argv[0], (void**)&w) != napi_ok || !w) return throw_type(env, "writeSync: bad writer");
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) return throw_type(env, "writeSync: bad fd");
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) return throw_type(env, "writeSync: buffers must be an array");
  if (napi_get_value_double(env, argv[3], &position) != napi_ok || !(position >= 0) || position > 9007199254740991.0 || position != (double)(int64_t)position)
    return throw_type(env, "writeSync: bad position");
  if (napi_get_value_bool(env, argv[4], &sync) != napi_ok) return throw_type(env, "writeSync: sync must be a boolean");
  napi_get_array_length(env, argv[2], &count);
  write_job_t* job = calloc(1, sizeof *job);
  if (job) job->iov = calloc(count ? count : 1, sizeof(struct iovec));
  if (!job || !job->iov) { free(job); return throw_errno(env, ENOMEM, "writeSync"); }
  for (uint32_t k = 0; k < count; k++) {
    napi_value item; napi_typedarray_type type; size_t length; void* bytes;
    if (napi_get_element(env, argv[2], k, &item) != napi_ok ||
        napi_get_typedarray_info(env, item, &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
      free(job->iov); free(job);
      return throw_type(env, "writeSync: every buffer must be a Uint8Array");
    }
    job->iov[k].iov_base = bytes;
    job->iov[k].iov_len = length;
  }
  job->writer = w; job->seq = ++w->next_seq;
  job->fd = fd; job->sync = sync; job->position = (off_t)position; job->iovcnt = count;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_reference(env, argv[2], 1, &job->keep);
  napi_create_reference(env, argv[0], 1, &job->writer_ref);
  napi_create_string_utf8(env, "synod.writeSync", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, write_execute, write_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
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
#if defined(__x86_64__)
  zeros_table(crc_long, CRC_LONG);
  zeros_table(crc_short, CRC_SHORT);
#endif
  napi_property_descriptor props[] = {
    {"map", 0, Map, 0, 0, 0, napi_default, 0},
    {"unmap", 0, Unmap, 0, 0, 0, napi_default, 0},
    {"flush", 0, Flush, 0, 0, 0, napi_default, 0},
    {"drain", 0, Drain, 0, 0, 0, napi_default, 0},
    {"msync", 0, Msync, 0, 0, 0, napi_default, 0},
    {"fallocate", 0, Fallocate, 0, 0, 0, napi_default, 0},
    {"crc32c", 0, Crc32c, 0, 0, 0, napi_default, 0},
    {"createWriter", 0, CreateWriter, 0, 0, 0, napi_default, 0},
    {"writeSync", 0, WriteSync, 0, 0, 0, napi_default, 0},
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    {"sealRecords", 0, SealRecords, 0, 0, 0, napi_default, 0},
#endif
    {"features", 0, Features, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
