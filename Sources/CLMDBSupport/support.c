/* See support.h. */
#define _GNU_SOURCE
#include "support.h"

/* CRC32C (Castagnoli) with the CPU's instruction where there is one; the
 * Swift side (Sources/LMDB/Checksum.swift) keeps a table-driven fallback and
 * decides which to call. These return the raw register (no pre/post inversion). */
#if defined(__x86_64__)
#include <cpuid.h>
#include <stdatomic.h>
int clmdb_crc32c_hardware(void) {
    /* -1 until known; a race computes the same answer twice. */
    static atomic_int known = -1;
    int value = atomic_load_explicit(&known, memory_order_relaxed);
    if (value < 0) {
        unsigned int a, b, c, d;
        value = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) != 0;
        atomic_store_explicit(&known, value, memory_order_relaxed);
    }
    return value;
}
__attribute__((target("sse4.2")))
uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
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
    /* The tail in 4-, 2- and 1-byte steps: each step costs the same, and records are short. */
    if (count >= 4) {
        uint32_t v;
        __builtin_memcpy(&v, p, 4);
        c32 = __builtin_ia32_crc32si(c32, v);
        p += 4;
        count -= 4;
    }
    if (count >= 2) {
        uint16_t v;
        __builtin_memcpy(&v, p, 2);
        c32 = __builtin_ia32_crc32hi(c32, v);
        p += 2;
        count -= 2;
    }
    if (count > 0) c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
int clmdb_crc32c_hardware(void) { return 1; }
uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
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
int clmdb_crc32c_hardware(void) { return 0; }
uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count) {
    (void)data;
    (void)count;
    return crc;
}
#endif

#if defined(__x86_64__)
/* Both halves in one function with the instruction (the update inlined twice). */
__attribute__((target("sse4.2"))) static uint32_t clmdb_crc32c_pair_hardware(
    const void *first, size_t first_count, const void *second, size_t second_count
) {
    return ~clmdb_crc32c_update(clmdb_crc32c_update(0xFFFFFFFFu, first, first_count), second, second_count);
}
#else
static uint32_t clmdb_crc32c_pair_hardware(const void *first, size_t first_count, const void *second, size_t second_count) {
    return ~clmdb_crc32c_update(clmdb_crc32c_update(0xFFFFFFFFu, first, first_count), second, second_count);
}
#endif

int clmdb_crc32c_pair(const void *first, size_t first_count, const void *second, size_t second_count, uint32_t *crc) {
    if (!clmdb_crc32c_hardware()) return 0;
    *crc = clmdb_crc32c_pair_hardware(first, first_count, second, second_count);
    return 1;
}

/* ---- Fault guard ------------------------------------------------------------
 * LMDB 0.9 trusts its file: a damaged page can make it read outside a page or
 * the file (SIGSEGV, SIGBUS) or fail one of its own checks (assert -> abort).
 * Every LMDB call that touches the map runs through these wrappers: the calling
 * thread arms a jump target, and a fault or a failed LMDB assertion on that
 * thread jumps back, making the call return CLMDB_FAULT instead of killing the
 * process. Only C frames lie between the target and the fault. Values a call
 * returns are touched (every page, and their last byte) inside the guard, so
 * reading them afterwards cannot fault. Faults outside a guard go to the
 * previous handler, unchanged. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>


static _Thread_local sigjmp_buf *clmdb_fault_target;
static struct sigaction clmdb_previous_segv, clmdb_previous_bus;
static pthread_once_t clmdb_fault_once = PTHREAD_ONCE_INIT;

static void clmdb_fault_handler(int sig, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    sigjmp_buf *target = clmdb_fault_target;
    if (target != NULL) {
        clmdb_fault_target = NULL;
        siglongjmp(*target, 1);
    }
    /* Not a guarded call: restore the previous handler; the fault happens again there. */
    sigaction(sig, sig == SIGBUS ? &clmdb_previous_bus : &clmdb_previous_segv, NULL);
}

static void clmdb_install_fault_handlers_once(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = clmdb_fault_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &action, &clmdb_previous_segv);
    sigaction(SIGBUS, &action, &clmdb_previous_bus);
}

/* Installs the SIGSEGV/SIGBUS handlers (once per process). */
void clmdb_install_fault_handlers(void) {
    pthread_once(&clmdb_fault_once, clmdb_install_fault_handlers_once);
}

/* LMDB's assertion callback: jump out of a guarded call instead of aborting. */
static void clmdb_assert(MDB_env *env, const char *message) {
    (void)env;
    (void)message;
    sigjmp_buf *target = clmdb_fault_target;
    if (target != NULL) {
        clmdb_fault_target = NULL;
        siglongjmp(*target, 1);
    }
}

int clmdb_set_assert(MDB_env *env) { return mdb_env_set_assert(env, clmdb_assert); }

static void clmdb_touch(const MDB_val *v) {
    if (v == NULL || v->mv_data == NULL || v->mv_size == 0) return;
    const volatile unsigned char *p = (const volatile unsigned char *)v->mv_data;
    for (size_t i = 0; i < v->mv_size; i += 4096) (void)p[i];
    (void)p[v->mv_size - 1];
}

#define CLMDB_GUARDED(statement) \
    do { \
        sigjmp_buf jump; \
        sigjmp_buf *const saved = clmdb_fault_target; \
        if (sigsetjmp(jump, 0) != 0) { \
            clmdb_fault_target = saved; \
            return CLMDB_FAULT; \
        } \
        clmdb_fault_target = &jump; \
        statement; \
        clmdb_fault_target = saved; \
    } while (0)

int clmdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_get(txn, dbi, key, data); if (rc == 0) clmdb_touch(data));
    return rc;
}

int clmdb_get_u32(MDB_txn *txn, MDB_dbi dbi, uint32_t key, MDB_val *data) {
    unsigned char bytes[4] = {
        (unsigned char)(key >> 24), (unsigned char)(key >> 16), (unsigned char)(key >> 8), (unsigned char)key,
    };
    MDB_val k = {sizeof bytes, bytes};
    return clmdb_get(txn, dbi, &k, data);
}

int clmdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data, MDB_cursor_op op) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_cursor_get(cursor, key, data, op); if (rc == 0) { clmdb_touch(key); clmdb_touch(data); });
    return rc;
}

int clmdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_put(txn, dbi, key, data, flags));
    return rc;
}

int clmdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_del(txn, dbi, key, NULL));
    return rc;
}

int clmdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data, unsigned int flags) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_cursor_put(cursor, key, data, flags));
    return rc;
}

int clmdb_cursor_del(MDB_cursor *cursor) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_cursor_del(cursor, 0));
    return rc;
}

int clmdb_drop(MDB_txn *txn, MDB_dbi dbi, int del) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_drop(txn, dbi, del));
    return rc;
}

int clmdb_stat(MDB_txn *txn, MDB_dbi dbi, MDB_stat *stat) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_stat(txn, dbi, stat));
    return rc;
}

int clmdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_dbi_open(txn, name, flags, dbi));
    return rc;
}

/* LMDB 0.9 begins (or renews) a read transaction by reading the current
 * transaction ID, N, and then copying the meta page that N selects (N & 1). A
 * reader held up between the two (descheduled, on a busy machine) while
 * commits N+1 and N+2 complete copies the page commit N+2 wrote over it: it
 * sees N+2's snapshot under ID N, and the same thread's next read, given N+1,
 * sees an older state than the one before (reproduced with the C API alone:
 * 12 readers, 200 durable commits, in 4 runs of 8). Checked here after every
 * read transaction begins: the page N selects has not been written again when
 * the newest meta page is at most N+1 (a commit writes its meta page's ID
 * last); otherwise the transaction is renewed. Inside the fault guard (the
 * check reads the meta pages). */
#define CLMDB_STEADY_TRIES 100
static int clmdb_snapshot_rewritten(MDB_env *env, MDB_txn *txn) {
    MDB_envinfo info;
    if (mdb_env_info(env, &info) != 0) return 0;
    return info.me_last_txnid >= (size_t)mdb_txn_id(txn) + 2;
}

/* Renews (renew != 0) or keeps `txn`, a read transaction just begun or renewed,
 * until its snapshot is the one its ID names; EAGAIN after CLMDB_STEADY_TRIES. */
static int clmdb_steady_read(MDB_env *env, MDB_txn *txn) {
    for (int tries = 0; tries < CLMDB_STEADY_TRIES; tries++) {
        if (!clmdb_snapshot_rewritten(env, txn)) return 0;
        mdb_txn_reset(txn);
        int rc = mdb_txn_renew(txn);
        if (rc != 0) return rc;
    }
    return EAGAIN;
}

int clmdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn) {
    int rc = 0;
    CLMDB_GUARDED(
        rc = mdb_txn_begin(env, parent, flags, txn);
        if (rc == 0 && (flags & MDB_RDONLY)) {
            rc = clmdb_steady_read(env, *txn);
            if (rc != 0) mdb_txn_abort(*txn);
        });
    return rc;
}

int clmdb_txn_renew(MDB_txn *txn) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_txn_renew(txn); if (rc == 0) rc = clmdb_steady_read(mdb_txn_env(txn), txn));
    return rc;
}

int clmdb_txn_commit(MDB_txn *txn) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_txn_commit(txn));
    return rc;
}

/* Aborts a transaction; returns CLMDB_FAULT (leaking it) if that faults. */
int clmdb_txn_abort(MDB_txn *txn) {
    CLMDB_GUARDED(mdb_txn_abort(txn));
    return 0;
}

int clmdb_txn_reset(MDB_txn *txn) {
    CLMDB_GUARDED(mdb_txn_reset(txn));
    return 0;
}

/* ---- Read transactions: slots of reset ones, and a per-thread mark --------
 * A read costs little more than its lookups: a reset read transaction is
 * renewed (MDB_NOTLS lets any thread do that) instead of begun. Each slot keeps
 * one and a state: IDLE (free), BUSY (a reader is in it) or BLOCKED (a map
 * resize holds it). A reader takes an IDLE slot with one compare-and-swap and
 * gives it back with a release store (no other atomic, no lock), and a resize
 * blocks every slot, waiting for the readers in them to leave, before it
 * changes the map: the slots are also the readers' side of the resize lock. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>

#define CLMDB_POOL_SLOTS 8
enum { CLMDB_SLOT_IDLE = 0, CLMDB_SLOT_BUSY = 1, CLMDB_SLOT_BLOCKED = 2 };
struct clmdb_reader_slot {
    _Alignas(64) _Atomic int state; /* one cache line per slot: readers on other cores do not share it */
    /* Written only by the slot's holder; read by others (relaxed) only to prefer a slot that keeps
     * a transaction, since each kept transaction holds an entry of LMDB's reader table. */
    _Atomic(MDB_txn *) txn;
};
struct clmdb_reader_pool {
    struct clmdb_reader_slot slots[CLMDB_POOL_SLOTS];
};

clmdb_reader_pool *clmdb_reader_pool_create(void) {
    clmdb_reader_pool *pool = aligned_alloc(64, sizeof(clmdb_reader_pool));
    if (pool == NULL) return NULL;
    for (int i = 0; i < CLMDB_POOL_SLOTS; i++) {
        atomic_init(&pool->slots[i].state, CLMDB_SLOT_IDLE);
        atomic_init(&pool->slots[i].txn, NULL);
    }
    return pool;
}

void clmdb_reader_pool_destroy(clmdb_reader_pool *pool) {
    if (pool == NULL) return;
    for (int i = 0; i < CLMDB_POOL_SLOTS; i++) {
        MDB_txn *txn = atomic_load_explicit(&pool->slots[i].txn, memory_order_relaxed);
        if (txn != NULL) (void)clmdb_txn_abort(txn);
    }
    free(pool);
}

/* Where a thread starts looking: threads spread over the slots. */
static atomic_uint clmdb_reader_threads;
static _Thread_local int clmdb_reader_hint = -1;

/* Takes slot `s` if it is free; then renews its transaction or begins one. 1: taken (rc set), 0: not free. */
static int clmdb_reader_take(struct clmdb_reader_slot *s, MDB_env *env, MDB_txn **txn, int *rc) {
    int expected = CLMDB_SLOT_IDLE;
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != CLMDB_SLOT_IDLE) return 0;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &expected, CLMDB_SLOT_BUSY, memory_order_acquire, memory_order_relaxed)) return 0;
    MDB_txn *kept = atomic_load_explicit(&s->txn, memory_order_relaxed);
    if (kept != NULL) {
        *rc = clmdb_txn_renew(kept);
        if (*rc != 0) {
            (void)clmdb_txn_abort(kept);
            kept = NULL;
        }
    } else {
        *rc = clmdb_txn_begin(env, NULL, MDB_RDONLY, &kept);
        if (*rc != 0) kept = NULL;
    }
    atomic_store_explicit(&s->txn, kept, memory_order_relaxed);
    if (*rc != 0 || kept == NULL) {
        atomic_store_explicit(&s->state, CLMDB_SLOT_IDLE, memory_order_release);
        if (*rc == 0) *rc = EINVAL;
        return 1;
    }
    *txn = kept;
    return 1;
}

/* Takes a free slot and renews its transaction, or begins one, into *txn, *slot; CLMDB_NO_SLOT when every
 * slot is taken or blocked, or an LMDB or fault code with the slot given back. */
static int clmdb_reader_acquire(clmdb_reader_pool *pool, MDB_env *env, MDB_txn **txn, int *slot) {
    if (pool == NULL) return CLMDB_NO_SLOT;
    if (clmdb_reader_hint < 0) {
        clmdb_reader_hint = (int)(atomic_fetch_add_explicit(&clmdb_reader_threads, 1, memory_order_relaxed) % CLMDB_POOL_SLOTS);
    }
    /* First a free slot that keeps a transaction (renewing it uses no new reader-table entry), then any free slot. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < CLMDB_POOL_SLOTS; i++) {
            int k = (clmdb_reader_hint + i) % CLMDB_POOL_SLOTS;
            struct clmdb_reader_slot *s = &pool->slots[k];
            if (pass == 0 && atomic_load_explicit(&s->txn, memory_order_relaxed) == NULL) continue;
            int rc = 0;
            if (!clmdb_reader_take(s, env, txn, &rc)) continue;
            if (rc != 0) return rc;
            *slot = k;
            return 0;
        }
    }
    return CLMDB_NO_SLOT;
}

/* Resets the slot's transaction (aborts it with `discard`) and frees the slot; CLMDB_FAULT, with the
 * transaction leaked, if that faulted. */
static int clmdb_reader_release(clmdb_reader_pool *pool, int slot, int discard) {
    if (pool == NULL || slot < 0 || slot >= CLMDB_POOL_SLOTS) return EINVAL;
    struct clmdb_reader_slot *s = &pool->slots[slot];
    MDB_txn *kept = atomic_load_explicit(&s->txn, memory_order_relaxed);
    int rc = 0;
    if (kept != NULL) {
        rc = discard ? clmdb_txn_abort(kept) : clmdb_txn_reset(kept);
        /* Aborted, or the reset faulted (LMDB's state is unknown: the transaction is leaked). */
        if (discard || rc != 0) atomic_store_explicit(&s->txn, NULL, memory_order_relaxed);
    }
    atomic_store_explicit(&s->state, CLMDB_SLOT_IDLE, memory_order_release);
    return rc;
}

void clmdb_reader_pool_block(clmdb_reader_pool *pool) {
    if (pool == NULL) return;
    for (int i = 0; i < CLMDB_POOL_SLOTS; i++) {
        struct clmdb_reader_slot *s = &pool->slots[i];
        for (unsigned tries = 0;; tries++) {
            int expected = CLMDB_SLOT_IDLE;
            if (atomic_compare_exchange_strong_explicit(&s->state, &expected, CLMDB_SLOT_BLOCKED, memory_order_acq_rel, memory_order_relaxed)) break;
            /* A reader is in it: yield a few times, then sleep (up to 1 ms) until it leaves. */
            if (tries < 16) {
                sched_yield();
            } else {
                unsigned shift = tries - 16 < 10 ? tries - 16 : 10;
                struct timespec pause = {0, (long)(1000u << shift)};
                nanosleep(&pause, NULL);
            }
        }
    }
}

void clmdb_reader_pool_unblock(clmdb_reader_pool *pool) {
    if (pool == NULL) return;
    for (int i = 0; i < CLMDB_POOL_SLOTS; i++) atomic_store_explicit(&pool->slots[i].state, CLMDB_SLOT_IDLE, memory_order_release);
}

/* ---- fork() generations ---------------------------------------------------- */
static atomic_ulong clmdb_forks;
static pthread_once_t clmdb_fork_once = PTHREAD_ONCE_INIT;
static void clmdb_count_fork(void) { atomic_fetch_add_explicit(&clmdb_forks, 1, memory_order_relaxed); }
static void clmdb_watch_forks(void) { pthread_atfork(NULL, NULL, clmdb_count_fork); }

unsigned long clmdb_fork_generation(void) {
    pthread_once(&clmdb_fork_once, clmdb_watch_forks);
    return atomic_load_explicit(&clmdb_forks, memory_order_relaxed);
}

#define CLMDB_MARKS 32
static _Thread_local const void *clmdb_marks[CLMDB_MARKS];
static _Thread_local int clmdb_mark_count;

int clmdb_mark_enter(const void *owner) {
    for (int i = 0; i < clmdb_mark_count; i++) {
        if (clmdb_marks[i] == owner) return 1;
    }
    if (clmdb_mark_count == CLMDB_MARKS) return 2;
    clmdb_marks[clmdb_mark_count++] = owner;
    return 0;
}

void clmdb_mark_exit(const void *owner) {
    for (int i = clmdb_mark_count - 1; i >= 0; i--) {
        if (clmdb_marks[i] != owner) continue;
        for (int j = i; j + 1 < clmdb_mark_count; j++) clmdb_marks[j] = clmdb_marks[j + 1];
        clmdb_mark_count--;
        return;
    }
}

int clmdb_mark_held(const void *owner) {
    for (int i = 0; i < clmdb_mark_count; i++) {
        if (clmdb_marks[i] == owner) return 1;
    }
    return 0;
}

/* ---- A pooled read, begun and ended in one call each ------------------------- */
int clmdb_read_begin(clmdb_reader_pool *pool, MDB_env *env, const void *owner, unsigned long generation,
                     MDB_txn **txn, int *slot, int *marked) {
    *marked = 0;
    /* `generation` came from clmdb_fork_generation, so the fork watch is installed. */
    if (atomic_load_explicit(&clmdb_forks, memory_order_relaxed) != generation) return CLMDB_FORKED;
    switch (clmdb_mark_enter(owner)) {
    case 0: *marked = 1; break;
    case 1: return CLMDB_NESTED;
    default: break;
    }
    int rc = clmdb_reader_acquire(pool, env, txn, slot);
    if (rc != 0 && rc != CLMDB_NO_SLOT && *marked) {
        clmdb_mark_exit(owner);
        *marked = 0;
    }
    return rc;
}

int clmdb_read_end(clmdb_reader_pool *pool, const void *owner, int slot, int discard, int marked) {
    int rc = slot >= 0 ? clmdb_reader_release(pool, slot, discard) : 0;
    if (marked) clmdb_mark_exit(owner);
    return rc;
}

int clmdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor) {
    /* Opening a cursor on a database first used in this transaction reads its root page. */
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_cursor_open(txn, dbi, cursor));
    return rc;
}

int clmdb_env_copy2(MDB_env *env, const char *path, unsigned int flags) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_env_copy2(env, path, flags));
    return rc;
}

int clmdb_env_copyfd2(MDB_env *env, int fd, unsigned int flags) {
    int rc = 0;
    CLMDB_GUARDED(rc = mdb_env_copyfd2(env, fd, flags));
    return rc;
}

/* System calls glibc hides behind _GNU_SOURCE. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>

/* An unnamed 0600 file in `dir` (O_TMPFILE), or -1 with errno. */
int clmdb_open_tmpfile(const char *dir) {
#if defined(__O_TMPFILE)
    return open(dir, O_RDWR | O_CLOEXEC | __O_TMPFILE, 0600);
#else
    (void)dir;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

/* rename(2) that fails with EEXIST instead of replacing (RENAME_NOREPLACE). */
int clmdb_rename_noreplace(const char *from, const char *to) {
#if defined(SYS_renameat2)
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 1u);
#else
    (void)from;
    (void)to;
    errno = ENOSYS;
    return -1;
#endif
}


#include <pthread.h>
#include <string.h>
int clmdb_name_thread(const char *name) {
    char truncated[16];
    strncpy(truncated, name, sizeof truncated - 1);
    truncated[sizeof truncated - 1] = 0;
#if defined(__APPLE__)
    return pthread_setname_np(truncated);
#else
    return pthread_setname_np(pthread_self(), truncated);
#endif
}

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>
extern char **environ;
int clmdb_pipe_cloexec(int fds[2]) {
#if defined(__APPLE__)
    if (pipe(fds) != 0) return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#else
    return pipe2(fds, O_CLOEXEC);
#endif
}

int clmdb_spawn_with_input(int *pid, char *const argv[], int input) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t defaults, unblocked;
    int status = posix_spawn_file_actions_init(&actions);
    if (status != 0) return status;
    status = posix_spawnattr_init(&attributes);
    if (status != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return status;
    }
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigemptyset(&unblocked);
    /* dup2 leaves the new standard input open across exec. */
    status = posix_spawn_file_actions_adddup2(&actions, input, STDIN_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (status == 0) status = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
#endif
    if (status == 0) status = posix_spawnattr_setsigdefault(&attributes, &defaults);
    if (status == 0) status = posix_spawnattr_setsigmask(&attributes, &unblocked);
    if (status == 0) status = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    if (status == 0) {
        pid_t child = 0;
        status = posix_spawnp(&child, argv[0], &actions, &attributes, argv, environ);
        if (status == 0) *pid = (int)child;
    }
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return status;
}
