/*
 * check/testlib/coretest.c -- helpers shared by the protocol-core test
 * programs (see coretest.h).
 *
 * Owns: ct_keys and the suites table. Must never: assert from the fake
 * server's thread, or touch files outside the key set's temp dir.
 */
#include "coretest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fs_keys ct_keys;

const struct ct_suite ct_suites[] = {
    {"chacha20-poly1305@openssh.com", NULL},
    {"aes128-gcm@openssh.com", NULL},
    {"aes256-gcm@openssh.com", NULL},
    {"aes128-ctr", "hmac-sha2-256"},
    {"aes192-ctr", "hmac-sha2-512"},
    {"aes256-ctr", "hmac-sha2-256-etm@openssh.com"},
    {"aes128-ctr", "hmac-sha2-512-etm@openssh.com"},
};
_Static_assert(sizeof(ct_suites) / sizeof(ct_suites[0]) == CT_NSUITES, "CT_NSUITES");

void ct_script_init(struct fs_script *sc)
{
    memset(sc, 0, sizeof(*sc));
    sc->hostkey = ct_keys.host;
}

void ct_client_init(struct fs_client *o)
{
    memset(o, 0, sizeof(*o));
    o->keys = &ct_keys;
}

void ct_log_stderr(void *user, const char *msg)
{
    (void)user;
    fprintf(stderr, "sshflow: %s\n", msg);
}

int ct_begin(void)
{
    if (getenv("FS_DEBUG") != NULL) {
        sshflow_set_log(ct_log_stderr, NULL);
    }
    if (fs_keys_make(&ct_keys) != 0) {
        return -1;
    }
    return 0;
}

int ct_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fs_keys_remove(&ct_keys);
    return failed == 0 ? 0 : 1;
}
