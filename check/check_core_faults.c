/*
 * check/check_core_faults.c -- the protocol core against a hostile server:
 * the malformed and out-of-order cases a real OpenSSH never produces,
 * injected by the scripted fake server (check/testlib/fakeserver.c) at
 * precise points. Each test asserts the error kind the caller gets and,
 * where it helps, words of its detail.
 *
 * Must never: hang (ConnectTimeout 5 or less, bounded closes, the fake
 * server's own deadline), or need a network or a real server.
 */
#include "coretest.h"
#include "fakeserver.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn.h"

#define CLOSE_MS 5000

static size_t kexinit_len; /* of the KEXINIT script_small() sends */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Short algorithm lists, so that truncation loops stay short. */
static void script_small(struct fs_script *sc)
{
    ct_script_init(sc);
    sc->ciphers = "chacha20-poly1305@openssh.com";
    sc->macs = "hmac-sha2-256";
}

static const char *kind_name(int k)
{
    return sshflow_err_kind_name(k);
}

/*
 * Run a client against sc, expecting the handshake to fail with kind and,
 * if word is set, that word in the detail. Returns the server (finished)
 * for further checks; the caller frees it.
 */
static struct fs *handshake_fails(const struct fs_script *sc, const struct fs_client *o, int kind,
                                  const char *word)
{
    struct fs *fs = fs_start(sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, o, &err);
    if (f != NULL) {
        sshflow_free(f);
        (void)fs_finish(fs);
        ck_abort_msg("the handshake succeeded; expected %s", kind_name(kind));
    }
    ck_assert_msg(err.kind == kind, "expected %s, got %s: %s (server: %s)", kind_name(kind),
                  kind_name(err.kind), err.detail, fs_why(fs));
    if (word != NULL) {
        ck_assert_msg(strstr(err.detail, word) != NULL, "\"%s\" not in \"%s\"", word, err.detail);
    }
    (void)fs_finish(fs);
    return fs;
}

/*
 * The session starts, then the server misbehaves: the failure shows at once
 * (client_of_flow may already see it) or when the client closes, which waits
 * for the server's CLOSE that never comes.
 */
static struct fs *session_fails(const struct fs_script *sc, const struct fs_client *o, int kind,
                                const char *word)
{
    struct fs *fs = fs_start(sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, o, &err);
    if (f != NULL) {
        int r = sshflow_close_timeout(f, CLOSE_MS, &err);
        ck_assert_msg(r < 0, "close succeeded; expected %s", kind_name(kind));
        sshflow_free(f);
    }
    ck_assert_msg(err.kind == kind, "expected %s, got %s: %s (server: %s)", kind_name(kind),
                  kind_name(err.kind), err.detail, fs_why(fs));
    if (word != NULL) {
        ck_assert_msg(strstr(err.detail, word) != NULL, "\"%s\" not in \"%s\"", word, err.detail);
    }
    (void)fs_finish(fs);
    return fs;
}

/* The handshake must succeed and the session end cleanly. */
static struct fs *handshake_ok(const struct fs_script *sc, const struct fs_client *o)
{
    struct fs *fs = fs_start(sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, o, &err);
    ck_assert_msg(f != NULL, "client_of_flow: %s: %s (server: %s)", kind_name(err.kind), err.detail,
                  fs_why(fs));
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    int r = fs_client_read_all(f, NULL, &n, 0, &err);
    ck_assert_msg(r == 0, "read: %s: %s", kind_name(r), err.detail);
    r = sshflow_close_timeout(f, CLOSE_MS, &err);
    ck_assert_msg(r == 0, "close: %s: %s", kind_name(r), err.detail);
    sshflow_free(f);
    ck_assert_msg(fs_finish(fs) == 0, "fake server: %s", fs_why(fs));
    ck_assert_msg(fs_seen(fs)->violation[0] == '\0', "client violated the protocol: %s",
                  fs_seen(fs)->violation);
    return fs;
}

/* After a fault: wait until the client reacts (DISCONNECT) or goes. */
static int wait_gone(struct fs *fs)
{
    uint8_t t = 0;
    struct sf_buf m;
    while (!fs_seen(fs)->disconnect && fs_recv(fs, &t, &m) == 0) {
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Stopping, hanging, disconnecting at each point                            */
/* ------------------------------------------------------------------------ */

/* ConnectTimeout bounds the whole handshake wherever the server goes silent. */
START_TEST(test_core_connect_timeout)
{
    enum fs_point at = (enum fs_point)_i;
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hang = true;
    sc.hang_at = at;
    o.timeout_s = 1;
    uint64_t t0 = sf_now_ms();
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_TIMEOUT, "no progress within 1 s");
    uint64_t took = sf_now_ms() - t0;
    ck_assert_msg(took >= 900 && took < 4000, "took %llu ms", (unsigned long long)took);
    fs_free(fs);
}
END_TEST

#define BYE_REASON 7 /* SSH_DISCONNECT_SERVICE_NOT_AVAILABLE */
#define BYE_TEXT "fake server says goodbye"

static void disconnect_at(enum fs_point at, bool strict)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.no_strict = !strict;
    sc.disconnect = true;
    sc.disconnect_at = at;
    sc.disconnect_reason = BYE_REASON;
    sc.disconnect_text = BYE_TEXT;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    if (f != NULL) {
        /* At the session point the handshake may finish first. */
        ck_assert_int_eq(at, FS_AT_SESSION);
        size_t n = 0;
        int r = fs_client_read_all(f, NULL, &n, 0, &err);
        ck_assert_int_lt(r, 0);
        sshflow_free(f);
    }
    ck_assert_msg(err.kind == SSHFLOW_ERR_DISCONNECT, "at %d: expected a disconnect, got %s: %s",
                  at, kind_name(err.kind), err.detail);
    ck_assert_uint_eq(err.disconnect_reason, BYE_REASON);
    ck_assert_msg(strstr(err.detail, BYE_TEXT) != NULL, "%s", err.detail);
    (void)fs_finish(fs);
    fs_free(fs);
}

/* DISCONNECT from the server at every point: the caller gets its reason and text. */
START_TEST(test_core_disconnect_at_each_point)
{
    disconnect_at((enum fs_point)_i, true);
}
END_TEST

START_TEST(test_core_disconnect_at_each_point_no_strict)
{
    disconnect_at((enum fs_point)_i, false);
}
END_TEST

static enum fs_action drop_hook(struct fs *fs, enum fs_point at, void *user)
{
    return at == *(const enum fs_point *)user ? FS_DROP : FS_GO;
}

/* The server drops the connection at every point of the handshake. */
START_TEST(test_core_drop_at_each_point)
{
    enum fs_point at = (enum fs_point)_i;
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hook = drop_hook;
    sc.user = &at;
    /* Reading sees the end of the stream, or writing a broken pipe. */
    fs_free(handshake_fails(&sc, &o, SSHFLOW_ERR_FLOW, NULL));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bounded waits stay bounded, and do not spin                              */
/* ------------------------------------------------------------------------ */

static uint64_t thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waiting out ConnectTimeout must sleep, not burn a CPU. */
START_TEST(test_core_handshake_wait_sleeps)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hang = true;
    sc.hang_at = FS_AT_KEXREPLY;
    o.timeout_s = 1;
    uint64_t cpu0 = thread_cpu_ms();
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_TIMEOUT, NULL);
    uint64_t cpu = thread_cpu_ms() - cpu0;
    ck_assert_msg(cpu < 400, "the caller's thread used %llu ms of CPU in a 1 s wait",
                  (unsigned long long)cpu);
    fs_free(fs);
}
END_TEST

/* Never answer: no CLOSE, until the test says so. */
static int session_silent(struct fs *fs, void *user)
{
    fs_notify(fs);
    return fs_wait_poke(fs, 1);
}

/* sshflow_close_timeout() on a server that never closes: TIMEOUT after the
 * bound, sleeping meanwhile. */
START_TEST(test_core_close_wait_sleeps)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_silent;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_msg(f != NULL, "%s", err.detail);
    ck_assert_int_eq(fs_wait_notes(fs, 1, 5000), 0);
    uint64_t t0 = sf_now_ms(), cpu0 = thread_cpu_ms();
    int r = sshflow_close_timeout(f, 1000, &err);
    uint64_t took = sf_now_ms() - t0, cpu = thread_cpu_ms() - cpu0;
    fs_poke(fs);
    ck_assert_msg(r == SSHFLOW_ERR_TIMEOUT, "close: %s: %s", kind_name(r), err.detail);
    ck_assert_msg(took >= 900 && took < 3000, "close took %llu ms", (unsigned long long)took);
    ck_assert_msg(cpu < 400, "the caller's thread used %llu ms of CPU in a 1 s wait",
                  (unsigned long long)cpu);
    sshflow_free(f);
    (void)fs_finish(fs);
    fs_free(fs);
}
END_TEST

/* Start a re-key and stall it once the client is in it (its KEXINIT and
 * ECDH init received), until the test says so. */
static int session_stall_rekey(struct fs *fs, void *user)
{
    uint8_t t = 0;
    struct sf_buf m;
    if (fs_send_kexinit(fs) != 0) {
        return -1;
    }
    do {
        if (fs_recv_raw(fs, &t, &m) != 0) {
            return -1;
        }
    } while (t != SSH_MSG_KEX_ECDH_INIT);
    fs_notify(fs);
    return fs_wait_poke(fs, 1);
}

/* The bound of sshflow_close_timeout() holds while a key exchange is stuck. */
START_TEST(test_core_close_bounded_in_stalled_rekey)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_stall_rekey;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_msg(f != NULL, "%s", err.detail);
    ck_assert_int_eq(fs_wait_notes(fs, 1, 5000), 0);
    uint64_t t0 = sf_now_ms();
    int r = sshflow_close_timeout(f, 1000, &err);
    uint64_t took = sf_now_ms() - t0;
    fs_poke(fs);
    ck_assert_msg(took < 3000, "close with a 1000 ms bound took %llu ms (%s)",
                  (unsigned long long)took, kind_name(r));
    ck_assert_msg(r == SSHFLOW_ERR_TIMEOUT, "close: %s: %s", kind_name(r), err.detail);
    sshflow_free(f);
    (void)fs_finish(fs);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Host key and key exchange                                                */
/* ------------------------------------------------------------------------ */

START_TEST(test_core_bad_hostkey_signature)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    if (_i == 0) {
        sc.bad_signature = true; /* one bit flipped */
    } else {
        sc.sign_key = ct_keys.other; /* a good signature by the wrong key */
    }
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_HOSTKEY, "does not verify");
    const struct fs_seen *s = fs_seen(fs);
    ck_assert(s->disconnect);
    ck_assert_uint_eq(s->disconnect_reason, 3); /* KEY_EXCHANGE_FAILED */
    ck_assert_uint_eq(s->kex_done, 0);
    ck_assert_uint_eq(s->service_requests, 0);
    ck_assert_uint_eq(s->userauth_requests, 0);
    fs_free(fs);
}
END_TEST

/* The authenticator wants another key: nothing of ours goes to the server. */
START_TEST(test_core_hostkey_refused)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    o.hostauth = ct_keys.other_fp;
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_HOSTKEY, NULL);
    const struct fs_seen *s = fs_seen(fs);
    ck_assert(s->disconnect);
    ck_assert_uint_eq(s->disconnect_reason, 9); /* HOST_KEY_NOT_VERIFIABLE */
    ck_assert_uint_eq(s->kex_done, 0);
    ck_assert_uint_eq(s->service_requests, 0);
    ck_assert_uint_eq(s->userauth_requests, 0);
    fs_free(fs);
}
END_TEST

/* RFC 8731 s3: an all-zero (small-order) or short Q_S is refused. */
START_TEST(test_core_bad_server_value)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.bad_qs = _i + 1;
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "bad server value");
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 0);
    ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 0);
    fs_free(fs);
}
END_TEST

START_TEST(test_core_nothing_in_common)
{
    struct fs_script sc;
    struct fs_client o;
    const char *word = NULL;
    ct_script_init(&sc);
    ct_client_init(&o);
    switch (_i) {
    case 0:
        sc.kex_algs = "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1"; /* legacy only: not in our defaults */
        word = "no key exchange method in common";
        break;
    case 1:
        sc.ciphers = "chacha20-poly1305@openssh.com";
        o.ciphers = "aes128-ctr";
        word = "no cipher in common";
        break;
    case 2:
        sc.ciphers = "aes128-ctr";
        sc.macs = "hmac-sha2-512";
        o.macs = "hmac-sha2-256";
        word = "no MAC in common";
        break;
    default:
        o.hostkeys = "ecdsa-sha2-nistp256"; /* the server has only ed25519 */
        word = "no host key algorithm in common";
        break;
    }
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, word);
    ck_assert(fs_seen(fs)->disconnect);
    ck_assert_uint_eq(fs_seen(fs)->disconnect_reason, 3);
    fs_free(fs);
}
END_TEST

/* A changed host key in a re-key is refused. */
static int session_rekey(struct fs *fs, void *user)
{
    (void)fs_rekey(fs);
    return wait_gone(fs);
}

START_TEST(test_core_rekey_hostkey_changed)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.rekey_hostkey = ct_keys.other;
    sc.session = session_rekey;
    struct fs *fs = session_fails(&sc, &o, SSHFLOW_ERR_HOSTKEY, "changed");
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 1);
    fs_free(fs);
}
END_TEST

/* Re-key with a changed host key once the test is writing. */
static int session_poke_then_rekey(struct fs *fs, void *user)
{
    if (fs_wait_poke(fs, 1) != 0) {
        return -1;
    }
    (void)fs_rekey(fs);
    return wait_gone(fs);
}

#define RACE_ROUNDS 20
#define RACE_WRITE (256 * 1024)

/*
 * The same failure while the application is blocked in sshflow_write()
 * (waiting for the key exchange to end): the writer, and every later call,
 * must get the real cause (host key changed), not "closed". Repeated,
 * because the order in which the threads see the failure varies.
 */
START_TEST(test_core_rekey_failure_seen_by_writer)
{
    uint8_t *buf = calloc(1, RACE_WRITE);
    int skipped = 0;
    ck_assert_ptr_nonnull(buf);
    for (int round = 0; round < RACE_ROUNDS; round++) {
        struct fs_script sc;
        struct fs_client o;
        ct_script_init(&sc);
        ct_client_init(&o);
        sc.rekey_hostkey = ct_keys.other;
        sc.session = session_poke_then_rekey;
        sc.window = UINT32_MAX; /* never stop the writer for window */
        struct fs *fs = fs_start(&sc);
        ck_assert_ptr_nonnull(fs);
        sshflow_error err;
        sshflow_flow *f = fs_connect(fs, &o, &err);
        ck_assert_msg(f != NULL, "%s", err.detail);
        fs_poke(fs);
        int w = 0;
        for (int i = 0; i < 64 && w == 0; i++) {
            w = sshflow_write(f, buf, RACE_WRITE, &err);
        }
        if (w == 0) {
            /* The writer never waited for the exchange (it kept the send
             * lock busy until the server gave up): nothing to see. */
            skipped++;
            (void)sshflow_close_timeout(f, 0, NULL);
            sshflow_free(f);
            fs_free(fs);
            continue;
        }
        ck_assert_msg(w == SSHFLOW_ERR_HOSTKEY, "round %d: write got %s: %s", round, kind_name(w),
                      err.detail);
        int c = sshflow_close_timeout(f, CLOSE_MS, &err);
        ck_assert_msg(c == SSHFLOW_ERR_HOSTKEY, "round %d: close got %s: %s", round, kind_name(c),
                      err.detail);
        sshflow_free(f);
        (void)fs_finish(fs);
        fs_free(fs);
    }
    free(buf);
    ck_assert_int_lt(skipped, RACE_ROUNDS / 2);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The binary packet protocol                                               */
/* ------------------------------------------------------------------------ */

/* A flipped tag bit on the first encrypted packet: MAC failure, with every suite. */
START_TEST(test_core_mac_failure)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.ciphers = ct_suites[_i].cipher;
    sc.macs = ct_suites[_i].mac;
    sc.corrupt_packet = 4; /* KEXINIT, reply, NEWKEYS, then EXT_INFO */
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "failed authentication");
    ck_assert(fs_seen(fs)->disconnect);
    ck_assert_uint_eq(fs_seen(fs)->disconnect_reason, 5); /* MAC_ERROR */
    fs_free(fs);
}
END_TEST

/* A packet length over the limit (or under the minimum), before and after encryption. */
START_TEST(test_core_bad_packet_length)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    switch (_i) {
    case 0:
        sc.oversize_packet = 1;
        sc.oversize_len = 0xffffffffu;
        break;
    case 1:
        sc.oversize_packet = 1;
        sc.oversize_len = SF_PACKET_MAX + 1;
        break;
    case 2:
        sc.oversize_packet = 1;
        sc.oversize_len = 1; /* shorter than padding_length + 4 bytes of padding */
        break;
    default:
        sc.ciphers = ct_suites[_i - 3].cipher;
        sc.macs = ct_suites[_i - 3].mac;
        sc.oversize_packet = 4;
        sc.oversize_len = 0x40000000u;
        break;
    }
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "bad packet");
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Truncated messages: every length short of the whole message              */
/* ------------------------------------------------------------------------ */

static void truncated(struct fs_script *sc, uint8_t type, size_t len, size_t full, bool session)
{
    struct fs_client o;
    ct_client_init(&o);
    sc->truncate = true;
    sc->truncate_type = type;
    sc->truncate_len = len;
    struct fs *fs = session ? session_fails(sc, &o, SSHFLOW_ERR_PROTOCOL, NULL)
                            : handshake_fails(sc, &o, SSHFLOW_ERR_PROTOCOL, NULL);
    /* The loop's bound is the message's real length. */
    ck_assert_uint_eq(fs_seen(fs)->truncated_from, full);
    fs_free(fs);
}

START_TEST(test_core_kexinit_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    truncated(&sc, SSH_MSG_KEXINIT, (size_t)_i, kexinit_len, false);
}
END_TEST

/* byte 31, string K_S (4 + 51 for ed25519), string Q_S (4 + 32),
 * string signature (4 + 4 + 11 + 4 + 64) */
#define REPLY_LEN (1 + 55 + 36 + 87)

START_TEST(test_core_ecdh_reply_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    truncated(&sc, SSH_MSG_KEX_ECDH_REPLY, (size_t)_i, REPLY_LEN, false);
}
END_TEST

/* byte 7, uint32 1, string "server-sig-algs", string FS_SERVER_SIG_ALGS */
#define EXT_INFO_LEN (1 + 4 + 4 + 15 + 4 + sizeof(FS_SERVER_SIG_ALGS) - 1)

START_TEST(test_core_ext_info_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    truncated(&sc, SSH_MSG_EXT_INFO, (size_t)_i, EXT_INFO_LEN, false);
}
END_TEST

/* byte 51, name-list "publickey,password", boolean FALSE */
#define AUTH_FAILURE_LEN (1 + 4 + 18 + 1)

START_TEST(test_core_userauth_failure_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    sc.auth_refuse = true;
    truncated(&sc, SSH_MSG_USERAUTH_FAILURE, (size_t)_i, AUTH_FAILURE_LEN, false);
}
END_TEST

/* byte 91, uint32 recipient, sender, window, max packet */
#define CONFIRM_LEN 17

START_TEST(test_core_open_confirmation_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    truncated(&sc, SSH_MSG_CHANNEL_OPEN_CONFIRMATION, (size_t)_i, CONFIRM_LEN, false);
}
END_TEST

static int session_exit_status_then_wait(struct fs *fs, void *user)
{
    if (fs_exit_status(fs, 0) != 0) {
        return -1;
    }
    return wait_gone(fs);
}

/* byte 98, uint32 recipient, string "exit-status", boolean FALSE, uint32 status */
#define EXIT_STATUS_LEN (1 + 4 + 4 + 11 + 1 + 4)

START_TEST(test_core_exit_status_truncated)
{
    struct fs_script sc;
    script_small(&sc);
    sc.session = session_exit_status_then_wait;
    truncated(&sc, SSH_MSG_CHANNEL_REQUEST, (size_t)_i, EXIT_STATUS_LEN, true);
}
END_TEST

/* RFC 4253 s10: SERVICE_ACCEPT carries the service name; a missing or
 * wrong one is a malformed answer. */
START_TEST(test_core_service_accept_malformed)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    if (_i == 0) {
        sc.truncate = true;
        sc.truncate_type = SSH_MSG_SERVICE_ACCEPT;
        sc.truncate_len = 1;
    } else {
        sc.service_wrong_name = true;
    }
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, NULL);
    ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 0);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Strict KEX (OpenSSH PROTOCOL s1.10)                                      */
/* ------------------------------------------------------------------------ */

static enum fs_action hook_ignore_first(struct fs *fs, enum fs_point at, void *user)
{
    if (at == FS_AT_KEXINIT && fs_send_ignore(fs) != 0) {
        return FS_DROP;
    }
    return FS_GO;
}

/* With strict KEX offered, KEXINIT must be the server's first packet. */
START_TEST(test_core_strict_ignore_first_refused)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hook = hook_ignore_first;
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "strict");
    ck_assert(fs_seen(fs)->client_strict);
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 0);
    fs_free(fs);
}
END_TEST

/* Without strict KEX, an IGNORE first is fine. */
START_TEST(test_core_no_strict_ignore_first_accepted)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.no_strict = true;
    sc.hook = hook_ignore_first;
    fs_free(handshake_ok(&sc, &o));
}
END_TEST

/* Messages valid at any other time, sent between our KEXINIT and our reply. */
static void send_by_index(struct fs *fs, int i)
{
    static const uint8_t ignore[] = {SSH_MSG_IGNORE, 0, 0, 0, 0};
    static const uint8_t debug[] = {SSH_MSG_DEBUG, 0, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0};
    static const uint8_t unimpl[] = {SSH_MSG_UNIMPLEMENTED, 0, 0, 0, 1};
    static const uint8_t ext_info[] = {SSH_MSG_EXT_INFO, 0, 0, 0, 0};
    static const uint8_t global[] = {SSH_MSG_GLOBAL_REQUEST, 0, 0, 0, 1, 'x', 0};
    static const uint8_t accept[] = {SSH_MSG_SERVICE_ACCEPT,
                                     0,
                                     0,
                                     0,
                                     12,
                                     's',
                                     's',
                                     'h',
                                     '-',
                                     'u',
                                     's',
                                     'e',
                                     'r',
                                     'a',
                                     'u',
                                     't',
                                     'h'};
    static const struct {
        const uint8_t *p;
        size_t n;
    } msgs[] = {
        {ignore, sizeof(ignore)},     {debug, sizeof(debug)},   {unimpl, sizeof(unimpl)},
        {ext_info, sizeof(ext_info)}, {global, sizeof(global)}, {accept, sizeof(accept)},
    };
    (void)fs_send(fs, msgs[i].p, msgs[i].n);
}
#define NMSGS_DURING_KEX 6

struct during_kex {
    int msg;
};

static enum fs_action hook_msg_during_kex(struct fs *fs, enum fs_point at, void *user)
{
    const struct during_kex *d = user;
    if (at == FS_AT_KEXREPLY) {
        send_by_index(fs, d->msg);
    }
    return FS_GO;
}

START_TEST(test_core_strict_message_during_kex_refused)
{
    struct during_kex d = {_i};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hook = hook_msg_during_kex;
    sc.user = &d;
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "strict");
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 0);
    fs_free(fs);
}
END_TEST

/* Without strict KEX, IGNORE and DEBUG in the middle of the exchange are fine. */
START_TEST(test_core_no_strict_ignore_during_kex_accepted)
{
    struct during_kex d = {_i};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.no_strict = true;
    sc.hook = hook_msg_during_kex;
    sc.user = &d;
    fs_free(handshake_ok(&sc, &o));
}
END_TEST

static enum fs_action hook_kex_out_of_order(struct fs *fs, enum fs_point at, void *user)
{
    const int *which = user;
    static const uint8_t kexinit[] = {SSH_MSG_KEXINIT};
    static const uint8_t newkeys[] = {SSH_MSG_NEWKEYS};
    if (at == FS_AT_KEXREPLY) {
        (void)fs_send(fs, *which == 0 ? kexinit : newkeys, 1);
    }
    return FS_GO;
}

/* A second KEXINIT, or NEWKEYS before the reply, in the key exchange. */
START_TEST(test_core_kex_out_of_order)
{
    int which = _i;
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.no_strict = true; /* refused even without strict KEX */
    sc.hook = hook_kex_out_of_order;
    sc.user = &which;
    struct fs *fs =
        handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL,
                        which == 0 ? "second KEXINIT" : "unexpected key exchange message");
    fs_free(fs);
}
END_TEST

/* RFC 4253 s7: first_kex_packet_follows with a wrong guess: the client drops
 * our next packet; with a right guess it takes it as the real one. */
START_TEST(test_core_kex_guess)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.kex_follows = true;
    sc.no_strict = _i == 1;
    if (_i < 2) {
        sc.kex_algs = "curve25519-sha256@libssh.org,curve25519-sha256"; /* not the client's first */
        fs_free(handshake_ok(&sc, &o));
    } else {
        sc.kex_algs = "curve25519-sha256"; /* right guess: the junk is the "reply" */
        fs_free(handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, NULL));
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Version exchange                                                         */
/* ------------------------------------------------------------------------ */

static char many_lines[1100 * 3 + 1];
static char long_line[2100];
static char long_version[320];

static enum fs_action hook_nul_version(struct fs *fs, enum fs_point at, void *user)
{
    static const char v[] = "SSH-2.0-evil\0server\r\n";
    if (at == FS_AT_VERSION) {
        (void)fs_send_raw(fs, v, sizeof(v) - 1);
        return FS_SKIP;
    }
    return FS_GO;
}

/* A line that never ends (and nothing after it). */
static enum fs_action hook_endless_line(struct fs *fs, enum fs_point at, void *user)
{
    if (at == FS_AT_VERSION) {
        (void)fs_send_raw(fs, long_line, strlen(long_line));
        return FS_HANG;
    }
    return FS_GO;
}

START_TEST(test_core_bad_version)
{
    struct fs_script sc;
    struct fs_client o;
    const char *word = NULL;
    ct_script_init(&sc);
    ct_client_init(&o);
    switch (_i) {
    case 0:
        sc.version = "SSH-1.5-ancient";
        word = "unsupported protocol version";
        break;
    case 1:
        memset(many_lines, 0, sizeof(many_lines));
        for (int i = 0; i < 1100; i++) {
            memcpy(many_lines + 3 * i, "x\r\n", 3);
        }
        sc.pre_version = many_lines;
        word = "too many lines";
        break;
    case 2:
        memset(long_line, 'a', sizeof(long_line) - 1);
        long_line[sizeof(long_line) - 1] = '\0';
        sc.hook = hook_endless_line;
        word = "longer than";
        break;
    case 3:
        /* RFC 4253 s4.2: at most 255 characters with CR LF. */
        memset(long_version, 'x', sizeof(long_version) - 1);
        memcpy(long_version, "SSH-2.0-", 8);
        long_version[254] = '\0';
        sc.version = long_version;
        word = "too long";
        break;
    default:
        sc.hook = hook_nul_version;
        word = "NUL";
        break;
    }
    struct fs *fs = handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, word);
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 0);
    fs_free(fs);
}
END_TEST

/* The longest version line allowed (253 characters and CR LF) is fine. */
START_TEST(test_core_version_longest)
{
    static char v[254];
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    memset(v, 'y', sizeof(v) - 1);
    memcpy(v, "SSH-2.0-", 8);
    v[253] = '\0';
    sc.version = v;
    fs_free(handshake_ok(&sc, &o));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Channel misbehaviour                                                     */
/* ------------------------------------------------------------------------ */

#define CLIENT_WINDOW (2 * 1024 * 1024) /* what sshflow grants (SF_CHAN_WINDOW) */

/* More data than the client's window, which the test does not read. */
static int session_beyond_window(struct fs *fs, void *user)
{
    uint8_t *p = calloc(1, 32768);
    if (p == NULL) {
        return fs_fail(fs, "out of memory");
    }
    if (fs_client_window(fs) != CLIENT_WINDOW) {
        free(p);
        return fs_fail(fs, "the client granted %u, not %u", fs_client_window(fs), CLIENT_WINDOW);
    }
    for (int i = 0; i < CLIENT_WINDOW / 32768; i++) {
        if (fs_data_raw(fs, p, 32768) != 0) {
            free(p);
            return -1;
        }
    }
    free(p);
    if (fs_data_raw(fs, "!", 1) != 0) {
        return -1;
    }
    return wait_gone(fs);
}

START_TEST(test_core_data_beyond_window)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.session = session_beyond_window;
    fs_free(session_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "channel"));
}
END_TEST

/* A WINDOW_ADJUST that takes the window past 2^32 - 1 (RFC 4254 s5.2). */
static int session_window_overflow(struct fs *fs, void *user)
{
    uint8_t msg[9];
    msg[0] = SSH_MSG_CHANNEL_WINDOW_ADJUST;
    sf_store_be32(msg + 1, fs_client_chan(fs));
    sf_store_be32(msg + 5, UINT32_MAX - fs_server_window(fs) + 1);
    if (fs_send(fs, msg, sizeof(msg)) != 0) {
        return -1;
    }
    return wait_gone(fs);
}

START_TEST(test_core_window_adjust_overflow)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.session = session_window_overflow;
    fs_free(session_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "channel"));
}
END_TEST

/* A window adjust up to exactly 2^32 - 1 is fine. */
static int session_window_max(struct fs *fs, void *user)
{
    uint8_t msg[9];
    msg[0] = SSH_MSG_CHANNEL_WINDOW_ADJUST;
    sf_store_be32(msg + 1, fs_client_chan(fs));
    sf_store_be32(msg + 5, UINT32_MAX - fs_server_window(fs));
    if (fs_send(fs, msg, sizeof(msg)) != 0 || fs_read_until_eof(fs) != 0) {
        return -1;
    }
    return fs_end_session(fs, 0);
}

START_TEST(test_core_window_adjust_to_max)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.session = session_window_max;
    fs_free(handshake_ok(&sc, &o));
}
END_TEST

/* Channel messages that are wrong in the session. */
static int session_bad_channel_msg(struct fs *fs, void *user)
{
    const int *which = user;
    uint8_t msg[16];
    size_t n = 0;
    switch (*which) {
    case 0: /* data after EOF */
        if (fs_eof(fs) != 0) {
            return -1;
        }
        msg[0] = SSH_MSG_CHANNEL_DATA;
        sf_store_be32(msg + 1, fs_client_chan(fs));
        sf_store_be32(msg + 5, 1);
        msg[9] = 'x';
        n = 10;
        break;
    case 1: /* data for a channel that does not exist */
        msg[0] = SSH_MSG_CHANNEL_DATA;
        sf_store_be32(msg + 1, fs_client_chan(fs) + 99);
        sf_store_be32(msg + 5, 1);
        msg[9] = 'x';
        n = 10;
        break;
    case 2: /* a reply to a request never made */
        msg[0] = SSH_MSG_CHANNEL_SUCCESS;
        sf_store_be32(msg + 1, fs_client_chan(fs));
        n = 5;
        break;
    case 3: /* a reply to a global request never made */
        msg[0] = SSH_MSG_REQUEST_SUCCESS;
        n = 1;
        break;
    case 4: /* a second confirmation */
        msg[0] = SSH_MSG_CHANNEL_OPEN_CONFIRMATION;
        sf_store_be32(msg + 1, fs_client_chan(fs));
        sf_store_be32(msg + 5, fs_server_chan(fs));
        sf_store_be32(msg + 9, 1000);
        msg[13] = 0;
        msg[14] = 0;
        msg[15] = 0x40;
        n = 16;
        break;
    case 5: /* trailing data after a channel EOF */
        msg[0] = SSH_MSG_CHANNEL_EOF;
        sf_store_be32(msg + 1, fs_client_chan(fs));
        msg[5] = 0;
        n = 6;
        break;
    case 6: /* NEWKEYS outside a key exchange */
        msg[0] = SSH_MSG_NEWKEYS;
        n = 1;
        break;
    default: /* a key exchange reply outside a key exchange */
        msg[0] = SSH_MSG_KEX_ECDH_REPLY;
        n = 1;
        break;
    }
    if (fs_send(fs, msg, n) != 0) {
        return -1;
    }
    return wait_gone(fs);
}
#define NBAD_CHANNEL 8

START_TEST(test_core_bad_channel_message)
{
    int which = _i;
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.session = session_bad_channel_msg;
    sc.user = &which;
    fs_free(session_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, NULL));
}
END_TEST

/* Our KEXINIT, then channel data before the exchange ended (RFC 4253 s7.1). */
static int session_data_in_rekey(struct fs *fs, void *user)
{
    if (fs_send_kexinit(fs) != 0 || fs_data_raw(fs, "x", 1) != 0) {
        return -1;
    }
    return wait_gone(fs);
}

START_TEST(test_core_data_during_server_rekey)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.session = session_data_in_rekey;
    fs_free(session_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, "during a key exchange"));
}
END_TEST

/* A max packet size below the minimum the client accepts. */
START_TEST(test_core_tiny_max_packet)
{
    struct fs_script sc;
    struct fs_client o;
    script_small(&sc);
    ct_client_init(&o);
    sc.confirm_maxpkt = 100;
    fs_free(handshake_fails(&sc, &o, SSHFLOW_ERR_PROTOCOL, NULL));
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *faults_suite(void)
{
    Suite *s = suite_create("core_faults");
    TCase *tc = tcase_create("points");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_core_connect_timeout, FS_AT_VERSION, FS_AT_SESSION);
    tcase_add_loop_test(tc, test_core_disconnect_at_each_point, FS_AT_KEXINIT, FS_AT_SESSION + 1);
    tcase_add_loop_test(tc, test_core_disconnect_at_each_point_no_strict, FS_AT_KEXINIT,
                        FS_AT_SESSION + 1);
    tcase_add_loop_test(tc, test_core_drop_at_each_point, FS_AT_VERSION, FS_AT_SESSION);
    tcase_add_test(tc, test_core_handshake_wait_sleeps);
    tcase_add_test(tc, test_core_close_wait_sleeps);
    tcase_add_test(tc, test_core_close_bounded_in_stalled_rekey);
    suite_add_tcase(s, tc);

    tc = tcase_create("kex");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_core_bad_hostkey_signature, 0, 2);
    tcase_add_test(tc, test_core_hostkey_refused);
    tcase_add_loop_test(tc, test_core_bad_server_value, 0, 2);
    tcase_add_loop_test(tc, test_core_nothing_in_common, 0, 4);
    tcase_add_test(tc, test_core_rekey_hostkey_changed);
    tcase_add_test(tc, test_core_rekey_failure_seen_by_writer);
    tcase_add_loop_test(tc, test_core_mac_failure, 0, CT_NSUITES);
    tcase_add_loop_test(tc, test_core_bad_packet_length, 0, 3 + CT_NSUITES);
    tcase_add_test(tc, test_core_strict_ignore_first_refused);
    tcase_add_test(tc, test_core_no_strict_ignore_first_accepted);
    tcase_add_loop_test(tc, test_core_strict_message_during_kex_refused, 0, NMSGS_DURING_KEX);
    tcase_add_loop_test(tc, test_core_no_strict_ignore_during_kex_accepted, 0, 2);
    tcase_add_loop_test(tc, test_core_kex_out_of_order, 0, 2);
    tcase_add_loop_test(tc, test_core_kex_guess, 0, 3);
    tcase_add_loop_test(tc, test_core_bad_version, 0, 5);
    tcase_add_test(tc, test_core_version_longest);
    suite_add_tcase(s, tc);

    tc = tcase_create("truncated");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_core_kexinit_truncated, 0, (int)kexinit_len);
    tcase_add_loop_test(tc, test_core_ecdh_reply_truncated, 0, REPLY_LEN);
    tcase_add_loop_test(tc, test_core_ext_info_truncated, 0, (int)EXT_INFO_LEN);
    tcase_add_loop_test(tc, test_core_userauth_failure_truncated, 0, AUTH_FAILURE_LEN);
    tcase_add_loop_test(tc, test_core_open_confirmation_truncated, 0, CONFIRM_LEN);
    tcase_add_loop_test(tc, test_core_exit_status_truncated, 0, EXIT_STATUS_LEN);
    tcase_add_loop_test(tc, test_core_service_accept_malformed, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("channel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_core_data_beyond_window);
    tcase_add_test(tc, test_core_window_adjust_overflow);
    tcase_add_test(tc, test_core_window_adjust_to_max);
    tcase_add_loop_test(tc, test_core_bad_channel_message, 0, NBAD_CHANNEL);
    tcase_add_test(tc, test_core_data_during_server_rekey);
    tcase_add_test(tc, test_core_tiny_max_packet);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (ct_begin() != 0) {
        return 1;
    }
    struct fs_script sc;
    script_small(&sc);
    kexinit_len = fs_kexinit_len(&sc);
    if (kexinit_len == 0) {
        fprintf(stderr, "cannot build the fake server's KEXINIT\n");
        fs_keys_remove(&ct_keys);
        return 1;
    }
    return ct_run(faults_suite());
}
