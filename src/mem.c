/*
 * src/mem.c -- allocation, wiping, assertions and the monotonic clock.
 *
 * Owns: the single path through which the library allocates memory
 * (sf_alloc and friends) and the fault-injection hook used by tests
 * (sf_alloc_fail_after). Must never: parse anything, do I/O other than the
 * assertion message on stderr, or keep any state besides the fault counter.
 */
#include "sf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

/*
 * Fault injection: 0 means "never fail". Otherwise the counter is the number
 * of allocations still to go; the allocation that takes it from 1 to 0 fails
 * and injection is then off again. Atomic so that threaded tests are safe.
 */
static atomic_ulong fail_countdown = 0;

void
sf_alloc_fail_after(unsigned long n)
{
    atomic_store(&fail_countdown, n);
}

/* True if this allocation must fail (consumes one step of the countdown). */
static bool
inject_failure(void)
{
    unsigned long cur = atomic_load(&fail_countdown);

    while (cur != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &cur, cur - 1)) {
            return cur == 1;
        }
    }
    return false;
}

void *
sf_alloc(size_t n)
{
    if (inject_failure()) {
        return NULL;
    }
    /* calloc(0) may return NULL; callers treat NULL as out of memory. */
    return calloc(1, n == 0 ? 1 : n);
}

/*
 * Plain realloc: the old block is not wiped. Code holding secrets must not
 * use it (sf_buf grows by alloc + copy + wipe instead).
 */
void *
sf_realloc(void *p, size_t n)
{
    if (inject_failure()) {
        return NULL;
    }
    return realloc(p, n == 0 ? 1 : n);
}

void
sf_free(void *p)
{
    free(p);
}

void
sf_wipe(void *p, size_t n)
{
    if (p != NULL && n != 0) {
        OPENSSL_cleanse(p, n);
    }
}

void
sf_freezero(void *p, size_t n)
{
    if (p == NULL) {
        return;
    }
    sf_wipe(p, n);
    free(p);
}

char *
sf_strndup(const char *s, size_t n)
{
    size_t len = 0;
    char *out = NULL;

    if (s == NULL) {
        return NULL;
    }
    while (len < n && s[len] != '\0') {
        len++;
    }
    if ((out = sf_alloc(len + 1)) == NULL) {
        return NULL;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

char *
sf_strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    return sf_strndup(s, strlen(s));
}

void
sf_assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "sshflow: assertion failed: %s (%s:%d)\n", what, file, line);
    fflush(stderr);
    abort();
}

uint64_t
sf_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sf_abstime(int clk, uint64_t ms_from_now, struct timespec *ts)
{
    clock_gettime((clockid_t)clk, ts);
    ts->tv_sec += (time_t)(ms_from_now / 1000);
    ts->tv_nsec += (long)((ms_from_now % 1000) * 1000000);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool sf_list_has(const char *list, const char *name, size_t n)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) {
            return true;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return false;
}

const char *sf_errno_text(int e, char *tmp, size_t tmpsz)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, tmp, tmpsz);
#else
    if (strerror_r(e, tmp, tmpsz) != 0) {
        snprintf(tmp, tmpsz, "error %d", e);
    }
    return tmp;
#endif
}
