/*
 * check/check_compress.c -- tests for src/compress.c (payload compression)
 * and its use by the packet layer (src/transport.c).
 *
 * Owns: the compression contract: names; round trips over one persistent
 * stream per direction (history carries over, every packet decodes on
 * arrival: partial flush); packets from other encoders (sync and full flush
 * as paramiko sends, and an independent RFC 1951 fixed-code encoder
 * written here); the inflate bound (a zlib bomb is refused without writing
 * past the bound; exactly the bound is fine); truncation at every byte and
 * corruption at every byte (refused, or decoded to the full payload when
 * the cut only dropped flush bits; never a crash or an overrun); a
 * finished stream, a bad block type, a distance too far back; deflate
 * output room; allocation failures; and through sf_tp: compressed packets,
 * the restart at a re-key on both sides (and the failure when only one
 * side restarts), a bomb in a packet, switching off; and a whole client
 * against the in-memory fake server (check/testlib/fakeserver.h)
 * compressing too: delayed and plain zlib, SUCCESS with compressed
 * messages in the same write, re-keys from both sides mid-transfer, a
 * bomb and exactly the limit end to end, the default offering none, a
 * server insisting on zlib, the client's order winning.
 * Must never: depend on timing or on zlib's exact deflate output (only the
 * zlib header and decoded results are checked; inflate vectors are fixed).
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "compress.h"
#include "conn.h"
#include "fakeserver.h"

#define KIB 1024

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Deterministic bytes: xorshift64* from a seed. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
    }
}

/* Compressible text: numbered log-like lines. */
static void fill_text(uint8_t *p, size_t n, unsigned seed)
{
    size_t i = 0;
    unsigned line = seed;
    while (i < n) {
        char tmp[96];
        int k = snprintf(tmp, sizeof(tmp), "%06u the quick brown fox jumps over the lazy dog %u\n",
                         line, line * 7919u % 1000u);
        for (int j = 0; j < k && i < n; j++) {
            p[i++] = (uint8_t)tmp[j];
        }
        line++;
    }
}

enum { KIND_TEXT, KIND_RANDOM, KIND_ZEROS, KIND_ONE_BYTE, KIND_MIXED, KIND_COUNT };

/* Payload number i of a kind into p; returns its length (<= cap). */
static size_t make_payload(int kind, unsigned i, uint8_t *p, size_t cap)
{
    size_t n = 0;
    switch (kind) {
    case KIND_TEXT:
        n = SF_MIN(cap, (size_t)(1 + (i * 7001u) % (40 * KIB)));
        fill_text(p, n, i);
        break;
    case KIND_RANDOM:
        n = SF_MIN(cap, (size_t)(1 + (i * 5003u) % (40 * KIB)));
        fill_random(p, n, i);
        break;
    case KIND_ZEROS:
        n = SF_MIN(cap, (size_t)(1 + (i * 9001u) % (64 * KIB)));
        memset(p, 0, n);
        break;
    case KIND_ONE_BYTE:
        n = 1;
        p[0] = (uint8_t)(94 + i);
        break;
    default: /* KIND_MIXED: text with random holes */
        n = SF_MIN(cap, (size_t)(100 + (i * 3001u) % (32 * KIB)));
        fill_text(p, n, i);
        fill_random(p + n / 3, n / 4, i + 1000);
        break;
    }
    return n;
}

static struct sf_comp *new_comp(bool tx)
{
    struct sf_comp *z = NULL;
    ck_assert_int_eq(sf_comp_new(&z, tx), 0);
    ck_assert_ptr_nonnull(z);
    return z;
}

/* Deflate with our stream into a fresh malloc'd buffer of sf_comp_bound(n). */
static uint8_t *deflate_packet(struct sf_comp *z, const uint8_t *in, size_t n, size_t *outlen)
{
    size_t cap = sf_comp_bound(n);
    uint8_t *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(sf_comp_deflate(z, in, n, out, cap, outlen), 0);
    ck_assert_uint_le(*outlen, cap);
    return out;
}

/* A raw zlib deflater for "the peer" (other flush modes, bombs). */
static void peer_init(z_stream *s)
{
    memset(s, 0, sizeof(*s));
    ck_assert_int_eq(deflateInit(s, 6), Z_OK);
}

/* One packet from the peer's stream with the given flush; malloc'd. */
static uint8_t *peer_packet(z_stream *s, const uint8_t *in, size_t n, int flush, size_t *outlen)
{
    size_t cap = n + n / 8 + 1024;
    uint8_t *out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    s->next_in = (Bytef *)(uintptr_t)in;
    s->avail_in = (uInt)n;
    s->next_out = out;
    s->avail_out = (uInt)cap;
    int zr = deflate(s, flush);
    ck_assert(zr == Z_OK || zr == Z_STREAM_END);
    ck_assert_uint_eq(s->avail_in, 0);
    ck_assert_uint_gt(s->avail_out, 0);
    *outlen = cap - s->avail_out;
    return out;
}

/* A zlib stream of n zero bytes in one partial-flushed packet (a bomb when n is big). */
static uint8_t *zeros_packet(size_t n, size_t *outlen)
{
    static const uint8_t zeros[64 * 1024];
    size_t cap = n / 512 + 4096, len = 0;
    uint8_t *out = malloc(cap);
    z_stream s;

    ck_assert_ptr_nonnull(out);
    peer_init(&s);
    while (n > 0) {
        size_t k = SF_MIN(n, sizeof(zeros));
        n -= k;
        s.next_in = (Bytef *)(uintptr_t)zeros;
        s.avail_in = (uInt)k;
        s.next_out = out + len;
        s.avail_out = (uInt)(cap - len);
        ck_assert_int_eq(deflate(&s, n == 0 ? Z_PARTIAL_FLUSH : Z_NO_FLUSH), Z_OK);
        ck_assert_uint_eq(s.avail_in, 0);
        ck_assert_uint_gt(s.avail_out, 0);
        len = cap - s.avail_out;
    }
    deflateEnd(&s);
    *outlen = len;
    return out;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_comp_alg_names)
{
    ck_assert_int_eq(sf_comp_alg_find("none", 4), SF_COMP_NONE);
    ck_assert_int_eq(sf_comp_alg_find("zlib", 4), SF_COMP_ZLIB);
    ck_assert_int_eq(sf_comp_alg_find("zlib@openssh.com", 16), SF_COMP_DELAYED);
    ck_assert_int_eq(sf_comp_alg_find("zlib@openssh.co", 15), -1);
    ck_assert_int_eq(sf_comp_alg_find("zlib@openssh.com", 4), SF_COMP_ZLIB); /* n counts */
    ck_assert_int_eq(sf_comp_alg_find("ZLIB", 4), -1);                       /* exact case */
    ck_assert_int_eq(sf_comp_alg_find("", 0), -1);
    ck_assert_str_eq(sf_comp_alg_name(SF_COMP_NONE), "none");
    ck_assert_str_eq(sf_comp_alg_name(SF_COMP_ZLIB), "zlib");
    ck_assert_str_eq(sf_comp_alg_name(SF_COMP_DELAYED), "zlib@openssh.com");
    ck_assert_str_eq(sf_comp_alg_name(99), "none");
    /* The offered lists name only what we implement, and "yes" prefers delayed. */
    ck_assert_str_eq(SF_COMP_YES_LIST, "zlib@openssh.com,zlib,none");
    ck_assert_str_eq(SF_COMP_NO_LIST, "none");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

/* 200 packets of one kind through one persistent stream each way. */
START_TEST(test_comp_roundtrip_kinds)
{
    struct sf_comp *tx = new_comp(true), *rx = new_comp(false);
    uint8_t *in = malloc(64 * KIB), *back = malloc(SF_PACKET_MAX);
    size_t total_in = 0, total_wire = 0;

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(back);
    for (unsigned i = 0; i < 200; i++) {
        size_t n = make_payload(_i, i, in, 64 * KIB), wl = 0, bl = 0;
        uint8_t *wire = deflate_packet(tx, in, n, &wl);
        if (i == 0) {
            /* RFC 1950 header: deflate, 32 KiB window, default level; FCHECK. */
            ck_assert_uint_ge(wl, 2);
            ck_assert_uint_eq(wire[0], 0x78);
            ck_assert_uint_eq(wire[1], 0x9c);
        }
        /* Decoded on arrival, before the sender deflates the next one. */
        ck_assert_int_eq(sf_comp_inflate(rx, wire, wl, back, SF_PACKET_MAX, &bl), 0);
        ck_assert_uint_eq(bl, n);
        ck_assert_mem_eq(back, in, n);
        total_in += n;
        total_wire += wl;
        free(wire);
    }
    if (_i == KIND_TEXT || _i == KIND_ZEROS) {
        ck_assert_msg(total_wire * 4 < total_in, "compressible data: %zu -> %zu", total_in,
                      total_wire);
    }
    if (_i == KIND_RANDOM) {
        ck_assert_uint_le(total_wire, sf_comp_bound(total_in));
    }
    sf_comp_free(tx);
    sf_comp_free(rx);
    free(in);
    free(back);
}
END_TEST

/* The history persists: the same packet again costs a few bytes. */
START_TEST(test_comp_stream_persists)
{
    struct sf_comp *tx = new_comp(true), *rx = new_comp(false);
    uint8_t in[4000], back[8000];
    size_t w1 = 0, w2 = 0, bl = 0;

    fill_random(in, sizeof(in), 7); /* incompressible by itself */
    uint8_t *p1 = deflate_packet(tx, in, sizeof(in), &w1);
    uint8_t *p2 = deflate_packet(tx, in, sizeof(in), &w2);
    ck_assert_uint_ge(w1, sizeof(in));
    ck_assert_msg(w2 < 64, "second identical packet took %zu bytes", w2);
    ck_assert_int_eq(sf_comp_inflate(rx, p1, w1, back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, sizeof(in));
    ck_assert_int_eq(sf_comp_inflate(rx, p2, w2, back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, sizeof(in));
    ck_assert_mem_eq(back, in, sizeof(in));
    /* A fresh inflater cannot read packet 2 alone: it refers to packet 1. */
    struct sf_comp *fresh = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(fresh, p2, w2, back, sizeof(back), &bl), SF_ERR_BAD_FORMAT);
    sf_comp_free(fresh);
    free(p1);
    free(p2);
    sf_comp_free(tx);
    sf_comp_free(rx);
}
END_TEST

/*
 * Fixed inflate vectors: "hello" twice on one stream, partial-flushed
 * (the second packet is a back-reference into the first, and carries the
 * first's leftover flush bits).
 */
START_TEST(test_comp_inflate_vectors)
{
    static const uint8_t p1[] = {0x78, 0x9c, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x08};
    static const uint8_t p2[] = {0xa0, 0x0c, 0x10, 0x01, 0x10};
    struct sf_comp *rx = new_comp(false);
    uint8_t back[64];
    size_t bl = 0;

    ck_assert_int_eq(sf_comp_inflate(rx, p1, sizeof(p1), back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, 5);
    ck_assert_mem_eq(back, "hello", 5);
    ck_assert_int_eq(sf_comp_inflate(rx, p2, sizeof(p2), back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, 5);
    ck_assert_mem_eq(back, "hello", 5);
    sf_comp_free(rx);
}
END_TEST

/* Independent RFC 1951 encoder: fixed Huffman codes, literals only. */
struct bits {
    uint8_t b[256];
    size_t nbits;
};

static void put_bit(struct bits *w, unsigned bit)
{
    if (bit) {
        w->b[w->nbits / 8] |= (uint8_t)(1u << (w->nbits % 8));
    }
    w->nbits++;
}

/* Header fields go LSB first; Huffman codes MSB first (RFC 1951 s3.1.1). */
static void put_lsb(struct bits *w, unsigned v, int n)
{
    for (int i = 0; i < n; i++) {
        put_bit(w, (v >> i) & 1u);
    }
}
static void put_code(struct bits *w, unsigned code, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        put_bit(w, (code >> i) & 1u);
    }
}

/*
 * RFC 1951 s3.2.6: literal 0..143 -> 8 bits 00110000 + v; 144..255 -> 9 bits
 * 110010000 + (v - 144); 256 (end of block) -> 7 zero bits.
 */
static void put_fixed_block(struct bits *w, const uint8_t *lit, size_t n)
{
    put_lsb(w, 0, 1); /* BFINAL 0 */
    put_lsb(w, 1, 2); /* BTYPE 01: fixed codes */
    for (size_t i = 0; i < n; i++) {
        if (lit[i] < 144) {
            put_code(w, 0x30u + lit[i], 8);
        } else {
            put_code(w, 0x190u + (lit[i] - 144u), 9);
        }
    }
    put_code(w, 0, 7); /* end of block */
}

START_TEST(test_comp_inflate_independent_encoder)
{
    static const uint8_t msg[] = {0x5e, 0x00, 0x00, 0x00, 0x01, 0xff, 0x90, 'h', 'i', 0x8f};
    struct bits w;
    struct sf_comp *rx = new_comp(false);
    uint8_t back[64];
    size_t bl = 0;

    memset(&w, 0, sizeof(w));
    /* RFC 1950: CMF 0x78, FLG 0x01 (fastest level, FCHECK: 0x7801 % 31 == 0). */
    put_lsb(&w, 0x78, 8);
    put_lsb(&w, 0x01, 8);
    put_fixed_block(&w, msg, sizeof(msg));
    put_fixed_block(&w, NULL, 0); /* the partial flush's empty block */
    ck_assert_int_eq(sf_comp_inflate(rx, w.b, (w.nbits + 7) / 8, back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, sizeof(msg));
    ck_assert_mem_eq(back, msg, sizeof(msg));
    sf_comp_free(rx);

    /* Without the flush: the data block is complete, and that is all that counts. */
    memset(&w, 0, sizeof(w));
    put_lsb(&w, 0x78, 8);
    put_lsb(&w, 0x01, 8);
    put_fixed_block(&w, msg, sizeof(msg));
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, w.b, (w.nbits + 7) / 8, back, sizeof(back), &bl), 0);
    ck_assert_uint_eq(bl, sizeof(msg));
    sf_comp_free(rx);

    /* Cut before the end-of-block code: output from an unfinished block. */
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, w.b, (w.nbits - 7) / 8, back, sizeof(back), &bl),
                     SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(bl, 0);
    sf_comp_free(rx);
}
END_TEST

/* Sync flush (Dropbear) and full flush (paramiko) packets decode too. */
START_TEST(test_comp_inflate_other_flushes)
{
    static const int flushes[] = {Z_SYNC_FLUSH, Z_FULL_FLUSH, Z_PARTIAL_FLUSH};
    z_stream peer;
    struct sf_comp *rx = new_comp(false);
    uint8_t in[3000], back[4000];

    peer_init(&peer);
    for (unsigned i = 0; i < 30; i++) {
        size_t n = 1 + (i * 397u) % sizeof(in), wl = 0, bl = 0;
        fill_text(in, n, i);
        uint8_t *wire = peer_packet(&peer, in, n, flushes[i % 3], &wl);
        ck_assert_int_eq(sf_comp_inflate(rx, wire, wl, back, sizeof(back), &bl), 0);
        ck_assert_uint_eq(bl, n);
        ck_assert_mem_eq(back, in, n);
        free(wire);
    }
    deflateEnd(&peer);
    sf_comp_free(rx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The inflate bound                                                        */
/* ------------------------------------------------------------------------ */

#define GUARD 64

/* Inflate into a buffer of exactly max bytes followed by a guard. */
static int inflate_guarded(const uint8_t *p, size_t n, size_t max, size_t *outlen)
{
    struct sf_comp *rx = new_comp(false);
    uint8_t *out = malloc(max + GUARD);
    ck_assert_ptr_nonnull(out);
    memset(out + max, 0xA5, GUARD);
    int r = sf_comp_inflate(rx, p, n, out, max, outlen);
    for (size_t i = 0; i < GUARD; i++) {
        ck_assert_msg(out[max + i] == 0xA5, "wrote past the bound at +%zu", i);
    }
    sf_comp_free(rx);
    free(out);
    return r;
}

START_TEST(test_comp_inflate_bound_exact)
{
    size_t wl = 0, bl = 0;
    uint8_t *p = zeros_packet(SF_PACKET_MAX, &wl);
    ck_assert_int_eq(inflate_guarded(p, wl, SF_PACKET_MAX, &bl), 0);
    ck_assert_uint_eq(bl, SF_PACKET_MAX);
    free(p);
}
END_TEST

START_TEST(test_comp_inflate_bound_plus_one)
{
    size_t wl = 0, bl = 99;
    uint8_t *p = zeros_packet(SF_PACKET_MAX + 1, &wl);
    ck_assert_int_eq(inflate_guarded(p, wl, SF_PACKET_MAX, &bl), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(bl, 0);
    free(p);
}
END_TEST

/* A zlib bomb: 64 MiB of zeros in about 64 KiB; refused at the bound. */
START_TEST(test_comp_inflate_bomb)
{
    size_t wl = 0, bl = 99;
    uint8_t *p = zeros_packet((size_t)64 * KIB * KIB, &wl);
    ck_assert_msg(wl < SF_PACKET_MAX, "the bomb fits one packet (%zu bytes)", wl);
    ck_assert_int_eq(inflate_guarded(p, wl, SF_PACKET_MAX, &bl), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(bl, 0);
    /* With a small bound too. */
    ck_assert_int_eq(inflate_guarded(p, wl, 100, &bl), SF_ERR_TOO_LARGE);
    free(p);
}
END_TEST

/* The bound counts output of the whole packet, also when spread over blocks. */
START_TEST(test_comp_inflate_bound_small)
{
    static const uint8_t p1[] = {0x78, 0x9c, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x08};
    size_t bl = 0;
    ck_assert_int_eq(inflate_guarded(p1, sizeof(p1), 5, &bl), 0);
    ck_assert_uint_eq(bl, 5);
    ck_assert_int_eq(inflate_guarded(p1, sizeof(p1), 4, &bl), SF_ERR_TOO_LARGE);
    ck_assert_int_eq(inflate_guarded(p1, sizeof(p1), 1, &bl), SF_ERR_TOO_LARGE);
    ck_assert_int_eq(inflate_guarded(p1, sizeof(p1), 0, &bl), SF_ERR_TOO_LARGE);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Truncated and corrupt input                                              */
/* ------------------------------------------------------------------------ */

/* Two packets of one stream: a first (with the zlib header) and a second. */
static uint8_t trunc_in1[600], trunc_in2[900];
static uint8_t *trunc_p1, *trunc_p2;
static size_t trunc_w1, trunc_w2;

static void make_trunc_packets(void)
{
    struct sf_comp *tx = NULL;
    if (trunc_p1 != NULL) {
        return;
    }
    fill_text(trunc_in1, sizeof(trunc_in1), 3);
    fill_text(trunc_in2, sizeof(trunc_in2), 11);
    if (sf_comp_new(&tx, true) != 0) {
        abort();
    }
    trunc_p1 = malloc(sf_comp_bound(sizeof(trunc_in1)));
    trunc_p2 = malloc(sf_comp_bound(sizeof(trunc_in2)));
    if (trunc_p1 == NULL || trunc_p2 == NULL ||
        sf_comp_deflate(tx, trunc_in1, sizeof(trunc_in1), trunc_p1,
                        sf_comp_bound(sizeof(trunc_in1)), &trunc_w1) != 0 ||
        sf_comp_deflate(tx, trunc_in2, sizeof(trunc_in2), trunc_p2,
                        sf_comp_bound(sizeof(trunc_in2)), &trunc_w2) != 0) {
        abort();
    }
    sf_comp_free(tx);
}

/*
 * A cut anywhere is refused, except a cut that only drops bits of the
 * flush's empty block (the last byte at most): then the payload is whole.
 */
static void check_cut(int r, size_t bl, const uint8_t *back, const uint8_t *want, size_t wantlen,
                      size_t cut, size_t full)
{
    if (r == 0) {
        ck_assert_msg(cut + 1 == full, "cut at %zu of %zu accepted", cut, full);
        ck_assert_uint_eq(bl, wantlen);
        ck_assert_mem_eq(back, want, wantlen);
    } else {
        ck_assert_int_eq(r, SF_ERR_BAD_FORMAT);
        ck_assert_uint_eq(bl, 0);
    }
}

START_TEST(test_comp_inflate_truncated_first)
{
    size_t cut = (size_t)_i, bl = 0;
    uint8_t back[2048];

    make_trunc_packets();
    if (cut >= trunc_w1) {
        return;
    }
    struct sf_comp *rx = new_comp(false);
    int r = sf_comp_inflate(rx, trunc_p1, cut, back, sizeof(back), &bl);
    check_cut(r, bl, back, trunc_in1, sizeof(trunc_in1), cut, trunc_w1);
    if (r != 0) {
        /* Broken for good. */
        ck_assert_int_eq(sf_comp_inflate(rx, trunc_p1, trunc_w1, back, sizeof(back), &bl),
                         SF_ERR_INTERNAL);
    }
    sf_comp_free(rx);
}
END_TEST

START_TEST(test_comp_inflate_truncated_second)
{
    size_t cut = (size_t)_i, bl = 0;
    uint8_t back[2048];

    make_trunc_packets();
    if (cut >= trunc_w2) {
        return;
    }
    struct sf_comp *rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, trunc_p1, trunc_w1, back, sizeof(back), &bl), 0);
    int r = sf_comp_inflate(rx, trunc_p2, cut, back, sizeof(back), &bl);
    check_cut(r, bl, back, trunc_in2, sizeof(trunc_in2), cut, trunc_w2);
    sf_comp_free(rx);
}
END_TEST

/*
 * Every byte of both packets flipped in turn (three patterns): an error,
 * or some output within the bound; never a crash (the sanitizer builds
 * watch for overruns). Corrupting the zlib header is always refused.
 */
START_TEST(test_comp_inflate_corrupt_every_byte)
{
    static const uint8_t pats[] = {0x01, 0x80, 0xff};
    size_t pos = (size_t)_i, bl = 0;
    uint8_t back[2048];

    make_trunc_packets();
    if (pos >= trunc_w1 + trunc_w2) {
        return;
    }
    for (size_t k = 0; k < sizeof(pats); k++) {
        uint8_t *a = malloc(trunc_w1), *b = malloc(trunc_w2);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        memcpy(a, trunc_p1, trunc_w1);
        memcpy(b, trunc_p2, trunc_w2);
        if (pos < trunc_w1) {
            a[pos] ^= pats[k];
        } else {
            b[pos - trunc_w1] ^= pats[k];
        }
        struct sf_comp *rx = new_comp(false);
        int r = sf_comp_inflate(rx, a, trunc_w1, back, sizeof(trunc_in1) + 64, &bl);
        if (pos < 2) {
            ck_assert_int_eq(r, SF_ERR_BAD_FORMAT);
        }
        if (r == 0) {
            ck_assert_uint_le(bl, sizeof(trunc_in1) + 64);
            r = sf_comp_inflate(rx, b, trunc_w2, back, sizeof(back), &bl);
            ck_assert(r == 0 || r == SF_ERR_BAD_FORMAT || r == SF_ERR_TOO_LARGE);
        } else {
            ck_assert(r == SF_ERR_BAD_FORMAT || r == SF_ERR_TOO_LARGE);
        }
        sf_comp_free(rx);
        free(a);
        free(b);
    }
}
END_TEST

/* Hand-made bad streams. */
START_TEST(test_comp_inflate_bad_streams)
{
    /* Block type 11 (reserved). */
    static const uint8_t badtype[] = {0x78, 0x9c, 0x06, 0x00};
    /* Fixed block: literal 'a', then length 3 distance 4 with only 1 byte of history. */
    struct bits w;
    uint8_t back[64];
    size_t bl = 0;
    struct sf_comp *rx = new_comp(false);

    ck_assert_int_eq(sf_comp_inflate(rx, badtype, sizeof(badtype), back, sizeof(back), &bl),
                     SF_ERR_BAD_FORMAT);
    sf_comp_free(rx);

    memset(&w, 0, sizeof(w));
    put_lsb(&w, 0x78, 8);
    put_lsb(&w, 0x01, 8);
    put_lsb(&w, 0, 1);
    put_lsb(&w, 1, 2);
    put_code(&w, 0x30u + 'a', 8);
    put_code(&w, 1, 7);      /* length code 257: length 3 */
    put_code(&w, 3, 5);      /* distance code 3: distance 4 */
    put_code(&w, 0, 7);      /* end of block */
    put_fixed_block(&w, NULL, 0);
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, w.b, (w.nbits + 7) / 8, back, sizeof(back), &bl),
                     SF_ERR_BAD_FORMAT);
    sf_comp_free(rx);

    /* Wrong header check bits. */
    static const uint8_t badhdr[] = {0x78, 0x9d, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x08};
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, badhdr, sizeof(badhdr), back, sizeof(back), &bl),
                     SF_ERR_BAD_FORMAT);
    sf_comp_free(rx);

    /* A preset dictionary (FDICT): not in SSH. */
    static const uint8_t dict[] = {0x78, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00};
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, dict, sizeof(dict), back, sizeof(back), &bl),
                     SF_ERR_BAD_FORMAT);
    sf_comp_free(rx);
}
END_TEST

/* The peer finished its stream (Z_FINISH): the packet is refused. */
START_TEST(test_comp_inflate_stream_end)
{
    z_stream peer;
    uint8_t back[64];
    size_t wl = 0, bl = 0;
    struct sf_comp *rx = new_comp(false);

    peer_init(&peer);
    uint8_t *p = peer_packet(&peer, (const uint8_t *)"hello", 5, Z_FINISH, &wl);
    ck_assert_int_eq(sf_comp_inflate(rx, p, wl, back, sizeof(back), &bl), SF_ERR_BAD_FORMAT);
    deflateEnd(&peer);
    free(p);
    sf_comp_free(rx);
}
END_TEST

/* A packet of flush bits only carries no message. */
START_TEST(test_comp_inflate_empty_result)
{
    z_stream peer;
    uint8_t back[64];
    size_t w1 = 0, w2 = 0, bl = 0;
    struct sf_comp *rx = new_comp(false);

    peer_init(&peer);
    uint8_t *p1 = peer_packet(&peer, (const uint8_t *)"x", 1, Z_SYNC_FLUSH, &w1);
    uint8_t *p2 = peer_packet(&peer, NULL, 0, Z_FULL_FLUSH, &w2);
    ck_assert_uint_gt(w2, 0);
    ck_assert_int_eq(sf_comp_inflate(rx, p1, w1, back, sizeof(back), &bl), 0);
    ck_assert_int_eq(sf_comp_inflate(rx, p2, w2, back, sizeof(back), &bl), SF_ERR_BAD_FORMAT);
    deflateEnd(&peer);
    free(p1);
    free(p2);
    sf_comp_free(rx);
    /* Zero bytes in: nothing out, refused. */
    rx = new_comp(false);
    ck_assert_int_eq(sf_comp_inflate(rx, back, 0, back, sizeof(back), &bl), SF_ERR_BAD_FORMAT);
    sf_comp_free(rx);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Deflate side                                                             */
/* ------------------------------------------------------------------------ */

/* Incompressible payloads of awkward sizes fit sf_comp_bound, packet after packet. */
START_TEST(test_comp_deflate_bound_random)
{
    static const size_t sizes[] = {1, 2, 255, 4096, 16383, 16384, 16385, 32768, 65535, 65536,
                                   65537, 100000, SF_TP_PLAIN_MAX};
    struct sf_comp *tx = new_comp(true), *rx = new_comp(false);
    uint8_t *in = malloc(SF_TP_PLAIN_MAX), *back = malloc(SF_PACKET_MAX);

    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(back);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t wl = 0, bl = 0;
        fill_random(in, sizes[i], 100 + i);
        uint8_t *wire = deflate_packet(tx, in, sizes[i], &wl);
        ck_assert_int_eq(sf_comp_inflate(rx, wire, wl, back, SF_PACKET_MAX, &bl), 0);
        ck_assert_uint_eq(bl, sizes[i]);
        ck_assert_mem_eq(back, in, sizes[i]);
        free(wire);
    }
    free(in);
    free(back);
    sf_comp_free(tx);
    sf_comp_free(rx);
}
END_TEST

START_TEST(test_comp_deflate_errors)
{
    struct sf_comp *tx = new_comp(true), *rx = new_comp(false);
    uint8_t in[2000], out[4096];
    size_t wl = 99;

    fill_random(in, sizeof(in), 1);
    ck_assert_int_eq(sf_comp_deflate(tx, in, 0, out, sizeof(out), &wl), SF_ERR_INVALID);
    ck_assert_uint_eq(wl, 0);
    /* Wrong direction. */
    ck_assert_int_eq(sf_comp_deflate(rx, in, 1, out, sizeof(out), &wl), SF_ERR_INTERNAL);
    ck_assert_int_eq(sf_comp_inflate(tx, out, 1, in, sizeof(in), &wl), SF_ERR_INTERNAL);
    /* Too little room: refused, and the stream is done for. */
    ck_assert_int_eq(sf_comp_deflate(tx, in, sizeof(in), out, 100, &wl), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(wl, 0);
    ck_assert_int_eq(sf_comp_deflate(tx, in, 1, out, sizeof(out), &wl), SF_ERR_INTERNAL);
    sf_comp_free(tx);
    sf_comp_free(rx);
    sf_comp_free(NULL);
}
END_TEST

/* Allocation failures at every step of set-up and first use: NOMEM, no leak. */
START_TEST(test_comp_alloc_failures)
{
    bool tx = _i % 2 == 0;
    unsigned long nth = (unsigned long)_i / 2 + 1;
    struct sf_comp *z = NULL;
    uint8_t in[300], out[1024];
    size_t n = 0;

    fill_text(in, sizeof(in), 5);
    sf_alloc_fail_after(nth);
    int r = sf_comp_new(&z, tx);
    if (r == 0) {
        ck_assert_ptr_nonnull(z);
        if (tx) {
            r = sf_comp_deflate(z, in, sizeof(in), out, sizeof(out), &n);
        } else {
            static const uint8_t p1[] = {0x78, 0x9c, 0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x08};
            r = sf_comp_inflate(z, p1, sizeof(p1), out, sizeof(out), &n);
        }
        ck_assert(r == 0 || r == SF_ERR_NOMEM);
        sf_comp_free(z);
    } else {
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(z);
    }
    sf_alloc_fail_after(0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Through the packet layer                                                 */
/* ------------------------------------------------------------------------ */

/* Two packet layers: a's tx feeds b's rx. */
struct tp_pair {
    struct sf_tp a, b;
};

static void pair_init(struct tp_pair *p)
{
    ck_assert_int_eq(sf_tp_init(&p->a), 0);
    ck_assert_int_eq(sf_tp_init(&p->b), 0);
}

static void pair_free(struct tp_pair *p)
{
    sf_tp_free(&p->a);
    sf_tp_free(&p->b);
}

/* Send payload from a, returning the wire length. */
static size_t tp_send(struct sf_tp *a, const uint8_t *payload, size_t n, uint8_t *wirecopy,
                      size_t wirecap)
{
    struct sf_buf b;
    const uint8_t *wire = NULL;
    size_t wl = 0;

    sf_tp_begin(a, &b);
    ck_assert_int_eq(sf_buf_put_bytes(&b, payload, n), 0);
    ck_assert_int_eq(sf_tp_finish(a, &b, &wire, &wl), 0);
    ck_assert_uint_le(wl, wirecap);
    memcpy(wirecopy, wire, wl);
    return wl;
}

/* Feed wire bytes into b and decode one packet. */
static int tp_recv(struct sf_tp *b, const uint8_t *wire, size_t wl, struct sf_buf *payload)
{
    uint8_t *room = NULL;
    size_t n = sf_tp_rx_room(b, &room);
    ck_assert_uint_ge(n, wl);
    memcpy(room, wire, wl);
    sf_tp_rx_commit(b, wl);
    return sf_tp_decode(b, payload);
}

static uint8_t tp_wire[SF_TX_MAX];

/* Send and expect the same payload out. */
static size_t tp_roundtrip(struct tp_pair *p, const uint8_t *payload, size_t n)
{
    struct sf_buf got;
    size_t wl = tp_send(&p->a, payload, n, tp_wire, sizeof(tp_wire));
    ck_assert_int_eq(tp_recv(&p->b, tp_wire, wl, &got), 1);
    ck_assert_uint_eq(sf_buf_len(&got), n);
    ck_assert_mem_eq(sf_buf_ptr(&got), payload, n);
    return wl;
}

START_TEST(test_tp_comp_roundtrip)
{
    struct tp_pair p;
    uint8_t *pl = malloc(SF_TP_PLAIN_MAX + 1);

    ck_assert_ptr_nonnull(pl);
    pair_init(&p);
    /* Clear first, then compressed from the switch on. */
    fill_text(pl, 3000, 1);
    size_t clear = tp_roundtrip(&p, pl, 3000);
    ck_assert_uint_gt(clear, 3000);
    ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    size_t packed = tp_roundtrip(&p, pl, 3000);
    ck_assert_msg(packed < 1500, "3000 bytes of text took %zu on the wire", packed);
    /* The first compressed payload starts with the zlib header (after length, padding length). */
    ck_assert_uint_eq(tp_wire[5], 0x78);
    for (unsigned i = 0; i < 50; i++) {
        size_t n = make_payload(i % KIND_COUNT, i, pl, 40 * KIB);
        tp_roundtrip(&p, pl, n);
    }
    /* The largest payload we send, incompressible, still makes a packet. */
    fill_random(pl, SF_TP_PLAIN_MAX, 9);
    tp_roundtrip(&p, pl, SF_TP_PLAIN_MAX);
    /* And one byte more does not fit the writer. */
    struct sf_buf b;
    sf_tp_begin(&p.a, &b);
    ck_assert_int_eq(sf_buf_put_bytes(&b, pl, SF_TP_PLAIN_MAX + 1), SF_ERR_NO_SPACE);
    pair_free(&p);
    free(pl);
}
END_TEST

/* A re-key restarts both streams (RFC 4253 s6.2, OpenSSH): fresh header, still in step. */
START_TEST(test_tp_comp_restart_both)
{
    struct tp_pair p;
    uint8_t pl[5000];

    pair_init(&p);
    ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    for (unsigned round = 0; round < 4; round++) {
        fill_text(pl, sizeof(pl), round);
        tp_roundtrip(&p, pl, sizeof(pl));
        ck_assert_uint_eq(tp_wire[5], 0x78); /* each stream's first packet */
        ck_assert_uint_eq(tp_wire[6], 0x9c);
        tp_roundtrip(&p, pl, sizeof(pl));
        tp_roundtrip(&p, pl, 10);
        ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
        ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    }
    pair_free(&p);
}
END_TEST

/* If only the sender restarts, the receiver fails cleanly (and says it was inflation). */
START_TEST(test_tp_comp_restart_one_side)
{
    struct tp_pair p;
    struct sf_buf got;
    uint8_t pl[5000];

    pair_init(&p);
    ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    fill_text(pl, sizeof(pl), 1);
    tp_roundtrip(&p, pl, sizeof(pl));
    ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
    size_t wl = tp_send(&p.a, pl, sizeof(pl), tp_wire, sizeof(tp_wire));
    int r = tp_recv(&p.b, tp_wire, wl, &got);
    ck_assert_int_lt(r, 0);
    ck_assert(p.b.rxinflate_failed);
    pair_free(&p);
}
END_TEST

/* A peer packet whose payload inflates beyond SF_PACKET_MAX is refused. */
START_TEST(test_tp_comp_bomb)
{
    struct tp_pair p;
    struct sf_buf got;
    size_t zl = 0;

    pair_init(&p);
    /* The peer's packet carries a hand-made compressed payload: send it clear from a. */
    uint8_t *bomb = zeros_packet((size_t)64 * KIB * KIB, &zl);
    ck_assert_uint_lt(zl, SF_TP_PLAIN_MAX);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    size_t wl = tp_send(&p.a, bomb, zl, tp_wire, sizeof(tp_wire));
    ck_assert_int_eq(tp_recv(&p.b, tp_wire, wl, &got), SF_ERR_TOO_LARGE);
    ck_assert(p.b.rxinflate_failed);
    free(bomb);
    pair_free(&p);

    /* Exactly SF_PACKET_MAX inflated is accepted. */
    pair_init(&p);
    bomb = zeros_packet(SF_PACKET_MAX, &zl);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    wl = tp_send(&p.a, bomb, zl, tp_wire, sizeof(tp_wire));
    ck_assert_int_eq(tp_recv(&p.b, tp_wire, wl, &got), 1);
    ck_assert_uint_eq(sf_buf_len(&got), SF_PACKET_MAX);
    ck_assert(!p.b.rxinflate_failed);
    free(bomb);
    pair_free(&p);
}
END_TEST

/* Switching off (a re-key to "none") goes back to clear payloads. */
START_TEST(test_tp_comp_stop)
{
    struct tp_pair p;
    uint8_t pl[3000];

    pair_init(&p);
    fill_text(pl, sizeof(pl), 4);
    ck_assert_int_eq(sf_tp_comp_start(&p.a, true), 0);
    ck_assert_int_eq(sf_tp_comp_start(&p.b, false), 0);
    ck_assert_uint_lt(tp_roundtrip(&p, pl, sizeof(pl)), sizeof(pl));
    sf_tp_comp_stop(&p.a, true);
    sf_tp_comp_stop(&p.b, false);
    ck_assert_ptr_null(p.a.tx.comp);
    ck_assert_ptr_null(p.b.rx.comp);
    ck_assert_uint_gt(tp_roundtrip(&p, pl, sizeof(pl)), sizeof(pl));
    ck_assert_mem_eq(tp_wire + 5, pl, sizeof(pl)); /* in the clear */
    sf_tp_comp_stop(&p.a, true); /* twice is fine */
    pair_free(&p);
}
END_TEST

/* Start fails cleanly under allocation failure: the direction stays as it was. */
START_TEST(test_tp_comp_start_nomem)
{
    struct sf_tp tp;
    bool tx = _i % 2 == 0;
    int r;

    ck_assert_int_eq(sf_tp_init(&tp), 0);
    sf_alloc_fail_after((unsigned long)_i / 2 + 1);
    r = sf_tp_comp_start(&tp, tx);
    sf_alloc_fail_after(0);
    if (r == 0) {
        ck_assert_ptr_nonnull(tx ? tp.tx.comp : tp.rx.comp);
    } else {
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(tx ? tp.tx.comp : tp.rx.comp);
    }
    sf_tp_free(&tp);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A whole client against the fake server                                   */
/* ------------------------------------------------------------------------ */

static struct fs_keys keys;
static bool keys_ok;

#define UP_LEN (300 * 1024 + 11)
#define DOWN_LEN (700 * 1024 + 5)

struct sess {
    int rekeys;        /* server-started re-keys between pieces of the download */
    size_t bomb;       /* > 0: send a payload inflating to this many zeros instead */
};

static int session_comp(struct fs *fs, void *user)
{
    const struct sess *ss = user;
    int r = -1;

    if (ss->bomb > 0) {
        if (fs_send_inflating_zeros(fs, ss->bomb) != 0) {
            return -1;
        }
        if (ss->bomb <= SF_PACKET_MAX) {
            /* Within the limit: an unknown message 0 the client answers, then on. */
            return fs_read_until_eof(fs) == 0 ? fs_end_session(fs, 0) : -1;
        }
        return fs_read_until_eof(fs); /* the client disconnects */
    }
    uint8_t *down = malloc(DOWN_LEN);
    if (down == NULL) {
        return fs_fail(fs, "out of memory");
    }
    fill_text(down, DOWN_LEN, 77);
    fill_random(down + DOWN_LEN / 2, 50 * 1024, 78);
    if (fs_read_until_eof(fs) != 0) {
        goto out;
    }
    size_t piece = DOWN_LEN / (size_t)(ss->rekeys + 1), off = 0;
    for (int i = 0; i <= ss->rekeys; i++) {
        size_t n = i == ss->rekeys ? DOWN_LEN - off : piece;
        if (fs_data(fs, down + off, n) != 0 || (i < ss->rekeys && fs_rekey(fs) != 0)) {
            goto out;
        }
        off += n;
    }
    r = fs_end_session(fs, 7);
out:
    free(down);
    return r;
}

/* Connect with our own config (Compression, RekeyLimit); NULL with err. */
static sshflow_flow *core_connect(struct fs *fs, bool compression, const char *rekey,
                                  sshflow_error *err)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_request *req = sshflow_request_exec(FS_COMMAND);
    sshflow_hostauth *ha = sshflow_hostauth_parse(keys.host_fp, err);

    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_nonnull(cred);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(ha);
    ck_assert_int_eq(sshflow_config_set(cfg, "ConnectTimeout", "10", err), 0);
    ck_assert_int_eq(sshflow_config_set(cfg, "Compression", compression ? "yes" : "no", err), 0);
    if (rekey != NULL) {
        ck_assert_int_eq(sshflow_config_set(cfg, "RekeyLimit", rekey, err), 0);
    }
    ck_assert_int_eq(sshflow_cred_add_keyfile(cred, keys.user, NULL, err), 0);
    sshflow_flow *f = sshflow_client_of_flow(fs_flow(fs), FS_USER, cred, ha, req, cfg, err);
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    return f;
}

static void script_init(struct fs_script *sc, const char *offer, struct sess *ss)
{
    memset(sc, 0, sizeof(*sc));
    sc->hostkey = keys.host;
    sc->compression = offer;
    sc->session = session_comp;
    sc->user = ss;
    sc->timeout_ms = 30000;
}

static void describe_comp(sshflow_flow *f, char *out, size_t outsz)
{
    char desc[512];
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    const char *p = strstr(desc, " comp=");
    out[0] = '\0';
    if (p != NULL) {
        snprintf(out, outsz, "%.*s", (int)strcspn(p + 6, " "), p + 6);
    }
}

/* Upload, download, exit status; checks both sides saw the same bytes. */
static void run_transfer(struct fs *fs, sshflow_flow *f)
{
    sshflow_error err;
    uint8_t *up = malloc(UP_LEN), *want = malloc(DOWN_LEN), *down = NULL;
    size_t n = 0;

    ck_assert_ptr_nonnull(up);
    ck_assert_ptr_nonnull(want);
    fill_text(up, UP_LEN, 5);
    fill_random(up + 1000, 20000, 6);
    ck_assert_msg(sshflow_write(f, up, UP_LEN, &err) == 0, "write: %s", err.detail);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    int r = fs_client_read_all(f, &down, &n, 4 * DOWN_LEN, &err);
    ck_assert_msg(r == 0, "read: %s (server: %s)", err.detail, fs_why(fs));
    fill_text(want, DOWN_LEN, 77);
    fill_random(want + DOWN_LEN / 2, 50 * 1024, 78);
    ck_assert_uint_eq(n, DOWN_LEN);
    ck_assert_mem_eq(down, want, DOWN_LEN);
    ck_assert_msg(sshflow_close_timeout(f, 10000, &err) == 0, "close: %s", err.detail);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 7);
    ck_assert_int_eq(fs_finish(fs), 0);
    ck_assert_msg(fs_seen(fs)->violation[0] == '\0', "client violated the protocol: %s",
                  fs_seen(fs)->violation);
    size_t got = 0;
    const uint8_t *data = fs_client_data(fs, &got);
    ck_assert_uint_eq(got, UP_LEN);
    ck_assert_mem_eq(data, up, UP_LEN);
    free(up);
    free(want);
    free(down);
}

#define REQUIRE_KEYS() ck_assert_msg(keys_ok, "test keys could not be made (see stderr)")

/*
 * _i: 0 sshd-like offer "none,zlib@openssh.com"; 1 the same with SUCCESS,
 * IGNORE and a global request in one write; 2 "zlib" only (auth itself
 * compressed); 3 "zlib" with the burst.
 */
START_TEST(test_core_comp_methods)
{
    static const char *const offers[] = {"none,zlib@openssh.com", "zlib"};
    static const char *const agreed[] = {"zlib@openssh.com", "zlib"};
    struct fs_script sc;
    struct sess ss = {0};
    sshflow_error err;
    char comp[64];

    REQUIRE_KEYS();
    script_init(&sc, offers[_i / 2], &ss);
    sc.success_burst = _i % 2 == 1;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, true, NULL, &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    describe_comp(f, comp, sizeof(comp));
    ck_assert_str_eq(comp, agreed[_i / 2]);
    run_transfer(fs, f);
    const struct fs_seen *seen = fs_seen(fs);
    ck_assert_str_eq(seen->comp, agreed[_i / 2]);
    ck_assert(seen->auth_ok);
    if (sc.success_burst) {
        ck_assert_uint_eq(seen->request_failures, 1); /* our answer, compressed, understood */
    }
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

/* Re-keys from both sides in the middle of compressed transfers. */
START_TEST(test_core_comp_rekey)
{
    struct fs_script sc;
    struct sess ss = {.rekeys = 3};
    sshflow_error err;

    REQUIRE_KEYS();
    script_init(&sc, _i == 0 ? "zlib@openssh.com" : "zlib", &ss);
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, true, "16K", &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    run_transfer(fs, f);
    ck_assert_msg(sshflow_kex_count(f) > 4, "kex_count %u", sshflow_kex_count(f));
    ck_assert_uint_gt(fs_seen(fs)->kex_done, 4);
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

/* A zlib bomb from the server: a protocol error and DISCONNECT, not memory. */
START_TEST(test_core_comp_bomb)
{
    struct fs_script sc;
    struct sess ss = {.bomb = (size_t)64 * 1024 * 1024};
    sshflow_error err;
    uint8_t buf[64];

    REQUIRE_KEYS();
    script_init(&sc, "zlib@openssh.com", &ss);
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, true, NULL, &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    memset(&err, 0, sizeof(err));
    ssize_t n = sshflow_read_into(f, buf, sizeof(buf), &err);
    ck_assert_int_eq(n, SSHFLOW_ERR_PROTOCOL);
    ck_assert_msg(strstr(err.detail, "inflates beyond the packet limit") != NULL, "%s",
                  err.detail);
    (void)fs_finish(fs); /* the script fails: the client went away */
    ck_assert(fs_seen(fs)->disconnect);
    ck_assert_uint_eq(fs_seen(fs)->disconnect_reason, 2); /* PROTOCOL_ERROR */
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

/* Exactly SF_PACKET_MAX inflated is fine end to end (an unknown message 0). */
START_TEST(test_core_comp_at_limit)
{
    struct fs_script sc;
    struct sess ss = {.bomb = SF_PACKET_MAX};
    sshflow_error err;

    REQUIRE_KEYS();
    script_init(&sc, "zlib@openssh.com", &ss);
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, true, NULL, &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    ck_assert_msg(fs_client_read_all(f, NULL, &n, 0, &err) == 0, "read: %s", err.detail);
    ck_assert_int_eq(sshflow_close_timeout(f, 10000, &err), 0);
    ck_assert_msg(fs_finish(fs) == 0, "server: %s", fs_why(fs));
    ck_assert_uint_eq(fs_seen(fs)->unimplemented, 1);
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

/* Default config: nothing compressed although the server offers both. */
START_TEST(test_core_comp_default_none)
{
    struct fs_script sc;
    struct sess ss = {0};
    sshflow_error err;
    char comp[64];

    REQUIRE_KEYS();
    script_init(&sc, "zlib@openssh.com,zlib,none", &ss);
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, false, NULL, &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    describe_comp(f, comp, sizeof(comp));
    ck_assert_str_eq(comp, "");
    run_transfer(fs, f);
    ck_assert_str_eq(fs_seen(fs)->comp, "none");
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

/* A server that insists on zlib and a client that did not ask: refused, named. */
START_TEST(test_core_comp_server_insists)
{
    struct fs_script sc;
    struct sess ss = {0};
    sshflow_error err;

    REQUIRE_KEYS();
    script_init(&sc, "zlib", &ss);
    sc.timeout_ms = 10000;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, false, NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_PROTOCOL);
    ck_assert_msg(strstr(err.detail, "no compression algorithm in common") != NULL &&
                      strstr(err.detail, "zlib") != NULL,
                  "%s", err.detail);
    (void)fs_finish(fs);
    fs_free(fs);
}
END_TEST

/* RFC 4253 s7.1: the client's order wins over the server's. */
START_TEST(test_core_comp_client_order)
{
    struct fs_script sc;
    struct sess ss = {0};
    sshflow_error err;
    char comp[64];

    REQUIRE_KEYS();
    script_init(&sc, "zlib,zlib@openssh.com", &ss);
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = core_connect(fs, true, NULL, &err);
    ck_assert_msg(f != NULL, "connect: %s (server: %s)", err.detail, fs_why(fs));
    describe_comp(f, comp, sizeof(comp));
    ck_assert_str_eq(comp, "zlib@openssh.com");
    run_transfer(fs, f);
    sshflow_free(f);
    fs_free(fs);
}
END_TEST

static Suite *compress_suite(void)
{
    Suite *s = suite_create("compress");
    TCase *tc;

    make_trunc_packets();

    tc = tcase_create("names");
    tcase_add_test(tc, test_comp_alg_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_comp_roundtrip_kinds, 0, KIND_COUNT);
    tcase_add_test(tc, test_comp_stream_persists);
    tcase_add_test(tc, test_comp_inflate_vectors);
    tcase_add_test(tc, test_comp_inflate_independent_encoder);
    tcase_add_test(tc, test_comp_inflate_other_flushes);
    suite_add_tcase(s, tc);

    tc = tcase_create("bound");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_comp_inflate_bound_exact);
    tcase_add_test(tc, test_comp_inflate_bound_plus_one);
    tcase_add_test(tc, test_comp_inflate_bomb);
    tcase_add_test(tc, test_comp_inflate_bound_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_comp_inflate_truncated_first, 0, (int)trunc_w1);
    tcase_add_loop_test(tc, test_comp_inflate_truncated_second, 0, (int)trunc_w2);
    tcase_add_loop_test(tc, test_comp_inflate_corrupt_every_byte, 0, (int)(trunc_w1 + trunc_w2));
    tcase_add_test(tc, test_comp_inflate_bad_streams);
    tcase_add_test(tc, test_comp_inflate_stream_end);
    tcase_add_test(tc, test_comp_inflate_empty_result);
    suite_add_tcase(s, tc);

    tc = tcase_create("deflate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_comp_deflate_bound_random);
    tcase_add_test(tc, test_comp_deflate_errors);
    tcase_add_loop_test(tc, test_comp_alloc_failures, 0, 2 * 12);
    suite_add_tcase(s, tc);

    tc = tcase_create("transport");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_tp_comp_roundtrip);
    tcase_add_test(tc, test_tp_comp_restart_both);
    tcase_add_test(tc, test_tp_comp_restart_one_side);
    tcase_add_test(tc, test_tp_comp_bomb);
    tcase_add_test(tc, test_tp_comp_stop);
    tcase_add_loop_test(tc, test_tp_comp_start_nomem, 0, 2 * 10);
    suite_add_tcase(s, tc);

    tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_core_comp_methods, 0, 4);
    tcase_add_loop_test(tc, test_core_comp_rekey, 0, 2);
    tcase_add_test(tc, test_core_comp_bomb);
    tcase_add_test(tc, test_core_comp_at_limit);
    tcase_add_test(tc, test_core_comp_default_none);
    tcase_add_test(tc, test_core_comp_server_insists);
    tcase_add_test(tc, test_core_comp_client_order);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    /* The fake-server tests need ssh-keygen for their keys; they fail (not
     * skip) without them, as check_core does. */
    keys_ok = fs_keys_make(&keys) == 0;
    SRunner *sr = srunner_create(compress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (keys_ok) {
        fs_keys_remove(&keys);
    }
    free(trunc_p1);
    free(trunc_p2);
    return failed == 0 ? 0 : 1;
}
