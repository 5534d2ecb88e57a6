/*
 * check/testlib/fakeserver.h -- a scripted, in-memory SSH *server* for
 * driving the client's protocol core through the public API.
 *
 * The fake server runs on its own thread over one end of a socketpair; the
 * test hands the other end to sshflow_client_of_flow() (fs_flow()). It
 * reuses the library's own packet layer (sf_tp_*), ciphers, exchange hash,
 * key derivation and signing, with the directions swapped: it seals with
 * the server-to-client keys (letters B, D, F) and opens with the
 * client-to-server ones (A, C, E). Its key exchange methods (FS_KEX_ALL):
 * curve25519 with OpenSSL EVP directly; the DH groups and RFC 4419 group
 * exchange with plain BIGNUM arithmetic; sntrup761x25519 and
 * mlkem768x25519 with the library's own KEM code (the encapsulation side).
 * No ECDH (nistp*). By default it offers only curve25519 (FS_KEX_DEFAULT).
 *
 * It speaks the server side of a whole connection: version line, KEXINIT
 * (with kex-strict-s-v00@openssh.com unless told not to), the ECDH reply
 * signed with a host key from a file, NEWKEYS, EXT_INFO (server-sig-algs)
 * when the client asks for it, SERVICE_ACCEPT, USERAUTH (publickey checked
 * for real, password against the script), the session channel and its
 * requests, then a test-written session. Re-keys started by either side
 * are handled wherever the server reads.
 *
 * Misbehaviour is injected at named points (enum fs_point) through options
 * in struct fs_script and through a hook. The server also checks the
 * client's side of the protocol (key exchange gating, windows, strict KEX)
 * and records what it saw in struct fs_seen.
 *
 * Owns: the server thread, its socket end, its keys and packet state. Must
 * never: wait without a bound (every wait ends at the script's deadline),
 * call Check's assertions (they are not thread-safe: it records failures
 * instead), or be linked into the library (test-only code).
 */
#ifndef SF_TEST_FAKESERVER_H
#define SF_TEST_FAKESERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "sshflow.h"

/* The points of the handshake where a script can intervene, in order. */
enum fs_point {
    FS_AT_VERSION = 0, /* before our version line */
    FS_AT_KEXINIT,     /* versions exchanged; before our first KEXINIT */
    FS_AT_KEXREPLY,    /* the client's init (30, GEX: 32) received; before our reply */
    FS_AT_NEWKEYS,     /* reply sent; before our NEWKEYS */
    FS_AT_EXT_INFO,    /* new keys in use both ways; before EXT_INFO */
    FS_AT_SERVICE,     /* SERVICE_REQUEST received; before SERVICE_ACCEPT */
    FS_AT_AUTH,        /* a USERAUTH_REQUEST received; before our answer */
    FS_AT_OPEN,        /* CHANNEL_OPEN received; before our answer */
    FS_AT_REQUEST,     /* the exec/shell/subsystem request received; before our answer */
    FS_AT_SESSION,     /* channel open, request accepted: before the session */
    FS_AT_REKEY,       /* a re-key: the client's KEXINIT received, ours not yet sent */
    FS_POINT_COUNT
};

/* What a hook tells the server to do at a point. */
enum fs_action {
    FS_GO = 0, /* carry on normally */
    FS_SKIP,   /* skip this point's normal message (the hook sent what it wanted) */
    FS_DROP,   /* close the connection at once */
    FS_HANG,   /* stop responding: read and discard until the peer goes or the deadline */
};

struct fs;

struct fs_script {
    /* Keys (private key files, e.g. made by ssh-keygen). hostkey is required. */
    const char *hostkey;
    const char *sign_key;      /* sign the exchange hash with this key instead (bad signature) */
    const char *rekey_hostkey; /* present this host key in re-keys (host key change) */
    bool bad_signature;        /* flip a bit in the exchange-hash signature */
    /*
     * 0: honest server value. curve25519: 1 all-zero Q_S, 2 31-byte Q_S.
     * Hybrids: 1 all-zero X25519 key, 2 S_REPLY one byte short, 3 one
     * ciphertext bit flipped. DH and group exchange: 1 f = 1, 2 f = p.
     */
    int bad_qs;
    /* Group exchange: the group we send (hex; NULL: RFC 3526 group 14, g = 2). */
    const char *gex_p, *gex_g;
    bool gex_trailing; /* one junk byte after g in GEX_GROUP */

    /* Version exchange. */
    const char *pre_version; /* raw bytes sent before the version line (lines with CR LF) */
    const char *version;     /* our version line without CR LF (NULL: "SSH-2.0-fakepeer_1.0") */

    /* KEXINIT. NULL lists mean: everything the server can do. */
    bool no_strict;       /* do not offer kex-strict-s-v00@openssh.com */
    const char *kex_algs; /* methods offered (NULL: FS_KEX_DEFAULT); see FS_KEX_ALL */
    const char *ciphers;
    const char *macs;
    bool kex_follows; /* first_kex_packet_follows = 1, then a junk "guessed" packet */
    bool no_ext_info; /* do not send EXT_INFO even if the client asks */
    /* Compression methods offered, both directions (NULL: "none"). We compress
     * as agreed: zlib from NEWKEYS, zlib@openssh.com from our USERAUTH_SUCCESS,
     * each restarted at every NEWKEYS (RFC 4253 s6.2, as OpenSSH does). */
    const char *compression;
    /* USERAUTH_SUCCESS, IGNORE and a global request (want reply) in one write:
     * with delayed compression the last two are compressed, and the client
     * must switch between bytes that arrive together. */
    bool success_burst;

    /* Faults on our outgoing packets; n counts every packet we send, from 1. */
    unsigned corrupt_packet;  /* flip the last wire byte of packet n (the MAC/tag) */
    unsigned oversize_packet; /* rewrite packet n's length field to oversize_len */
    uint32_t oversize_len;
    bool truncate; /* send the first message of type truncate_type ... */
    uint8_t truncate_type;
    size_t truncate_len; /* ... cut to this many payload bytes */

    /* DISCONNECT (reason, text) instead of the normal message at a point. */
    bool disconnect;
    enum fs_point disconnect_at;
    uint32_t disconnect_reason;
    const char *disconnect_text;

    /* Stop responding at a point (for ConnectTimeout). */
    bool hang;
    enum fs_point hang_at;

    /* Authentication. */
    bool auth_refuse;        /* refuse every method */
    bool refuse_publickey;   /* refuse publickey even with a good signature */
    const char *password;    /* accepted password (NULL: passwords refused) */
    const char *banner;      /* USERAUTH_BANNER sent before the first answer */
    bool service_wrong_name; /* SERVICE_ACCEPT names "ssh-connection" */

    /* Channel. */
    bool open_refuse;
    uint32_t open_fail_code;
    const char *open_fail_text;
    uint32_t window;         /* window we grant (0: 2 MiB) */
    uint32_t maxpkt;         /* max packet we accept (0: 32 KiB) */
    uint32_t confirm_maxpkt; /* max packet announced in the confirmation (0: maxpkt) */
    uint32_t confirm_window; /* 0: window */
    bool request_refuse;     /* CHANNEL_FAILURE for exec/shell/subsystem */
    bool no_auto_window;     /* never re-open the client's window by ourselves */

    /* Hooks (run on the server thread). */
    enum fs_action (*hook)(struct fs *fs, enum fs_point at, void *user);
    /* The session, after the request was accepted. NULL: read until the
     * client's EOF or CLOSE, then exit-status 0, EOF, CLOSE. Returns 0 or
     * -1 (fs_fail). */
    int (*session)(struct fs *fs, void *user);
    void *user;

    int timeout_ms; /* bound on the whole server (0: 8000) */
};

/* The methods the fake server can serve, and what it offers by default. */
#define FS_KEX_DEFAULT "curve25519-sha256,curve25519-sha256@libssh.org"
#define FS_KEX_ALL                                                                                 \
    "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"             \
    "curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group-exchange-sha256,"         \
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"                                 \
    "diffie-hellman-group14-sha256,diffie-hellman-group14-sha1,diffie-hellman-group1-sha1,"        \
    "diffie-hellman-group-exchange-sha1"

/* The server-sig-algs value of our EXT_INFO. */
#define FS_SERVER_SIG_ALGS                                                                         \
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"                     \
    "rsa-sha2-256,rsa-sha2-512"

/* What the server saw from the client. Read it after fs_finish(). */
struct fs_seen {
    char client_version[256];
    bool client_strict;                                 /* kex-strict-c-v00@openssh.com offered */
    bool client_ext_info;                               /* ext-info-c offered */
    bool client_kexinit_first;                          /* its KEXINIT was its first packet */
    char cipher[SF_NAME_MAX + 1], mac[SF_NAME_MAX + 1]; /* negotiated client-to-server */
    char comp[SF_NAME_MAX + 1];                         /* compression, client-to-server */
    char kex[SF_NAME_MAX + 1];                          /* key exchange method, last exchange */
    unsigned gex_requests;                              /* GEX_REQUESTs received */
    uint32_t gex_min, gex_n, gex_max;                   /* the last one's sizes */
    unsigned kexinits;                                  /* KEXINITs received */
    unsigned kex_done;                                  /* key exchanges completed */
    unsigned service_requests;
    unsigned userauth_requests;
    char user[64];
    char auth_method[32]; /* method of the last request */
    bool auth_sig_ok;     /* a publickey signature verified */
    bool auth_ok;         /* we sent USERAUTH_SUCCESS */
    unsigned channel_opens;
    uint32_t client_window, client_maxpkt; /* from CHANNEL_OPEN */
    char request[32];                      /* exec / shell / subsystem */
    char command[256];
    unsigned env_requests;
    unsigned unimplemented;    /* UNIMPLEMENTED received */
    uint32_t unimpl_seq[16];   /* their sequence numbers, in order */
    unsigned request_failures; /* REQUEST_FAILURE (global) */
    unsigned request_successes;
    unsigned channel_failures; /* CHANNEL_FAILURE */
    unsigned channel_successes;
    uint32_t last_failure_chan; /* recipient of the last CHANNEL_FAILURE */
    unsigned window_adjusts;
    uint64_t data_bytes; /* channel data received */
    bool eof, close;     /* CHANNEL_EOF / CHANNEL_CLOSE received */
    bool disconnect;     /* DISCONNECT received */
    uint32_t disconnect_reason;
    char disconnect_text[256];
    bool peer_closed;      /* the client's end of the socket closed */
    bool close_missing;    /* DISCONNECT came after our CLOSE, without the client's CLOSE */
    char violation[256];   /* first protocol violation by the client ("" none) */
    size_t truncated_from; /* real length of the message we truncated (0: none) */
};

/* ---- main thread ---- */

/* Start a server for sc (copied; strings must outlive the server). NULL on failure. */
struct fs *fs_start(const struct fs_script *sc);
/* The client end as a flow (once; the flow owns the descriptor). */
sshflow_flow *fs_flow(struct fs *fs);
/* Or the client end as a bare descriptor (once; the caller owns it), -1 if taken. */
int fs_take_client_fd(struct fs *fs);
/* Wait for the server thread (bounded by the script's deadline). 0 if the
 * script ran to its end, -1 if it stopped early (fs_why says why). */
int fs_finish(struct fs *fs);
const char *fs_why(const struct fs *fs);
const struct fs_seen *fs_seen(const struct fs *fs);
/* Channel data received from the client (valid until fs_free). */
const uint8_t *fs_client_data(const struct fs *fs, size_t *len);
/* Join (if not done) and release. NULL ok. */
void fs_free(struct fs *fs);
/* Wait until the server called fs_notify() n times in all; 0, or -1 on timeout. */
int fs_wait_notes(struct fs *fs, unsigned n, int timeout_ms);
/* Let a server waiting in fs_wait_poke() go on. */
void fs_poke(struct fs *fs);
/* Length of the KEXINIT payload the server would send for sc (for truncation loops). */
size_t fs_kexinit_len(const struct fs_script *sc);

/* ---- server thread (hooks and sessions) ---- */

/* Record a failure (first one wins); returns -1. */
int fs_fail(struct fs *fs, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void fs_notify(struct fs *fs);
/* Wait (bounded by the deadline) until the main thread called fs_poke() n times in all. */
int fs_wait_poke(struct fs *fs, unsigned n);
/* Send one message (payload starts with the type byte); faults apply. */
int fs_send(struct fs *fs, const void *payload, size_t len);
/* Send raw bytes on the socket, outside the packet layer. */
int fs_send_raw(struct fs *fs, const void *p, size_t n);
/*
 * With our compression running: one packet whose payload inflates to n zero
 * bytes, deflated on our stream (a zlib bomb when n > SF_PACKET_MAX). -1
 * if compression is not running.
 */
int fs_send_inflating_zeros(struct fs *fs, size_t n);
/* Sequence number our next packet will have. */
uint32_t fs_tx_seq(const struct fs *fs);
/* The client's channel id (recipient of what we send) and ours. */
uint32_t fs_client_chan(const struct fs *fs);
uint32_t fs_server_chan(const struct fs *fs);
/* Bytes we may still send on the channel (the client's window). */
uint32_t fs_client_window(const struct fs *fs);
/* Bytes the client may still send us (the window we granted). */
uint32_t fs_server_window(const struct fs *fs);
/*
 * Stop (true) or resume (false) reading the socket. While paused, sends
 * wait for room without taking what the client sends (so both sides can
 * fill their socket buffers), and anything that needs to receive fails.
 */
void fs_pause_reading(struct fs *fs, bool paused);

/*
 * Next message from the client: *type and msg (a view after the type
 * byte, valid until the next receive). Re-keys and window accounting are
 * handled inside; everything is returned, including IGNORE. 0 or -1.
 */
int fs_recv(struct fs *fs, uint8_t *type, struct sf_buf *msg);
/* Next message as it comes: a KEXINIT is handed out, not acted on. */
int fs_recv_raw(struct fs *fs, uint8_t *type, struct sf_buf *msg);
/* Next message of this type; IGNORE, DEBUG, WINDOW_ADJUST and channel data
 * in between are skipped (data is kept), anything else fails. */
int fs_expect(struct fs *fs, uint8_t type, struct sf_buf *msg);

int fs_send_ignore(struct fs *fs);
int fs_send_disconnect(struct fs *fs, uint32_t reason, const char *text);
/* Channel data in pieces of at most the client's max packet, waiting for its window. */
int fs_data(struct fs *fs, const void *p, size_t n);
/* Same for extended data (code 1: stderr). */
int fs_ext(struct fs *fs, uint32_t code, const void *p, size_t n);
/* One CHANNEL_DATA message of n bytes, whatever the window says. */
int fs_data_raw(struct fs *fs, const void *p, size_t n);
int fs_exit_status(struct fs *fs, uint32_t status);
int fs_exit_signal(struct fs *fs, const char *sig, bool core, const char *msg);
int fs_eof(struct fs *fs);
int fs_close(struct fs *fs);
/* Grant the client n more bytes (WINDOW_ADJUST; our accounting follows). */
int fs_window_adjust(struct fs *fs, uint32_t n);
int fs_chan_request(struct fs *fs, const char *type, bool want);
int fs_global_request(struct fs *fs, const char *name, bool want);
/* Send our KEXINIT now (a later fs_rekey() goes on from there). */
int fs_send_kexinit(struct fs *fs);
/* Run a key exchange started by us (the client's data meanwhile is kept). */
int fs_rekey(struct fs *fs);
/* Receive until the client's EOF (data is kept). */
int fs_read_until_eof(struct fs *fs);
/* exit-status (if status >= 0), EOF, CLOSE, then wait for the client's CLOSE. */
int fs_end_session(struct fs *fs, int status);

/* ---- test side: keys and a client ---- */

/* Throwaway keys made with ssh-keygen in a private temp dir. */
struct fs_keys {
    char dir[64];
    char host[128];  /* ed25519 host key */
    char other[128]; /* another ed25519 key (wrong signer, changed host key) */
    char user[128];  /* ed25519 user key */
    char ecdsa[128]; /* ecdsa-sha2-nistp256 host key */
    char rsa[128];   /* 2048-bit RSA host key */
    char host_fp[96], other_fp[96], ecdsa_fp[96], rsa_fp[96]; /* "SHA256:..." */
};
/* 0, or -1 with a message on stderr. */
int fs_keys_make(struct fs_keys *k);
void fs_keys_remove(struct fs_keys *k);

/* How the test's client connects. Zeroed but for keys: user key, the host
 * key's fingerprint, exec FS_COMMAND, ConnectTimeout 5. */
struct fs_client {
    const struct fs_keys *keys;
    const char *hostauth;                        /* authenticator spec (NULL: keys->host_fp) */
    sshflow_hostauth *ha;                        /* or this one (stays the caller's) */
    bool no_key;                                 /* no publickey credential */
    const char *password;                        /* add a password credential */
    int timeout_s;                               /* ConnectTimeout (0: 5) */
    const char *rekey;                           /* RekeyLimit value */
    const char *max_stderr;                      /* MaxStderrBuffer value */
    const char *kex, *ciphers, *macs, *hostkeys; /* preference lists (NULL: defaults) */
    sshflow_flow *transport;                     /* connect over it (taken; NULL: fs_flow()) */
};
#define FS_COMMAND "fake-command --arg"
#define FS_USER "tester"

/* sshflow_client_of_flow over fs's socket. NULL with err on failure. */
sshflow_flow *fs_connect(struct fs *fs, const struct fs_client *o, sshflow_error *err);
/*
 * Read stdout until end of stream or an error, keeping at most max bytes
 * in *out (malloc()ed; the caller frees; out may be NULL). Returns 0 at end
 * of stream or the negative kind (err filled).
 */
int fs_client_read_all(sshflow_flow *f, uint8_t **out, size_t *len, size_t max, sshflow_error *err);

#endif
