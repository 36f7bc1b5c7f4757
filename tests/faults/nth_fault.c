/*
 * nth_fault.c: an LD_PRELOAD shim that fails the n-th I/O call of one kind on the files under a
 * path prefix, so that tests can fail SQLite's n-th write, sync or read for n = 1, 2, 3, ...
 * (SQLite's own I/O-error tests do the same with a VFS of theirs). `fiu-run` has no n-th-call
 * mode, hence this file.
 *
 * Build: gcc -shared -fPIC -O2 -o nth_fault.so nth_fault.c -ldl
 * Use:   LD_PRELOAD=./nth_fault.so NTH_FAULT_PATH=/tmp/x/store/ NTH_FAULT_KIND=write \
 *        NTH_FAULT_N=3 NTH_FAULT_LOG=/tmp/x/fault.log  pipeline-ledger --store ... record ...
 *
 * Settings (environment):
 *   NTH_FAULT_PATH     only files whose path starts with this prefix are counted (the store's
 *                      directory: stdio, the input file, /proc and shared libraries are not).
 *                      Relative paths given to open() are resolved against the working directory.
 *   NTH_FAULT_KIND     write | sync | read | truncate: which calls are counted.
 *                      write: write, pwrite, pwrite64, writev, pwritev; sync: fsync, fdatasync;
 *                      read: read, pread, pread64, readv, preadv; truncate: ftruncate(64).
 *   NTH_FAULT_N        the call (1-based) that fails; 0 or unset: count only, never fail.
 *   NTH_FAULT_ERRNO    EIO (default), ENOSPC, EROFS or EDQUOT: the error the failing call gives.
 *   NTH_FAULT_PERSIST  1: every matching call from the n-th on fails (a disk that stays
 *                      broken); otherwise only the n-th does (a transient error).
 *   NTH_FAULT_LOG      a file (outside NTH_FAULT_PATH) that gets one line when the fault fires,
 *                      "fired KIND N PID", and, at a normal exit, "count KIND TOTAL PID".
 *                      The harness reads it to know whether the n-th call happened at all.
 *
 * Design: open/open64/openat/openat64/creat (and their _2 fortify variants) record, per fd,
 * whether the path matched; dup/dup2/dup3/fcntl(F_DUPFD) copy the mark; close clears it. The
 * I/O calls look the mark up and count with an atomic counter per process, so threads are
 * safe. Memory-mapped I/O (SQLite's -shm file) is not seen: it is not a syscall.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define FDS_MAX 65536
#define PATH_BYTES_MAX 4096

enum kind { KIND_NONE, KIND_WRITE, KIND_SYNC, KIND_READ, KIND_TRUNCATE };
static const char *const KIND_NAMES[] = {"none", "write", "sync", "read", "truncate"};

static unsigned char marked[FDS_MAX];
static char prefix[PATH_BYTES_MAX];
static size_t prefix_len;
static enum kind counted = KIND_NONE;
static long fail_at;
static int fail_errno = EIO;
static int persist;
static const char *log_path;
static long calls; /* atomic */
static int ready;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_creat)(const char *, mode_t);
static int (*real_creat64)(const char *, mode_t);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static ssize_t (*real_readv)(int, const struct iovec *, int);
static ssize_t (*real_preadv)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);

#define RESOLVE(name) real_##name = dlsym(RTLD_NEXT, #name)

static void log_line(const char *what, long n) {
    if (!log_path || !real_open || !real_write || !real_close) return;
    char line[128];
    int len = snprintf(line, sizeof line, "%s %s %ld %d\n", what, KIND_NAMES[counted], n,
                       (int)getpid());
    int fd = real_open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return;
    ssize_t ignored = real_write(fd, line, (size_t)len);
    (void)ignored;
    real_close(fd);
}

/* Idempotent; called by the constructor and by any wrapper that runs before it. */
static void resolve_all(void) {
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
    RESOLVE(__open_2); RESOLVE(__open64_2); RESOLVE(__openat_2); RESOLVE(__openat64_2);
    RESOLVE(creat); RESOLVE(creat64); RESOLVE(close);
    RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(fcntl);
    RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(writev); RESOLVE(pwritev);
    RESOLVE(read); RESOLVE(pread); RESOLVE(pread64); RESOLVE(readv); RESOLVE(preadv);
    RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(ftruncate); RESOLVE(ftruncate64);
}

#define REAL(name) (real_##name ? real_##name : (resolve_all(), real_##name))

__attribute__((constructor)) static void init(void) {
    resolve_all();

    const char *p = getenv("NTH_FAULT_PATH");
    if (p && *p && strlen(p) < sizeof prefix) {
        strcpy(prefix, p);
        prefix_len = strlen(prefix);
    }
    const char *k = getenv("NTH_FAULT_KIND");
    if (k) {
        for (int i = KIND_WRITE; i <= KIND_TRUNCATE; i++)
            if (strcmp(k, KIND_NAMES[i]) == 0) counted = (enum kind)i;
        if (strcmp(k, "fsync") == 0) counted = KIND_SYNC;
    }
    const char *n = getenv("NTH_FAULT_N");
    if (n) fail_at = atol(n);
    const char *e = getenv("NTH_FAULT_ERRNO");
    if (e) {
        if (strcmp(e, "ENOSPC") == 0) fail_errno = ENOSPC;
        else if (strcmp(e, "EROFS") == 0) fail_errno = EROFS;
        else if (strcmp(e, "EDQUOT") == 0) fail_errno = EDQUOT;
        else fail_errno = EIO;
    }
    const char *s = getenv("NTH_FAULT_PERSIST");
    persist = s && strcmp(s, "1") == 0;
    log_path = getenv("NTH_FAULT_LOG");
    if (log_path && !*log_path) log_path = NULL;
    ready = prefix_len > 0 && counted != KIND_NONE;
}

__attribute__((destructor)) static void fini(void) {
    long n = __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
    if (ready && n > 0) log_line("count", n);
}

/* Does this path (as given to open, relative to dirfd) lie under the prefix? */
static int matches(int dirfd, const char *path) {
    if (!ready || !path) return 0;
    if (path[0] == '/') return strncmp(path, prefix, prefix_len) == 0;
    char full[PATH_BYTES_MAX];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(full, sizeof full)) return 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t len = readlink(link, full, sizeof full - 1);
        if (len < 0) return 0;
        full[len] = 0;
    }
    size_t len = strlen(full);
    if (len + 1 + strlen(path) + 1 > sizeof full) return 0;
    full[len] = '/';
    strcpy(full + len + 1, path);
    return strncmp(full, prefix, prefix_len) == 0;
}

static int track(int fd, int dirfd, const char *path) {
    if (fd >= 0 && fd < FDS_MAX) __atomic_store_n(&marked[fd], (unsigned char)matches(dirfd, path), __ATOMIC_SEQ_CST);
    return fd;
}

static void copy_mark(int from, int to) {
    if (from >= 0 && from < FDS_MAX && to >= 0 && to < FDS_MAX)
        __atomic_store_n(&marked[to], __atomic_load_n(&marked[from], __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
}

/* 1 if this call must fail (errno is set), 0 to go ahead. */
static int hit(int fd, enum kind kind) {
    if (!ready || kind != counted || fd < 0 || fd >= FDS_MAX) return 0;
    if (!__atomic_load_n(&marked[fd], __ATOMIC_SEQ_CST)) return 0;
    long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
    if (fail_at <= 0) return 0;
    if (n == fail_at || (persist && n > fail_at)) {
        if (n == fail_at) log_line("fired", n);
        errno = fail_errno;
        return 1;
    }
    return 0;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = mode_arg(flags, ap); va_end(ap);
    return track(REAL(open)(path, flags, mode), AT_FDCWD, path);
}
int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = mode_arg(flags, ap); va_end(ap);
    return track(REAL(open64)(path, flags, mode), AT_FDCWD, path);
}
int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = mode_arg(flags, ap); va_end(ap);
    return track(REAL(openat)(dirfd, path, flags, mode), dirfd, path);
}
int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = mode_arg(flags, ap); va_end(ap);
    return track(REAL(openat64)(dirfd, path, flags, mode), dirfd, path);
}
int __open_2(const char *path, int flags) { return track(REAL(__open_2)(path, flags), AT_FDCWD, path); }
int __open64_2(const char *path, int flags) { return track(REAL(__open64_2)(path, flags), AT_FDCWD, path); }
int __openat_2(int d, const char *path, int flags) { return track(REAL(__openat_2)(d, path, flags), d, path); }
int __openat64_2(int d, const char *path, int flags) { return track(REAL(__openat64_2)(d, path, flags), d, path); }
int creat(const char *path, mode_t mode) { return track(REAL(creat)(path, mode), AT_FDCWD, path); }
int creat64(const char *path, mode_t mode) { return track(REAL(creat64)(path, mode), AT_FDCWD, path); }

int close(int fd) {
    if (fd >= 0 && fd < FDS_MAX) __atomic_store_n(&marked[fd], 0, __ATOMIC_SEQ_CST);
    return REAL(close)(fd);
}
int dup(int fd) { int to = REAL(dup)(fd); copy_mark(fd, to); return to; }
int dup2(int fd, int to) { int r = REAL(dup2)(fd, to); copy_mark(fd, r); return r; }
int dup3(int fd, int to, int flags) { int r = REAL(dup3)(fd, to, flags); copy_mark(fd, r); return r; }
int fcntl(int fd, int cmd, ...) {
    va_list ap; va_start(ap, cmd); void *arg = va_arg(ap, void *); va_end(ap);
    int r = REAL(fcntl)(fd, cmd, arg);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) copy_mark(fd, r);
    return r;
}

ssize_t write(int fd, const void *b, size_t n) { return hit(fd, KIND_WRITE) ? -1 : REAL(write)(fd, b, n); }
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) { return hit(fd, KIND_WRITE) ? -1 : REAL(pwrite)(fd, b, n, o); }
ssize_t pwrite64(int fd, const void *b, size_t n, off64_t o) { return hit(fd, KIND_WRITE) ? -1 : REAL(pwrite64)(fd, b, n, o); }
ssize_t writev(int fd, const struct iovec *v, int c) { return hit(fd, KIND_WRITE) ? -1 : REAL(writev)(fd, v, c); }
ssize_t pwritev(int fd, const struct iovec *v, int c, off_t o) { return hit(fd, KIND_WRITE) ? -1 : REAL(pwritev)(fd, v, c, o); }
ssize_t read(int fd, void *b, size_t n) { return hit(fd, KIND_READ) ? -1 : REAL(read)(fd, b, n); }
ssize_t pread(int fd, void *b, size_t n, off_t o) { return hit(fd, KIND_READ) ? -1 : REAL(pread)(fd, b, n, o); }
ssize_t pread64(int fd, void *b, size_t n, off64_t o) { return hit(fd, KIND_READ) ? -1 : REAL(pread64)(fd, b, n, o); }
ssize_t readv(int fd, const struct iovec *v, int c) { return hit(fd, KIND_READ) ? -1 : REAL(readv)(fd, v, c); }
ssize_t preadv(int fd, const struct iovec *v, int c, off_t o) { return hit(fd, KIND_READ) ? -1 : REAL(preadv)(fd, v, c, o); }
int fsync(int fd) { return hit(fd, KIND_SYNC) ? -1 : REAL(fsync)(fd); }
int fdatasync(int fd) { return hit(fd, KIND_SYNC) ? -1 : REAL(fdatasync)(fd); }
int ftruncate(int fd, off_t len) { return hit(fd, KIND_TRUNCATE) ? -1 : REAL(ftruncate)(fd, len); }
int ftruncate64(int fd, off64_t len) { return hit(fd, KIND_TRUNCATE) ? -1 : REAL(ftruncate64)(fd, len); }
