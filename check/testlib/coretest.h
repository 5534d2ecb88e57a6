/*
 * check/testlib/coretest.h -- helpers shared by the protocol-core test
 * programs (check_core.c, check_core_faults.c): the throwaway key set, the
 * default script and client set-up, the cipher/MAC suites every loop test
 * walks, and the program's start and run.
 *
 * Owns: ct_keys (made by ct_begin, removed by ct_run). Must never: hold
 * helpers whose copies differ between the programs (those stay local), or
 * be linked into the library (test-only code).
 */
#ifndef SF_TEST_CORETEST_H
#define SF_TEST_CORETEST_H

#include <check.h>

#include "fakeserver.h"

/* The key files of this run (valid between ct_begin and ct_run). */
extern struct fs_keys ct_keys;

/* One cipher and MAC pair (mac NULL for the AEAD ciphers). */
struct ct_suite {
    const char *cipher, *mac;
};
#define CT_NSUITES 7
extern const struct ct_suite ct_suites[CT_NSUITES];

/* Zero sc, host key ct_keys.host. */
void ct_script_init(struct fs_script *sc);
/* Zero o, keys ct_keys. */
void ct_client_init(struct fs_client *o);
/* Library log to stderr (set by ct_begin when FS_DEBUG is set). */
void ct_log_stderr(void *user, const char *msg);

/* Log to stderr if FS_DEBUG is set, then make ct_keys: 0, or -1 (message
 * on stderr; nothing to remove). */
int ct_begin(void);
/* Run s (CK_NORMAL), free it, remove ct_keys: 0 if every check passed, else 1. */
int ct_run(Suite *s);

#endif
