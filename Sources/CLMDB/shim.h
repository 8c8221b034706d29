#ifndef CLMDB_SHIM_H
#define CLMDB_SHIM_H
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli) with the CPU's instruction where there is one; the
 * Swift side (Sources/LMDB/Checksum.swift) keeps a table-driven fallback and
 * decides which to call. These return the raw register (no pre/post inversion). */
#if defined(__x86_64__)
#include <cpuid.h>
static inline int clmdb_crc32c_hardware(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}
__attribute__((target("sse4.2")))
static inline uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = crc;
    while (count >= 8) {
        uint64_t v;
        __builtin_memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        count -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (count > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p);
        p++;
        count--;
    }
    return c32;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static inline int clmdb_crc32c_hardware(void) { return 1; }
static inline uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
    const unsigned char *p = (const unsigned char *)data;
    while (count >= 8) {
        uint64_t v;
        __builtin_memcpy(&v, p, 8);
        crc = __crc32cd(crc, v);
        p += 8;
        count -= 8;
    }
    while (count > 0) {
        crc = __crc32cb(crc, *p);
        p++;
        count--;
    }
    return crc;
}
#else
static inline int clmdb_crc32c_hardware(void) { return 0; }
static inline uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
    (void)data;
    (void)count;
    return crc;
}
#endif

/* System calls glibc hides behind _GNU_SOURCE, which a Clang module cannot
 * define for the system headers. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>

/* An unnamed 0600 file in `dir` (O_TMPFILE), or -1 with errno. */
static inline int clmdb_open_tmpfile(const char *dir) {
#if defined(__O_TMPFILE)
    return open(dir, O_RDWR | O_CLOEXEC | __O_TMPFILE, 0600);
#else
    (void)dir;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

/* rename(2) that fails with EEXIST instead of replacing (RENAME_NOREPLACE). */
static inline int clmdb_rename_noreplace(const char *from, const char *to) {
#if defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1u);
#else
    (void)from;
    (void)to;
    errno = ENOSYS;
    return -1;
#endif
}

#endif
