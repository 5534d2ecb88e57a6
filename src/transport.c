/*
 * src/transport.c -- the binary packet protocol (RFC 4253 s6): framing,
 * padding, sequence numbers, and handing packets to the cipher.
 *
 * Owns: the tx and rx packet buffers of one connection, and the per-direction
 * compression streams (RFC 4253 s6.2: the payload alone is compressed, before
 * padding and sealing; inflated after opening). Must never: do I/O, take
 * locks, interpret payloads, or decide when compression starts (kexproto.c).
 * It is pure: bytes in, packets out; payloads in, bytes out. The connection
 * (conn.c) wraps it with threads.
 */
#include "conn.h"

#include <string.h>

#include <openssl/rand.h>

#define TP_HDR 5 /* uint32 packet_length + byte padding_length */
/* Payload room in the tx buffer: the header before, the largest padding after. */
#define TP_PAYLOAD_ROOM (SF_PACKET_MAX - TP_HDR - 255)
_Static_assert(SF_COMP_BOUND(SF_TP_PLAIN_MAX) <= TP_PAYLOAD_ROOM,
               "a deflated payload must fit where a plain one goes");

int sf_tp_init(struct sf_tp *tp)
{
    memset(tp, 0, sizeof(*tp));
    tp->txbuf = sf_alloc(SF_TX_MAX);
    tp->rxbuf = sf_alloc(SF_RX_MAX);
    if (tp->txbuf == NULL || tp->rxbuf == NULL) {
        sf_tp_free(tp);
        return SF_ERR_NOMEM;
    }
    return 0;
}

void sf_tp_free(struct sf_tp *tp)
{
    sf_cipher_free(tp->tx.cipher);
    sf_cipher_free(tp->rx.cipher);
    sf_comp_free(tp->tx.comp);
    sf_comp_free(tp->rx.comp);
    sf_freezero(tp->txplain, SF_TP_PLAIN_MAX);
    sf_freezero(tp->rxplain, SF_PACKET_MAX);
    sf_freezero(tp->txbuf, SF_TX_MAX);
    sf_freezero(tp->rxbuf, SF_RX_MAX);
    memset(tp, 0, sizeof(*tp));
}

int sf_tp_comp_start(struct sf_tp *tp, bool tx)
{
    struct sf_tp_dir *d = tx ? &tp->tx : &tp->rx;
    uint8_t **plain = tx ? &tp->txplain : &tp->rxplain;
    struct sf_comp *z = NULL;
    int r;

    if ((r = sf_comp_new(&z, tx)) != 0) {
        return r;
    }
    if (*plain == NULL && (*plain = sf_alloc(tx ? SF_TP_PLAIN_MAX : SF_PACKET_MAX)) == NULL) {
        sf_comp_free(z);
        return SF_ERR_NOMEM;
    }
    sf_comp_free(d->comp);
    d->comp = z;
    return 0;
}

void sf_tp_comp_stop(struct sf_tp *tp, bool tx)
{
    struct sf_tp_dir *d = tx ? &tp->tx : &tp->rx;
    sf_comp_free(d->comp);
    d->comp = NULL;
}

void sf_tp_begin(struct sf_tp *tp, struct sf_buf *payload)
{
    /* With compression the payload is built aside and deflated into place by finish. */
    if (tp->tx.comp != NULL) {
        sf_buf_init_mem(payload, tp->txplain, SF_TP_PLAIN_MAX);
        return;
    }
    sf_buf_init_mem(payload, tp->txbuf + TP_HDR, TP_PAYLOAD_ROOM);
}

int sf_tp_finish(struct sf_tp *tp, struct sf_buf *payload, const uint8_t **wire,
                 size_t *wirelen)
{
    struct sf_tp_dir *d = &tp->tx;
    size_t plen = sf_buf_len(payload);
    size_t block = 8, taglen = 0, pad, covered;
    bool excl = false;
    int r;

    *wire = NULL;
    *wirelen = 0;
    if (d->comp != NULL) {
        /* RFC 4253 s6.2: only the payload is compressed; length, padding
         * and MAC cover the compressed form. */
        SF_ASSERT(sf_buf_ptr(payload) == tp->txplain);
        r = sf_comp_deflate(d->comp, tp->txplain, plen, tp->txbuf + TP_HDR, TP_PAYLOAD_ROOM,
                            &plen);
        sf_wipe(tp->txplain, sf_buf_len(payload)); /* may hold a password (zlib before auth) */
        if (r != 0) {
            return r;
        }
    } else {
        SF_ASSERT(sf_buf_ptr(payload) == tp->txbuf + TP_HDR);
    }
    if (d->cipher != NULL) {
        block = SF_MAX(sf_cipher_block_len(d->cipher), (size_t)8);
        taglen = sf_cipher_tag_len(d->cipher);
        excl = sf_cipher_len_excluded(d->cipher);
    }
    /* RFC 4253 s6: at least 4 bytes of padding, total a multiple of the block. */
    covered = (excl ? 1 : TP_HDR) + plen;
    pad = block - (covered % block);
    if (pad < 4) {
        pad += block;
    }
    size_t pktlen = 1 + plen + pad; /* value of packet_length */
    if (4 + pktlen + taglen > SF_TX_MAX || pktlen > SF_PACKET_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    sf_store_be32(tp->txbuf, (uint32_t)pktlen);
    tp->txbuf[4] = (uint8_t)pad;
    if (d->cipher != NULL) {
        if (RAND_bytes(tp->txbuf + TP_HDR + plen, (int)pad) != 1) {
            return SF_ERR_CRYPTO;
        }
        if ((r = sf_cipher_seal(d->cipher, d->seq, tp->txbuf, 4 + pktlen,
                                tp->txbuf + 4 + pktlen)) != 0) {
            return r;
        }
    } else {
        memset(tp->txbuf + TP_HDR + plen, 0, pad);
    }
    d->seq++;
    d->packets++;
    d->bytes += 4 + pktlen + taglen;
    *wire = tp->txbuf;
    *wirelen = 4 + pktlen + taglen;
    return 0;
}

/* Forget the packet handed out by the previous decode. */
static void drop_consumed(struct sf_tp *tp)
{
    if (tp->rxpkt > 0 && !tp->rxpeeked) {
        tp->rxoff += tp->rxpkt;
        tp->rxpkt = 0;
    }
}

size_t sf_tp_rx_room(struct sf_tp *tp, uint8_t **p)
{
    /* Drop the packet handed out last, then move the partial rest to the
     * front: at most one packet's bytes move per read. */
    drop_consumed(tp);
    if (tp->rxoff > 0) {
        memmove(tp->rxbuf, tp->rxbuf + tp->rxoff, tp->rxlen - tp->rxoff);
        tp->rxlen -= tp->rxoff;
        tp->rxoff = 0;
    }
    *p = tp->rxbuf + tp->rxlen;
    return SF_RX_MAX - tp->rxlen;
}

void sf_tp_rx_commit(struct sf_tp *tp, size_t n)
{
    SF_ASSERT(n <= SF_RX_MAX - tp->rxlen);
    tp->rxlen += n;
}


int sf_tp_decode(struct sf_tp *tp, struct sf_buf *payload)
{
    struct sf_tp_dir *d = &tp->rx;
    size_t first = 4, taglen = 0, block = 8;
    uint32_t pktlen = 0;
    int r;

    sf_buf_init_view(payload, NULL, 0);
    uint8_t *pkt;
    size_t avail;

    drop_consumed(tp);
    tp->rxinflate_failed = false;
    pkt = tp->rxbuf + tp->rxoff;
    avail = tp->rxlen - tp->rxoff;
    if (d->cipher != NULL) {
        first = sf_cipher_first_len(d->cipher);
        taglen = sf_cipher_tag_len(d->cipher);
        block = SF_MAX(sf_cipher_block_len(d->cipher), (size_t)8);
    }
    if (!tp->rxpeeked) {
        if (avail < first) {
            return 0;
        }
        if (d->cipher != NULL) {
            if ((r = sf_cipher_peek_len(d->cipher, d->seq, pkt, &pktlen)) != 0) {
                return r;
            }
        } else {
            pktlen = sf_load_be32(pkt);
        }
        /* RFC 4253 s6.1: bound the length before waiting for that many bytes. */
        if (pktlen > SF_PACKET_MAX || pktlen < 5) {
            return SF_ERR_TOO_LARGE;
        }
        tp->rxpkt = 4 + (size_t)pktlen + taglen;
        tp->rxpeeked = true;
    }
    if (avail < tp->rxpkt) {
        return 0;
    }
    pktlen = (uint32_t)(tp->rxpkt - 4 - taglen);
    if (d->cipher != NULL) {
        bool excl = sf_cipher_len_excluded(d->cipher);
        if ((r = sf_cipher_open(d->cipher, d->seq, pkt, 4 + pktlen, pkt + 4 + pktlen)) != 0) {
            return r;
        }
        if (((excl ? 0 : 4) + pktlen) % block != 0) {
            return SF_ERR_BAD_FORMAT;
        }
    } else if ((4 + pktlen) % block != 0) {
        return SF_ERR_BAD_FORMAT; /* RFC 4253 s6: a multiple of 8 even in the clear */
    }
    uint8_t padlen = pkt[4];
    if (padlen < 4 || (size_t)padlen + 1 > pktlen) {
        return SF_ERR_BAD_FORMAT;
    }
    size_t plen = pktlen - 1 - padlen;
    if (plen == 0) {
        return SF_ERR_BAD_FORMAT; /* every message has a type byte */
    }
    if (d->comp != NULL) {
        /* Bounded: a payload inflating beyond SF_PACKET_MAX is refused, not buffered. */
        size_t n = 0;
        if ((r = sf_comp_inflate(d->comp, pkt + TP_HDR, plen, tp->rxplain, SF_PACKET_MAX,
                                 &n)) != 0) {
            tp->rxinflate_failed = true;
            return r;
        }
        sf_buf_init_view(payload, tp->rxplain, n);
    } else {
        sf_buf_init_view(payload, pkt + TP_HDR, plen);
    }
    tp->rxpeeked = false; /* rxpkt stays: dropped on the next call */
    d->seq++;
    d->packets++;
    d->bytes += tp->rxpkt;
    return 1;
}
