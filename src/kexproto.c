/*
 * src/kexproto.c -- the key exchange protocol (RFC 4253 s7-9): KEXINIT,
 * negotiation, the method exchange (one round trip, or two for RFC 4419
 * group exchange: REQUEST 34 / GROUP 31, then INIT 32 / REPLY 33), exchange
 * hash, host key check, NEWKEYS, re-keying in both directions, and
 * OpenSSH's strict KEX; and when compression runs: "zlib" from the NEWKEYS
 * that negotiated it, "zlib@openssh.com" from USERAUTH_SUCCESS on (OpenSSH
 * PROTOCOL s1.2), each restarted at every later NEWKEYS (RFC 4253 s6.2).
 *
 * Owns: the kex fields of struct sf_conn (reader-owned ones, and i_c /
 * kex_active / pending_tx under send_mu), and the switching of the
 * transport's compression. Must never: send a non-kex message, or hold mu
 * while sending.
 */
#include "conn.h"
#include "hostauth.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define STRICT_C "kex-strict-c-v00@openssh.com"
#define STRICT_S "kex-strict-s-v00@openssh.com"
#define EXT_INFO_C "ext-info-c"

/* Sent at most this often regardless of byte counts: 2^31 packets either way. */
#define REKEY_PACKETS (1ULL << 31)

bool sf_kex_due(struct sf_conn *c)
{
    uint64_t limit = c->cfg.rekey_bytes;
    if (!c->tx_rekeyable) {
        return false;
    }
    return c->tp.tx.bytes >= limit || c->tp.tx.packets >= REKEY_PACKETS;
}

/* Reader side: bytes received, packets, or time. */
static bool rx_rekey_due(struct sf_conn *c)
{
    if (c->initial_kex || c->kex_wait != 0 || c->srv_kexinit) {
        return false;
    }
    if (c->tp.rx.bytes >= c->cfg.rekey_bytes || c->tp.rx.packets >= REKEY_PACKETS) {
        return true;
    }
    return c->cfg.rekey_seconds > 0 &&
           sf_now_ms() - c->kex_started_ms >= c->cfg.rekey_seconds * 1000;
}

static int put_list(struct sf_buf *b, const char *list, const char *extra)
{
    struct sf_buf_mark m;
    int r;

    if ((r = sf_buf_open_string(b, &m)) != 0 ||
        (r = sf_buf_put_bytes(b, list, strlen(list))) != 0) {
        return r;
    }
    if (extra != NULL && extra[0] != '\0') {
        if ((list[0] != '\0' && (r = sf_buf_put_u8(b, ',')) != 0) ||
            (r = sf_buf_put_bytes(b, extra, strlen(extra))) != 0) {
            return r;
        }
    }
    return sf_buf_close_string(b, &m);
}

static int put_copy(void *arg, struct sf_buf *b)
{
    const struct sf_buf *src = arg;
    return sf_buf_put_bytes(b, sf_buf_ptr(src), sf_buf_len(src));
}

static int put_newkeys(void *arg, struct sf_buf *b)
{
    (void)arg;
    return sf_buf_put_u8(b, SSH_MSG_NEWKEYS);
}

/* The compression name-list we offer (both directions). */
static const char *comp_list(const struct sf_conn *c)
{
    return c->cfg.compression ? SF_COMP_YES_LIST : SF_COMP_NO_LIST;
}

/*
 * At a NEWKEYS in one direction (tx: our NEWKEYS just went out, send_mu
 * held; rx: the server's just arrived): the keys now in use carry alg.
 * zlib starts (anew) here; zlib@openssh.com too once authenticated, else at
 * USERAUTH_SUCCESS; none stops.
 */
static int comp_switch(struct sf_conn *c, bool tx, int alg)
{
    struct sf_tp_dir *d = tx ? &c->tp.tx : &c->tp.rx;
    int r;

    d->comp_alg = alg;
    if (alg == SF_COMP_ZLIB || (alg == SF_COMP_DELAYED && c->authed)) {
        if ((r = sf_tp_comp_start(&c->tp, tx)) != 0) {
            return r;
        }
        sf_log("compression %s on (%s)", tx ? "out" : "in", sf_comp_alg_name(alg));
        return 0;
    }
    sf_tp_comp_stop(&c->tp, tx);
    return 0;
}

int sf_kex_comp_authenticated(struct sf_conn *c)
{
    int r = 0;

    c->authed = true;
    /* The server compresses everything after its USERAUTH_SUCCESS. */
    if (c->tp.rx.comp_alg == SF_COMP_DELAYED && c->tp.rx.comp == NULL) {
        if ((r = comp_switch(c, false, SF_COMP_DELAYED)) != 0) {
            return sf_conn_fail(c, r, "starting compression failed: %s", sf_err_str(r));
        }
    }
    /* And inflates everything we send after we saw it. */
    pthread_mutex_lock(&c->send_mu);
    if (c->tp.tx.comp_alg == SF_COMP_DELAYED && c->tp.tx.comp == NULL) {
        r = comp_switch(c, true, SF_COMP_DELAYED);
    }
    sf_conn_send_unlock(c);
    if (r != 0) {
        return sf_conn_fail(c, r, "starting compression failed: %s", sf_err_str(r));
    }
    return 0;
}

/* Build and send our KEXINIT; send_mu held. */
int sf_kex_send_kexinit_locked(struct sf_conn *c)
{
    struct sf_buf *b = &c->i_c;
    uint8_t cookie[16];
    int r;

    if (c->kex_active) {
        return 0;
    }
    if (RAND_bytes(cookie, sizeof(cookie)) != 1) {
        return SF_ERR_CRYPTO;
    }
    sf_buf_reset(b);
    /* Pseudo-algorithms only in the first KEXINIT (PROTOCOL s1.10, RFC 8308 s2.1);
     * tx_rekeyable (send_mu) is false exactly until our first NEWKEYS. */
    if ((r = sf_buf_put_u8(b, SSH_MSG_KEXINIT)) != 0 ||
        (r = sf_buf_put_bytes(b, cookie, sizeof(cookie))) != 0 ||
        (r = put_list(b, c->cfg.algs.kex, !c->tx_rekeyable ? EXT_INFO_C "," STRICT_C : NULL)) != 0 ||
        (r = put_list(b, c->cfg.algs.hostkey, NULL)) != 0 ||
        (r = put_list(b, c->cfg.algs.cipher, NULL)) != 0 ||
        (r = put_list(b, c->cfg.algs.cipher, NULL)) != 0 ||
        (r = put_list(b, c->cfg.algs.mac, NULL)) != 0 ||
        (r = put_list(b, c->cfg.algs.mac, NULL)) != 0 ||
        (r = put_list(b, comp_list(c), NULL)) != 0 || (r = put_list(b, comp_list(c), NULL)) != 0 ||
        (r = put_list(b, "", NULL)) != 0 || (r = put_list(b, "", NULL)) != 0 ||
        (r = sf_buf_put_bool(b, false)) != 0 || (r = sf_buf_put_u32(b, 0)) != 0) {
        return r;
    }
    c->kex_active = true;
    if ((r = sf_conn_write_packet_locked(c, put_copy, b)) != 0) {
        return r;
    }
    sf_log("KEXINIT sent");
    return 0;
}

int sf_kex_start(struct sf_conn *c)
{
    int r = 0;
    pthread_mutex_lock(&c->send_mu);
    if (c->send_dead) {
        r = SF_ERR_CLOSED;
    } else if (!c->peer_kex) { /* an exchange the server started is still running */
        r = sf_kex_send_kexinit_locked(c);
    }
    sf_conn_send_unlock(c);
    if (r != 0) {
        return sf_conn_fail(c, r, "starting a key exchange failed: %s", sf_err_str(r));
    }
    return 0;
}

/*
 * RFC 4253 s7.1: the chosen algorithm is the first one on the client's list
 * that is also on the server's. ours is a plain C list; theirs a name-list
 * sub-buffer. Writes the name into out (SF_NAME_MAX + 1).
 */
static int choose(const char *ours, const struct sf_buf *theirs_in, char *out)
{
    const char *p = ours;
    out[0] = '\0';
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        struct sf_buf theirs = *theirs_in;
        const char *name = NULL;
        size_t n = 0;
        int r;
        while ((r = sf_namelist_next(&theirs, &name, &n)) == 1) {
            if (n == len && memcmp(name, p, n) == 0 && len <= SF_NAME_MAX) {
                memcpy(out, p, len);
                out[len] = '\0';
                return 0;
            }
        }
        if (r < 0) {
            return r;
        }
        if (e == NULL) {
            break;
        }
        p = e + 1;
    }
    return SF_ERR_NO_ALG;
}

static bool first_is(const struct sf_buf *list_in, const char *want)
{
    struct sf_buf list = *list_in;
    const char *name = NULL;
    size_t n = 0;
    return sf_namelist_next(&list, &name, &n) == 1 && n == strlen(want) &&
           memcmp(name, want, n) == 0;
}

static bool namelist_has(const struct sf_buf *list_in, const char *want)
{
    struct sf_buf list = *list_in;
    const char *name = NULL;
    size_t n = 0;
    while (sf_namelist_next(&list, &name, &n) == 1) {
        if (n == strlen(want) && memcmp(name, want, n) == 0) {
            return true;
        }
    }
    return false;
}

static void describe_list(const struct sf_buf *list, char *out, size_t outsz)
{
    size_t n = SF_MIN(sf_buf_len(list), outsz - 1);
    memcpy(out, sf_buf_ptr(list), n);
    out[n] = '\0';
}

/* One key exchange message: type || body (the bytes of b). */
static int send_kex_msg(struct sf_conn *c, uint8_t type, const struct sf_buf *b)
{
    uint8_t msg[4096 + 1];
    struct sf_buf mb;
    int r;

    sf_buf_init_mem(&mb, msg, sizeof(msg));
    if ((r = sf_buf_put_u8(&mb, type)) != 0 ||
        (r = sf_buf_put_bytes(&mb, sf_buf_ptr(b), sf_buf_len(b))) != 0) {
        return sf_conn_fail(c, r, "key exchange message too large");
    }
    return sf_conn_send(c, sf_buf_ptr(&mb), sf_buf_len(&mb), SF_SEND_KEX);
}

/*
 * RFC 4253 s7.1 SSH_MSG_KEXINIT (after the type byte):
 *   byte[16] cookie, 10 name-lists, boolean first_kex_packet_follows, uint32 0
 */
static int recv_kexinit(struct sf_conn *c, struct sf_buf *m)
{
    struct sf_buf lists[10];
    char cn[SF_NAME_MAX + 1], theirs[256];
    bool follows = false;
    uint32_t reserved = 0;
    int r;

    if (c->srv_kexinit) {
        return sf_conn_fail(c, SF_ERR_PROTOCOL, "second KEXINIT during a key exchange");
    }
    sf_buf_reset(&c->i_s);
    if ((r = sf_buf_put_u8(&c->i_s, SSH_MSG_KEXINIT)) != 0 ||
        (r = sf_buf_put_bytes(&c->i_s, sf_buf_ptr(m), sf_buf_len(m))) != 0) {
        return sf_conn_fail(c, r, "KEXINIT too large");
    }
    if ((r = sf_buf_skip(m, 16)) != 0) {
        return sf_conn_fail(c, r, "truncated KEXINIT");
    }
    for (int i = 0; i < 10; i++) {
        if ((r = sf_buf_get_namelist(m, &lists[i], SF_NAMELIST_MAX)) != 0) {
            return sf_conn_fail(c, r, "malformed KEXINIT name-list %d: %s", i, sf_err_str(r));
        }
    }
    if ((r = sf_buf_get_bool(m, &follows)) != 0 || (r = sf_buf_get_u32(m, &reserved)) != 0 ||
        (r = sf_buf_expect_end(m)) != 0) {
        return sf_conn_fail(c, r, "malformed KEXINIT: %s", sf_err_str(r));
    }
    c->srv_kexinit = true;
    if (c->initial_kex) {
        c->strict = namelist_has(&lists[0], STRICT_S);
        /* Strict KEX: the server's KEXINIT must have been its first packet. */
        if (c->strict && c->tp.rx.seq != 1) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL,
                                "strict key exchange: KEXINIT was not the server's first packet");
        }
        sf_log("strict KEX %s", c->strict ? "on" : "off (server does not offer it)");
    }

    /* Negotiate. */
    memset(&c->neg, 0, sizeof(c->neg));
    if ((r = choose(c->cfg.algs.kex, &lists[0], cn)) != 0 ||
        (c->neg.kex = sf_kex_method_find(cn, strlen(cn))) == NULL) {
        describe_list(&lists[0], theirs, sizeof(theirs));
        return sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_NO_ALG,
                            "no key exchange method in common; we offer %s, the server %s",
                            c->cfg.algs.kex, theirs);
    }
    if ((r = choose(c->cfg.algs.hostkey, &lists[1], c->neg.hostkey_alg)) != 0) {
        describe_list(&lists[1], theirs, sizeof(theirs));
        return sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_NO_ALG, "no host key algorithm in common; we offer %s, the server %s",
                            c->cfg.algs.hostkey, theirs);
    }
    for (int dir = 0; dir < 2; dir++) {
        const struct sf_cipher_info **ci = dir == 0 ? &c->neg.cipher_ctos : &c->neg.cipher_stoc;
        const struct sf_mac_info **mi = dir == 0 ? &c->neg.mac_ctos : &c->neg.mac_stoc;
        if ((r = choose(c->cfg.algs.cipher, &lists[2 + dir], cn)) != 0 ||
            (*ci = sf_cipher_info_find(cn, strlen(cn))) == NULL) {
            describe_list(&lists[2 + dir], theirs, sizeof(theirs));
            return sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_NO_ALG, "no cipher in common; we offer %s, the server %s",
                                c->cfg.algs.cipher, theirs);
        }
        if ((*ci)->tag_len == 0) {
            if ((r = choose(c->cfg.algs.mac, &lists[4 + dir], cn)) != 0 ||
                (*mi = sf_mac_info_find(cn, strlen(cn))) == NULL) {
                describe_list(&lists[4 + dir], theirs, sizeof(theirs));
                return sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_NO_ALG, "no MAC in common; we offer %s, the server %s",
                                    c->cfg.algs.mac, theirs);
            }
        }
        int *comp = dir == 0 ? &c->neg.comp_ctos : &c->neg.comp_stoc;
        if ((r = choose(comp_list(c), &lists[6 + dir], cn)) != 0 ||
            (*comp = sf_comp_alg_find(cn, strlen(cn))) < 0) {
            describe_list(&lists[6 + dir], theirs, sizeof(theirs));
            return sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_NO_ALG,
                                "no compression algorithm in common; we offer %s, the server %s%s",
                                comp_list(c), theirs,
                                c->cfg.compression ? "" : " (set Compression yes?)");
        }
    }
    /* RFC 4253 s7: a wrong guess means the server's next packet is discarded. */
    if (follows && (!first_is(&lists[0], c->neg.kex->name) ||
                    !first_is(&lists[1], c->neg.hostkey_alg))) {
        c->skip_next = true;
    }
    sf_log("kex: %s, host key %s, cipher %s, mac %s, compression %s/%s", c->neg.kex->name,
           c->neg.hostkey_alg, c->neg.cipher_ctos->name,
           c->neg.mac_ctos != NULL ? c->neg.mac_ctos->name : "<implicit>",
           sf_comp_alg_name(c->neg.comp_ctos), sf_comp_alg_name(c->neg.comp_stoc));

    /* Our KEXINIT (if the server started), then our method's first message. */
    pthread_mutex_lock(&c->send_mu);
    r = c->send_dead ? SF_ERR_CLOSED : sf_kex_send_kexinit_locked(c);
    c->peer_kex = true;
    sf_conn_send_unlock(c);
    if (r != 0) {
        return sf_conn_fail(c, r, "sending KEXINIT failed");
    }
    if (c->kex_st != NULL) {
        c->neg.kex->free(c->kex_st);
        c->kex_st = NULL;
    }
    sf_buf_reset(&c->kex_cpub);
    c->kex_gex_group = false;
    if (c->neg.kex->client_request != NULL) {
        /* RFC 4419 s3: ask for a group first; e follows once we have it. */
        if ((r = c->neg.kex->client_request(&c->kex_st, SF_KEX_GEX_PREF, &c->kex_cpub)) != 0) {
            return sf_conn_fail(c, r, "key exchange %s failed to start: %s", c->neg.kex->name,
                                sf_err_str(r));
        }
        if ((r = send_kex_msg(c, c->neg.kex->request_msg, &c->kex_cpub)) != 0) {
            return r;
        }
        c->kex_gex_group = true;
        c->kex_wait = c->neg.kex->group_msg;
        return 0;
    }
    if ((r = c->neg.kex->client_init(&c->kex_st, &c->kex_cpub)) != 0) {
        return sf_conn_fail(c, r, "key exchange %s failed to start: %s", c->neg.kex->name,
                            sf_err_str(r));
    }
    if ((r = send_kex_msg(c, c->neg.kex->init_msg, &c->kex_cpub)) != 0) {
        return r;
    }
    c->kex_wait = c->neg.kex->reply_msg;
    return 0;
}

/*
 * RFC 4419 s3 SSH_MSG_KEX_DH_GEX_GROUP (after the type byte):
 *   mpint p, mpint g
 * The method checks the group and makes e; kex_cpub already holds
 * min || n || max and gets p || g || e, the client's part of H. Then
 * SSH_MSG_KEX_DH_GEX_INIT: mpint e.
 */
static int recv_gex_group(struct sf_conn *c, struct sf_buf *m)
{
    uint8_t emem[SF_KEX_GEX_MAX / 8 + 8];
    struct sf_buf eb;
    int r;

    sf_buf_init_mem(&eb, emem, sizeof(emem));
    if ((r = c->neg.kex->client_group(c->kex_st, m, &c->kex_cpub, &eb)) != 0) {
        r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, r,
                                    "key exchange %s: %s group from the server: %s",
                                    c->neg.kex->name,
                                    r == SF_ERR_PROTOCOL ? "unacceptable" : "bad",
                                    sf_err_str(r));
        goto out;
    }
    if ((r = sf_buf_expect_end(m)) != 0 ||
        (r = sf_buf_put_bytes(&c->kex_cpub, sf_buf_ptr(&eb), sf_buf_len(&eb))) != 0) {
        r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, r,
                                    "key exchange %s: malformed group message: %s",
                                    c->neg.kex->name, sf_err_str(r));
        goto out;
    }
    if ((r = send_kex_msg(c, c->neg.kex->init_msg, &eb)) != 0) {
        goto out;
    }
    c->kex_gex_group = false;
    c->kex_wait = c->neg.kex->reply_msg;
out:
    sf_buf_reset(&eb);
    return r;
}

static int make_cipher(struct sf_conn *c, const uint8_t *k, size_t klen, const uint8_t *h,
                       size_t hlen, bool tx, struct sf_cipher **out)
{
    const struct sf_cipher_info *ci = tx ? c->neg.cipher_ctos : c->neg.cipher_stoc;
    const struct sf_mac_info *mi = tx ? c->neg.mac_ctos : c->neg.mac_stoc;
    uint8_t iv[64], key[64], mk[128];
    const char *hash = c->neg.kex->hash;
    int r;

    /* RFC 4253 s7.2: A/B IVs, C/D keys, E/F integrity keys (client-to-server first). */
    if (ci->iv_len > sizeof(iv) || ci->key_len > sizeof(key) ||
        (mi != NULL && mi->key_len > sizeof(mk))) {
        return SF_ERR_INTERNAL;
    }
    if ((r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'A' : 'B', c->session_id,
                           c->session_id_len, iv, ci->iv_len)) != 0 ||
        (r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'C' : 'D', c->session_id,
                           c->session_id_len, key, ci->key_len)) != 0 ||
        (mi != NULL && (r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'E' : 'F', c->session_id,
                                          c->session_id_len, mk, mi->key_len)) != 0)) {
        goto out;
    }
    r = sf_cipher_new(out, ci, mi, tx, key, iv, mi != NULL ? mk : NULL);
out:
    sf_wipe(iv, sizeof(iv));
    sf_wipe(key, sizeof(key));
    sf_wipe(mk, sizeof(mk));
    return r;
}

/*
 * RFC 5656 s4 / RFC 8731 s3 / RFC 4253 s8 / RFC 4419 s3 / the hybrid drafts
 * (reply, after the type byte):
 *   string   K_S, server's public host key
 *   string Q_S / S_REPLY, or mpint f   (read by the method)
 *   string   the signature on the exchange hash
 * H = HASH(string V_C || string V_S || string I_C || string I_S ||
 *          string K_S || kex_cpub || Q_S/S_REPLY/f || K)  (sf_kex_exchange_hash)
 * with K an mpint, or a string for the hybrids.
 */
static int recv_reply(struct sf_conn *c, struct sf_buf *m)
{
    const uint8_t *ks = NULL, *sig = NULL;
    size_t kslen = 0, siglen = 0;
    struct sf_buf spub = {0}, kbuf = {0};
    struct sf_pubkey *hk = NULL;
    struct sf_cipher *rx = NULL, *tx = NULL;
    uint8_t h[64];
    size_t hlen = 0;
    int r;

    if ((r = sf_buf_alloc(&spub, 128, 4096)) != 0 || (r = sf_buf_alloc(&kbuf, 128, 4096)) != 0) {
        r = sf_conn_fail(c, r, "out of memory in key exchange");
        goto out;
    }
    if ((r = sf_buf_get_string(m, &ks, &kslen, SF_KEYBLOB_MAX)) != 0) {
        r = sf_conn_fail(c, r, "malformed key exchange reply (host key): %s", sf_err_str(r));
        goto out;
    }
    if ((r = c->neg.kex->client_finish(c->kex_st, m, &spub, &kbuf)) != 0) {
        r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, r, "key exchange %s: bad server value: %s", c->neg.kex->name, sf_err_str(r));
        goto out;
    }
    if ((r = sf_buf_get_string(m, &sig, &siglen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_expect_end(m)) != 0) {
        r = sf_conn_fail(c, r, "malformed key exchange reply (signature): %s", sf_err_str(r));
        goto out;
    }
    c->neg.kex->free(c->kex_st);
    c->kex_st = NULL;

    {
        struct sf_kex_hash_in hi = {
            .v_c = c->v_c,
            .v_s = c->v_s,
            .i_s = sf_buf_ptr(&c->i_s),
            .i_s_len = sf_buf_len(&c->i_s),
            .k_s = ks,
            .k_s_len = kslen,
            .cpub = sf_buf_ptr(&c->kex_cpub),
            .cpub_len = sf_buf_len(&c->kex_cpub),
            .spub = sf_buf_ptr(&spub),
            .spub_len = sf_buf_len(&spub),
            .k = sf_buf_ptr(&kbuf),
            .k_len = sf_buf_len(&kbuf),
        };
        /* i_c is send_mu's; hashing it under the lock is quick and does no I/O. */
        pthread_mutex_lock(&c->send_mu);
        hi.i_c = sf_buf_ptr(&c->i_c);
        hi.i_c_len = sf_buf_len(&c->i_c);
        r = sf_kex_exchange_hash(c->neg.kex->hash, &hi, h, &hlen);
        sf_conn_send_unlock(c);
    }
    if (r != 0) {
        r = sf_conn_fail(c, r, "computing the exchange hash failed");
        goto out;
    }

    /* The host key must be of the negotiated type and must have signed H. */
    if ((r = sf_pubkey_from_blob(ks, kslen, &hk)) != 0) {
        r = sf_conn_fail(c, SF_ERR_HOSTKEY, "server host key unusable: %s", sf_err_str(r));
        goto out;
    }
    if (!sf_pubkey_sigalg_ok(hk, c->neg.hostkey_alg)) {
        r = sf_conn_fail(c, SF_ERR_HOSTKEY, "server sent a %s host key for algorithm %s",
                         sf_pubkey_type(hk), c->neg.hostkey_alg);
        goto out;
    }
    if ((r = sf_pubkey_verify(hk, c->neg.hostkey_alg, sig, siglen, h, hlen)) != 0) {
        r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_KEY_EXCHANGE_FAILED, SF_ERR_SIGNATURE,
                         "the server's signature on the key exchange does not verify (%s)",
                         sf_err_str(r));
        goto out;
    }
    if (c->initial_kex) {
        sshflow_error herr = {0};
        if ((r = sf_hostauth_check(c->hostauth, c->host, c->port, ks, kslen, &herr)) != 0) {
            r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE, r == SF_ERR_NOMEM ? r : (sf_err_kind(r) == SSHFLOW_ERR_HOSTKEY ? r : SF_ERR_HOSTKEY),
                             "%s", herr.detail[0] ? herr.detail : "host key refused");
            goto out;
        }
        if ((c->hostkey_blob = sf_alloc(kslen)) == NULL) {
            r = sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
            goto out;
        }
        memcpy(c->hostkey_blob, ks, kslen);
        c->hostkey_len = kslen;
        memcpy(c->session_id, h, hlen);
        c->session_id_len = hlen;
    } else if (kslen != c->hostkey_len || CRYPTO_memcmp(ks, c->hostkey_blob, kslen) != 0) {
        r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE, SF_ERR_HOSTKEY, "the server's host key changed during a re-key");
        goto out;
    }

    const uint8_t *k = sf_buf_ptr(&kbuf);
    size_t klen = sf_buf_len(&kbuf);
    if ((r = make_cipher(c, k, klen, h, hlen, true, &tx)) != 0 ||
        (r = make_cipher(c, k, klen, h, hlen, false, &rx)) != 0) {
        r = sf_conn_fail(c, r, "setting up the new keys failed: %s", sf_err_str(r));
        goto out;
    }

    /* Our NEWKEYS goes out with the old keys; everything after with the new. */
    pthread_mutex_lock(&c->send_mu);
    {
        r = sf_conn_write_packet_locked(c, put_newkeys, NULL);
        if (r == 0) {
            sf_cipher_free(c->tp.tx.cipher);
            c->tp.tx.cipher = tx;
            tx = NULL;
            if (c->strict) {
                c->tp.tx.seq = 0;
            }
            c->tp.tx.bytes = 0;
            c->tp.tx.packets = 0;
            c->kex_active = false;
            c->tx_rekeyable = true;
            r = comp_switch(c, true, c->neg.comp_ctos);
        }
        pthread_cond_broadcast(&c->send_cv);
    }
    sf_conn_send_unlock(c);
    if (r != 0) {
        r = sf_conn_fail(c, r, "sending NEWKEYS failed: %s", sf_err_str(r));
        goto out;
    }
    sf_cipher_free(c->pending_rx);
    c->pending_rx = rx;
    rx = NULL;
    c->kex_wait = SSH_MSG_NEWKEYS;
    r = 0;
out:
    sf_wipe(h, sizeof(h));
    sf_pubkey_free(hk);
    sf_cipher_free(rx);
    sf_cipher_free(tx);
    sf_buf_free(&spub);
    sf_buf_free(&kbuf);
    return r;
}

static int recv_newkeys(struct sf_conn *c, struct sf_buf *m)
{
    int r;
    if ((r = sf_buf_expect_end(m)) != 0) {
        return sf_conn_fail(c, r, "malformed NEWKEYS");
    }
    sf_cipher_free(c->tp.rx.cipher);
    c->tp.rx.cipher = c->pending_rx;
    c->pending_rx = NULL;
    if (c->strict) {
        c->tp.rx.seq = 0;
    }
    c->tp.rx.bytes = 0;
    c->tp.rx.packets = 0;
    if ((r = comp_switch(c, false, c->neg.comp_stoc)) != 0) {
        return sf_conn_fail(c, r, "starting compression failed: %s", sf_err_str(r));
    }
    c->kex_wait = 0;
    c->srv_kexinit = false;
    c->initial_kex = false;
    c->kex_started_ms = sf_now_ms();
    pthread_mutex_lock(&c->send_mu);
    c->peer_kex = false;
    sf_conn_send_unlock(c);
    pthread_mutex_lock(&c->mu);
    c->kex_done++;
    c->kex_done_ms = c->kex_started_ms;
    pthread_cond_broadcast(&c->helper_cv);
    /* comp= only when negotiated: "NAME", or "CTOS/STOC" if they differ. */
    char comp[2 * SF_NAME_MAX + 8] = "";
    if (c->neg.comp_ctos != SF_COMP_NONE || c->neg.comp_stoc != SF_COMP_NONE) {
        if (c->neg.comp_ctos == c->neg.comp_stoc) {
            snprintf(comp, sizeof(comp), " comp=%s", sf_comp_alg_name(c->neg.comp_ctos));
        } else {
            snprintf(comp, sizeof(comp), " comp=%s/%s", sf_comp_alg_name(c->neg.comp_ctos),
                     sf_comp_alg_name(c->neg.comp_stoc));
        }
    }
    snprintf(c->desc, sizeof(c->desc), "kex=%s hostkey=%s cipher=%s mac=%s%s%s", c->neg.kex->name,
             c->neg.hostkey_alg, c->neg.cipher_ctos->name,
             c->neg.mac_ctos != NULL ? c->neg.mac_ctos->name : "implicit",
             c->strict ? " strict-kex" : "", comp);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    sf_log("key exchange %u complete", c->kex_done);
    return 0;
}

int sf_kex_handle(struct sf_conn *c, uint8_t type, struct sf_buf *msg)
{
    if (type == SSH_MSG_KEXINIT) {
        return recv_kexinit(c, msg);
    }
    if (type != c->kex_wait || c->kex_wait == 0) {
        return sf_conn_fail(c, SF_ERR_PROTOCOL, "unexpected key exchange message %u", type);
    }
    if (type == SSH_MSG_NEWKEYS) {
        return recv_newkeys(c, msg);
    }
    /* 31 is GEX_GROUP while a group exchange waits for its group, else the reply. */
    if (c->kex_gex_group) {
        return recv_gex_group(c, msg);
    }
    return recv_reply(c, msg);
}

int sf_kex_maybe_rekey(struct sf_conn *c)
{
    if (!rx_rekey_due(c)) {
        return 0;
    }
    sf_log("re-keying (limit reached)");
    return sf_kex_start(c);
}
