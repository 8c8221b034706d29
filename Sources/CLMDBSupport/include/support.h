#ifndef CLMDB_SUPPORT_H
#define CLMDB_SUPPORT_H
/* The package's C, behind one file (support.c): what Swift cannot do or
 * reach — CRC32C with the CPU's instruction, guarded LMDB calls that turn a
 * fault on a damaged page into an error, and system calls glibc hides behind
 * _GNU_SOURCE. Only the LMDB module imports it (and CLMDB). */
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by a guarded call that faulted (SIGSEGV/SIGBUS) or failed an LMDB
 * assertion; not an LMDB code (-30799…-30780) nor an errno. */
#define CLMDB_FAULT (-30500)

/* CRC32C: whether the CPU computes it (found once), and the raw update (no inversion). */
int clmdb_crc32c_hardware(void);
uint32_t clmdb_crc32c_update(uint32_t crc, const void *data, size_t count);
/* The CRC32C of `first ‖ second` into *crc, in one call (a sealed record's key and
 * payload); returns 0, leaving *crc alone, when the CPU has no CRC instruction. */
int clmdb_crc32c_pair(const void *first, size_t first_count, const void *second, size_t second_count, uint32_t *crc);

/* Installs the fault handlers (once per process) and LMDB's assert callback for `env`. */
void clmdb_install_fault_handlers(void);
int clmdb_set_assert(MDB_env *env);

/* Guarded LMDB calls: the same arguments and results, or CLMDB_FAULT. Values
 * returned are touched inside the guard, so reading them afterwards cannot fault. */
int clmdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
/* clmdb_get with a key that is one UInt32, stored big-endian (built here, not by the caller). */
int clmdb_get_u32(MDB_txn *txn, MDB_dbi dbi, uint32_t key, MDB_val *data);
int clmdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data, MDB_cursor_op op);
int clmdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags);
int clmdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key);
int clmdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data, unsigned int flags);
int clmdb_cursor_del(MDB_cursor *cursor);
int clmdb_drop(MDB_txn *txn, MDB_dbi dbi, int del);
int clmdb_stat(MDB_txn *txn, MDB_dbi dbi, MDB_stat *stat);
int clmdb_dbi_open(MDB_txn *txn, const char *name, unsigned int flags, MDB_dbi *dbi);
int clmdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags, MDB_txn **txn);
int clmdb_txn_renew(MDB_txn *txn);
int clmdb_txn_commit(MDB_txn *txn);
int clmdb_txn_abort(MDB_txn *txn);
int clmdb_txn_reset(MDB_txn *txn);
int clmdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int clmdb_env_copy2(MDB_env *env, const char *path, unsigned int flags);
int clmdb_env_copyfd2(MDB_env *env, int fd, unsigned int flags);

/* Eight slots of reset read transactions, which are also the readers' side of
 * the lock that keeps map resizes out while a read runs (a read takes one with
 * clmdb_read_begin below). clmdb_reader_pool_block waits for every slot to be
 * free and holds them all (call it before changing the map, with writers and
 * slotless readers excluded); unblock frees them. Destroy aborts what the slots
 * hold (no reader may be in one). A NULL pool (its memory could not be had)
 * has no slots. */
#define CLMDB_NO_SLOT (-30501)
typedef struct clmdb_reader_pool clmdb_reader_pool;
clmdb_reader_pool *clmdb_reader_pool_create(void);
void clmdb_reader_pool_destroy(clmdb_reader_pool *pool);
void clmdb_reader_pool_block(clmdb_reader_pool *pool);
void clmdb_reader_pool_unblock(clmdb_reader_pool *pool);

/* Per-thread marks of the owners (environments) with a transaction open on
 * this thread: enter returns 0 when marked, 1 when already marked (a nested
 * transaction), 2 when 32 are marked already (not marked; not checked). */
int clmdb_mark_enter(const void *owner);
void clmdb_mark_exit(const void *owner);
/* Whether this thread has `owner` marked (a transaction of it open). */
int clmdb_mark_held(const void *owner);

/* How many fork()s this process is removed from the one that first asked (a
 * child sees a higher number than its parent had). */
unsigned long clmdb_fork_generation(void);

/* A read of `owner` (an environment) in a reader slot, begun and ended with one
 * call each. clmdb_read_begin returns CLMDB_FORKED when the process has forked
 * since `generation` (a value of clmdb_fork_generation) and CLMDB_NESTED when
 * this thread has `owner` marked already, doing nothing in either case;
 * otherwise it marks `owner` (*marked = 1; 0 when 32 are marked already) and
 * takes a free slot (one compare-and-swap), renewing its transaction or
 * beginning one, into *txn and *slot. It returns CLMDB_NO_SLOT when every slot
 * is taken or blocked (the caller then begins a transaction of its own under
 * the resize lock, keeping the mark), or an LMDB or fault code with the slot
 * given back and the mark taken off (*marked = 0). clmdb_read_end resets the
 * slot's transaction (aborts it with `discard`) and frees the slot (none when
 * `slot` is negative), returning CLMDB_FAULT, with the transaction leaked, if
 * that faulted; and takes off the mark if `marked`. */
#define CLMDB_FORKED (-30502)
#define CLMDB_NESTED (-30503)
int clmdb_read_begin(clmdb_reader_pool *pool, MDB_env *env, const void *owner, unsigned long generation,
                     MDB_txn **txn, int *slot, int *marked);
int clmdb_read_end(clmdb_reader_pool *pool, const void *owner, int slot, int discard, int marked);

/* An unnamed 0600 file in `dir` (O_TMPFILE), or -1 with errno. */
int clmdb_open_tmpfile(const char *dir);
/* rename(2) that fails with EEXIST instead of replacing (RENAME_NOREPLACE). */
int clmdb_rename_noreplace(const char *from, const char *to);
/* Names the calling thread (its first 15 bytes, as the kernel keeps); 0 or an errno. */
int clmdb_name_thread(const char *name);
/* pipe2(fds, O_CLOEXEC); 0, or -1 with errno. */
int clmdb_pipe_cloexec(int fds[2]);
/* posix_spawn that runs `argv[0]` looked up on PATH (posix_spawnp) with `input`
 * as its standard input, SIGPIPE, SIGTERM and SIGINT at their default actions,
 * no signal blocked, and no other descriptor from 3 up; 0 or an errno. */
int clmdb_spawn_with_input(int *pid, char *const argv[], int input);

#endif
