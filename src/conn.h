/*
 * src/conn.h -- the connection: transport state, the reader thread, the send
 * path, key exchange state, and the channel(s) it carries.
 *
 * Data path (one way):
 *   flow --read--> reader thread: rx buffer -> sf_tp_decode (verify, decrypt)
 *     -> sf_conn_dispatch: transport messages handled here (kex, ignore,
 *        debug, disconnect, global requests); channel messages -> channel.c
 *        (data into the channel's ring, stderr into its own ring, windows,
 *        EOF/close, exit status) -> broadcast cv -> callers wake.
 *   caller write -> channel.c (wait for remote window) -> sf_conn_send
 *     (wait while a key exchange runs) -> sf_tp_encode (pad, seal) -> flow.
 *
 * Locks (order: mu before send_mu; never the other way):
 *   mu       connection and channel state, cv.
 *   send_mu  the send half of the transport (seq, keys, tx buffer), kex
 *            sending state, deferred control messages, send_cv.
 *   write_mu one application write at a time (keeps each write contiguous).
 */
#ifndef SF_CONN_H
#define SF_CONN_H

#include <pthread.h>
#include <stdatomic.h>

#include "buf.h"
#include "cipher.h"
#include "compress.h"
#include "flow.h"
#include "kex.h"
#include "key.h"
#include "cred.h"
#include "ring.h"
#include "sf.h"

/* RFC 4250 s4.1 message numbers */
enum {
    SSH_MSG_DISCONNECT = 1,
    SSH_MSG_IGNORE = 2,
    SSH_MSG_UNIMPLEMENTED = 3,
    SSH_MSG_DEBUG = 4,
    SSH_MSG_SERVICE_REQUEST = 5,
    SSH_MSG_SERVICE_ACCEPT = 6,
    SSH_MSG_EXT_INFO = 7,
    SSH_MSG_KEXINIT = 20,
    SSH_MSG_NEWKEYS = 21,
    SSH_MSG_KEX_ECDH_INIT = 30,
    SSH_MSG_KEX_ECDH_REPLY = 31,
    SSH_MSG_USERAUTH_REQUEST = 50,
    SSH_MSG_USERAUTH_FAILURE = 51,
    SSH_MSG_USERAUTH_SUCCESS = 52,
    SSH_MSG_USERAUTH_BANNER = 53,
    SSH_MSG_USERAUTH_PK_OK = 60,
    SSH_MSG_GLOBAL_REQUEST = 80,
    SSH_MSG_REQUEST_SUCCESS = 81,
    SSH_MSG_REQUEST_FAILURE = 82,
    SSH_MSG_CHANNEL_OPEN = 90,
    SSH_MSG_CHANNEL_OPEN_CONFIRMATION = 91,
    SSH_MSG_CHANNEL_OPEN_FAILURE = 92,
    SSH_MSG_CHANNEL_WINDOW_ADJUST = 93,
    SSH_MSG_CHANNEL_DATA = 94,
    SSH_MSG_CHANNEL_EXTENDED_DATA = 95,
    SSH_MSG_CHANNEL_EOF = 96,
    SSH_MSG_CHANNEL_CLOSE = 97,
    SSH_MSG_CHANNEL_REQUEST = 98,
    SSH_MSG_CHANNEL_SUCCESS = 99,
    SSH_MSG_CHANNEL_FAILURE = 100,
};

/* RFC 4253 s11.1 disconnect reasons we send */
enum {
    SSH_DISCONNECT_PROTOCOL_ERROR = 2,
    SSH_DISCONNECT_KEY_EXCHANGE_FAILED = 3,
    SSH_DISCONNECT_MAC_ERROR = 5,
    SSH_DISCONNECT_HOST_KEY_NOT_VERIFIABLE = 9,
    SSH_DISCONNECT_BY_APPLICATION = 11,
    SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE = 14,
};

#define SF_TX_MAX (SF_PACKET_MAX + 256) /* packet + tag */
#define SF_RX_MAX (SF_PACKET_MAX + 256)
/* Largest payload we send with compression on: its deflated form still fits a packet. */
#define SF_TP_PLAIN_MAX (SF_PACKET_MAX - 4096)
#define SF_CHAN_WINDOW (2 * 1024 * 1024) /* local window == ring capacity */
#define SF_CHAN_MAXPKT (32 * 1024)       /* max data per packet we ask for */
#define SF_CHAN_MAXPKT_MIN 256           /* smaller remote max packet is a protocol error */

/* ------------------------------------------------------------------------ */
/* transport.c: the binary packet protocol, pure (no I/O, no locks)         */
/* ------------------------------------------------------------------------ */

/* One direction of the packet layer. */
struct sf_tp_dir {
    struct sf_cipher *cipher; /* NULL before the first NEWKEYS: no encryption */
    uint32_t seq;             /* sequence number of the next packet (wraps) */
    uint64_t bytes;           /* bytes since the last key exchange (rekey trigger) */
    uint64_t packets;         /* packets since the last key exchange */
    int comp_alg;             /* SF_COMP_*: compression negotiated for the keys in use */
    struct sf_comp *comp;     /* the running stream; NULL while not compressing (none,
                                 or zlib@openssh.com before USERAUTH_SUCCESS) */
};

struct sf_tp {
    struct sf_tp_dir tx, rx;
    /* tx: packet being built. [0..4) length, [4] padding length, payload from 5. */
    uint8_t *txbuf; /* SF_TX_MAX bytes */
    size_t txlen;   /* payload bytes written so far (begin..finish) */
    /* rx: bytes received but not yet consumed. */
    uint8_t *rxbuf;   /* SF_RX_MAX bytes */
    size_t rxoff;     /* start of the unconsumed bytes */
    size_t rxlen;     /* end of the valid bytes in rxbuf */
    size_t rxpkt;     /* length of the packet at rxbuf being decoded (0 = unknown) */
    bool rxpeeked;    /* sf_cipher_peek_len was done for the packet at rxbuf */
    /* Compression (allocated when a direction starts compressing). */
    uint8_t *txplain; /* with tx.comp: the payload before deflate (SF_TP_PLAIN_MAX) */
    uint8_t *rxplain; /* with rx.comp: the inflated payload (SF_PACKET_MAX) */
    bool rxinflate_failed; /* the last decode failed in inflation (for the message) */
};

SF_MUST_USE int sf_tp_init(struct sf_tp *tp);
void sf_tp_free(struct sf_tp *tp);

/* Start a packet: *payload is a writer over the tx buffer's payload area. */
void sf_tp_begin(struct sf_tp *tp, struct sf_buf *payload);
/*
 * Finish the packet written through payload: pad, set the length, seal,
 * advance tx.seq. *wire / *wirelen: the bytes to send (valid until the
 * next begin).
 */
SF_MUST_USE int sf_tp_finish(struct sf_tp *tp, struct sf_buf *payload, const uint8_t **wire,
                             size_t *wirelen);

/* Space in the rx buffer for the next read: *p, returns the room. Invalidates
 * the payload view returned by the last decode. */
size_t sf_tp_rx_room(struct sf_tp *tp, uint8_t **p);
/* n bytes were read into the room. */
void sf_tp_rx_commit(struct sf_tp *tp, size_t n);
/*
 * Decode the next packet from the rx buffer: returns 1 with *payload a
 * read-only view of the payload (valid until the next decode call), 0 if
 * more bytes are needed, or < 0 (SF_ERR_MAC, SF_ERR_TOO_LARGE,
 * SF_ERR_BAD_FORMAT). Advances rx.seq.
 */
SF_MUST_USE int sf_tp_decode(struct sf_tp *tp, struct sf_buf *payload);

/*
 * Compression of one direction (tx: under send_mu, rx: reader thread).
 * start: from the next packet on, payloads are (de)compressed by a fresh
 * stream (a running one is replaced: RFC 4253 s6.2 and OpenSSH start the
 * context anew after each key exchange). stop: no compression from the
 * next packet on. With compression on, a payload in the clear is at most
 * SF_TP_PLAIN_MAX bytes when sent and SF_PACKET_MAX when received; a
 * received payload inflating to more is SF_ERR_TOO_LARGE. Returns 0 or
 * SF_ERR_NOMEM (nothing changed then).
 */
SF_MUST_USE int sf_tp_comp_start(struct sf_tp *tp, bool tx);
void sf_tp_comp_stop(struct sf_tp *tp, bool tx);

/* ------------------------------------------------------------------------ */
/* Algorithms                                                               */
/* ------------------------------------------------------------------------ */

struct sf_algs {
    char kex[SF_NAMELIST_MAX];
    char hostkey[SF_NAMELIST_MAX];
    char cipher[SF_NAMELIST_MAX];
    char mac[SF_NAMELIST_MAX];
};

/* What was negotiated in one key exchange. */
struct sf_negotiated {
    const struct sf_kex_method *kex;
    char hostkey_alg[SF_NAME_MAX + 1];
    const struct sf_cipher_info *cipher_ctos, *cipher_stoc;
    const struct sf_mac_info *mac_ctos, *mac_stoc; /* NULL for AEAD */
    int comp_ctos, comp_stoc; /* SF_COMP_* */
};

/* The options a connection uses (copied from sshflow_config). */
struct sshflow_config {
    struct sf_algs algs;
    int connect_timeout_ms;     /* whole handshake bound; <= 0: none */
    uint64_t rekey_bytes;       /* 0: default */
    uint64_t rekey_seconds;     /* 0: none */
    char *hostname;             /* for known_hosts when the flow has none */
    uint16_t port;
    size_t max_stderr;
    char auth_order[256];       /* PreferredAuthentications; "" = as the credentials were added */
    bool no_pubkey, no_password, no_kbdint; /* *Authentication no */
    bool compression;           /* Compression yes: offer SF_COMP_YES_LIST, else "none" */
};

void sf_config_defaults(struct sshflow_config *cfg);

/* ------------------------------------------------------------------------ */
/* Credentials and requests                                                 */
/* ------------------------------------------------------------------------ */

/* Credentials: struct sshflow_cred and its items are in cred.h. */

enum sf_req_kind { SF_REQ_EXEC = 1, SF_REQ_SHELL, SF_REQ_SUBSYSTEM };
struct sf_env {
    char *name, *value;
    struct sf_env *next;
};
struct sshflow_request {
    int kind;
    char *arg; /* command or subsystem */
    bool pty;
    char *term;
    uint32_t cols, rows;
    uint8_t *modes;
    size_t modes_len;
    struct sf_env *env;
};

/* ------------------------------------------------------------------------ */
/* Channel                                                                  */
/* ------------------------------------------------------------------------ */

enum sf_chan_state {
    SF_CHAN_OPENING = 1, /* CHANNEL_OPEN sent */
    SF_CHAN_OPEN,        /* confirmed */
    SF_CHAN_FAILED,      /* open refused */
    SF_CHAN_CLOSED,      /* both sides sent CLOSE */
};

struct sf_conn;

/* One session channel. All fields protected by conn->mu unless noted. */
struct sf_chan {
    struct sf_conn *conn;
    uint32_t local_id, remote_id;
    int state;
    uint32_t remote_window;  /* bytes we may still send */
    uint32_t remote_maxpkt;  /* max data per packet we may send */
    uint32_t local_window;   /* bytes the remote may still send us */
    struct sf_ring data;     /* stdout; capacity SF_CHAN_WINDOW */
    struct sf_ring ext;      /* stderr; capacity max_stderr */
    uint64_t ext_dropped;    /* stderr bytes dropped (buffer full) */
    size_t consumed;         /* bytes read by the application not yet re-opened in the window */
    bool eof_rcvd, close_rcvd;
    bool eof_sent, close_sent;
    bool close_replied; /* our CLOSE reply was handed to the send path */
    /* Replies to our channel requests with want_reply, in order. */
    int req_pending;  /* requests awaiting a reply */
    int req_success;  /* replies received: success */
    int req_failure;  /* replies received: failure */
    sshflow_exit exit; /* exit-status / exit-signal */
    bool aborted;      /* the channel flow was aborted: blocked calls return CLOSED */
    char open_fail[256]; /* reason text for SF_CHAN_FAILED */
    uint32_t open_fail_code;
};

/* ------------------------------------------------------------------------ */
/* Connection                                                               */
/* ------------------------------------------------------------------------ */

enum sf_phase {
    SF_PHASE_HANDSHAKE = 1, /* reader thread running the handshake */
    SF_PHASE_READY,         /* channel open and request accepted */
    SF_PHASE_DEAD,          /* error set or transport gone */
};

struct sf_conn {
    sshflow_flow *flow; /* the transport; read only by the reader thread */
    struct sshflow_config cfg;
    char *host;         /* for known_hosts; may be NULL */
    uint16_t port;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t send_mu;
    pthread_cond_t send_cv;
    pthread_mutex_t write_mu;
    pthread_t reader;
    bool reader_started;

    /* --- protected by mu --- */
    int phase;
    int err_code;        /* sticky first error (internal code), 0 if none */
    sshflow_error err;   /* its public detail */
    bool closing;        /* close() in progress: errors after remote close are fine */
    const char *step;    /* handshake step, for messages */
    bool hs_over;        /* the reader finished the handshake (well or not, DISCONNECT sent) */
    unsigned kex_done;   /* completed key exchanges */
    struct sf_chan *chan;
    char server_sig_algs[SF_NAMELIST_MAX]; /* from EXT_INFO */
    char desc[512];      /* negotiated algorithms, for sshflow_describe */
    uint64_t kex_done_ms; /* when the last key exchange completed (time-based re-key) */
    pthread_t helper;     /* helper thread: sends the reader's control messages, time-based re-key */
    bool helper_started;  /* pthread_create succeeded (joined at teardown) */
    bool helper_ready;    /* the helper is in its loop: the reader may hand it messages */
    bool ctl_pending;     /* the reader queued control messages for the helper */
    pthread_cond_t helper_cv; /* with mu: wakes the helper */

    /* --- owned by the reader thread (no lock) --- */
    char v_c[SF_VERSION_LINE_MAX + 1], v_s[SF_VERSION_LINE_MAX + 1]; /* without CR LF */
    struct sf_buf i_s;      /* server's KEXINIT payload of the current exchange */
    struct sf_negotiated neg;
    struct sf_kex_state *kex_st;
    struct sf_buf kex_cpub; /* our part of the hash as encoded: Q_C / C_INIT / e, or for
                               group exchange min || n || max || p || g || e */
    bool srv_kexinit;       /* server KEXINIT seen, its NEWKEYS not yet */
    int kex_wait;           /* message the kex expects next: 0 none, 31, 33 (GEX), 21 */
    bool kex_gex_group;     /* group exchange: kex_wait (31) is GEX_GROUP, not a reply */
    bool strict;            /* strict KEX negotiated */
    bool initial_kex;       /* in the first key exchange */
    bool skip_next;         /* first_kex_packet_follows with a wrong guess */
    uint8_t session_id[64];
    size_t session_id_len;
    uint8_t *hostkey_blob;  /* host key of the first exchange (re-keys must match) */
    size_t hostkey_len;
    struct sf_cipher *pending_rx; /* incoming keys, switched on NEWKEYS */
    const sshflow_hostauth *hostauth; /* valid during the handshake only */
    const sshflow_cred *cred;         /* valid during the handshake only */
    const sshflow_request *req;       /* valid during the handshake only */
    const char *user;                 /* valid during the handshake only */
    bool hs_in_callback;              /* mu: the reader waits for a user callback (prompt) */
    uint64_t hs_paused_ms;            /* mu: time spent in such callbacks (not counted
                                         against ConnectTimeout) */
    uint64_t kex_started_ms;          /* time of the last key exchange */
    bool authed;                      /* USERAUTH_SUCCESS arrived: zlib@openssh.com
                                         compresses from then on, and restarts with
                                         every later NEWKEYS */

    /* --- protected by ctl_mu (never held across I/O) --- */
    pthread_mutex_t ctl_mu;
    struct sf_buf deferred; /* control payloads not yet sent: u32 len || payload ... */
    atomic_bool failed;     /* an error was recorded: the next send_mu holder marks send_dead */

    /* --- protected by send_mu --- */
    struct sf_tp tp;             /* tx half under send_mu; rx half reader-owned */
    bool kex_active;             /* our KEXINIT sent, our NEWKEYS not yet */
    bool tx_rekeyable;           /* our first NEWKEYS went out: byte limits apply */
    bool peer_kex;               /* the server's KEXINIT arrived, its NEWKEYS not yet */
    struct sf_buf i_c;           /* our KEXINIT payload of the current exchange */
    struct sf_buf deferred_spare; /* swapped with deferred while flushing (send_mu) */
    bool send_dead;              /* transport write failed or DISCONNECT sent */
    struct sf_cipher *pending_tx; /* outgoing keys, switched when our NEWKEYS goes out */
};

/* conn.c */
SF_MUST_USE int sf_conn_new(struct sf_conn **out, sshflow_flow *flow,
                            const struct sshflow_config *cfg);
void sf_conn_free(struct sf_conn *c); /* reader must be joined */
/* Record the first error (sticky) and wake everyone. Takes mu. Returns code. */
int sf_conn_fail(struct sf_conn *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Record the error, then send DISCONNECT with reason (writers woken by it see the error). */
int sf_conn_fail_disconnect(struct sf_conn *c, uint32_t reason, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Same, with mu already held. */
int sf_conn_fail_locked(struct sf_conn *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Send one payload (message) built by the caller. kind:
 *   SF_SEND_KEX     part of the key exchange: always goes out at once.
 *   SF_SEND_DATA    waits while a key exchange runs (application threads).
 *   SF_SEND_CONTROL queued, in order, and sent by whichever thread holds or
 *                   next takes send_mu, after any key exchange: never waits,
 *                   not even for a writer blocked in the flow (the reader
 *                   thread uses it, so it can always go on reading).
 * Thread-safe (send_mu); the caller must not hold mu. Returns 0 or an error
 * (already recorded with sf_conn_fail).
 */
enum { SF_SEND_KEX = 1, SF_SEND_DATA, SF_SEND_CONTROL };
SF_MUST_USE int sf_conn_send(struct sf_conn *c, const uint8_t *payload, size_t len, int kind);
/*
 * Zero-copy form for channel data: build under send_mu directly into the
 * tx buffer. fill() writes the payload into b. Waits like SF_SEND_DATA.
 */
SF_MUST_USE int sf_conn_send_with(struct sf_conn *c,
                                  int (*fill)(void *arg, struct sf_buf *b), void *arg);

/* Send DISCONNECT (best effort) and mark the transport dead. */
void sf_conn_disconnect(struct sf_conn *c, uint32_t reason, const char *text);

/*
 * Read and decode the next packet (reader thread only; caller holds no
 * lock). Transport messages (kex, ignore, debug, unimplemented, disconnect,
 * ext-info, global requests) are handled inside and give 0, so callers can
 * re-check their conditions; any other message gives 1 with *type and *msg
 * (a view positioned after the type byte, valid until the next call); < 0
 * is an error, already recorded with sf_conn_fail.
 */
SF_MUST_USE int sf_conn_next(struct sf_conn *c, uint8_t *type, struct sf_buf *msg);
/* Version exchange (RFC 4253 s4.2), reader thread. */
SF_MUST_USE int sf_conn_version_exchange(struct sf_conn *c);
/* Record the handshake step (for timeout messages). */
void sf_conn_step(struct sf_conn *c, const char *step);

/* conn.c: build a packet with fill() and write it, no gating; send_mu held. */
SF_MUST_USE int sf_conn_write_packet_locked(struct sf_conn *c,
                                            int (*fill)(void *arg, struct sf_buf *b), void *arg);
/* conn.c: send the queued control messages (unless a key exchange runs); send_mu held. */
SF_MUST_USE int sf_conn_flush_deferred_locked(struct sf_conn *c);
/* conn.c: release send_mu, then send what was queued meanwhile. Use it for every unlock. */
void sf_conn_send_unlock(struct sf_conn *c);
/* kexproto.c: build and send our KEXINIT unless one is out; send_mu held. */
SF_MUST_USE int sf_kex_send_kexinit_locked(struct sf_conn *c);
/* kexproto.c: reader thread, after each packet: start a re-key when due. */
SF_MUST_USE int sf_kex_maybe_rekey(struct sf_conn *c);
/* kexproto.c: start a key exchange (send our KEXINIT) if none is running. Any thread. */
SF_MUST_USE int sf_kex_start(struct sf_conn *c);
/* kexproto.c: handle a key exchange message (20, 21, 30-49) on the reader thread. */
SF_MUST_USE int sf_kex_handle(struct sf_conn *c, uint8_t type, struct sf_buf *msg);
/* True if a rekey is due (bytes, packets or time). Caller holds send_mu. */
bool sf_kex_due(struct sf_conn *c);
/*
 * kexproto.c: USERAUTH_SUCCESS was just decoded (reader thread, before the
 * next packet is): start delayed compression (zlib@openssh.com) in each
 * direction that negotiated it, the send side under send_mu. Returns 0 or
 * an error already recorded with sf_conn_fail.
 */
SF_MUST_USE int sf_kex_comp_authenticated(struct sf_conn *c);

/* auth.c: user authentication on the reader thread during the handshake. */
SF_MUST_USE int sf_auth_run(struct sf_conn *c);

/* channel.c */
SF_MUST_USE int sf_chan_open_session(struct sf_conn *c);       /* reader thread, handshake */
/* Handle a channel message (reader thread; takes mu itself, sends after releasing it). */
SF_MUST_USE int sf_chan_dispatch(struct sf_conn *c, uint8_t type, struct sf_buf *msg);
SF_MUST_USE int sf_chan_make_flow(struct sf_conn *c, sshflow_flow **out);
/* Send env/pty and the main request, waiting for the replies (reader thread, handshake). */
SF_MUST_USE int sf_chan_send_requests(struct sf_conn *c);
/* Read and handle one message (reader thread): 0 or 1 on progress, < 0 on error. */
SF_MUST_USE int sf_chan_pump(struct sf_conn *c);

/* client.c: end the connection: DISCONNECT if graceful, abort the flow, join the reader. */
void sf_conn_teardown(struct sf_conn *c, bool graceful);

/* Log a diagnostic line (sshflow_set_log). */
void sf_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
