/*
 * src/sntrup761.c -- Streamlined NTRU Prime sntrup761 KEM, written from the
 * NTRU Prime round-3 specification (ntruprime-20201007, sections 3 and 4:
 * "Streamlined NTRU Prime Core", encodings, hashing and the KEM), with the
 * byte layouts of the round-3 reference code that SUPERCOP, OpenSSH and
 * tinysshd share:
 *
 *   pk = Encode(h, q)                                           1158 bytes
 *   sk = Small(f) || Small(1/g) || pk || rho || Hash4(pk)        1763 bytes
 *   ct = Encode(Round(h*r), (q+2)/3) || HashConfirm             1039 bytes
 *   ss = Hash_b(Hash3(Small(r)) || ct), b = 1, or 0 with rho     32 bytes
 *
 * where Hash_b(x) is the first 32 bytes of SHA-512(b || x), Small() packs
 * four coefficients (+1) per byte, little end first, and HashConfirm is
 * Hash2(Hash3(Small(r)) || Hash4(pk)).
 *
 * Owns: the ring arithmetic in R/q = Z_q[x]/(x^p - x - 1) and R/3, the
 * constant-time reciprocals (Bernstein-Yang divsteps, a fixed 2p-1
 * iterations), the constant-time sort that makes short polynomials
 * (Batcher's merge exchange, Knuth 5.2.2 algorithm M), the radix encoders,
 * and the KEM itself. Must never: branch on, or index memory by, anything
 * derived from a secret (private key, random polynomial, decrypted
 * plaintext); leave a secret intermediate unwiped; keep state between calls.
 * Branches and divisions here depend only on public sizes, on the public
 * key or on the ciphertext. The one exception is the keypair's rejection
 * loop over g, which (like the reference) leaks only how many discarded
 * candidates were drawn.
 *
 * Random bytes are drawn in the reference's calls and order, so that the
 * NIST KAT (AES-256 CTR_DRBG, whose output depends on call boundaries) is
 * reproducible: keypair draws 761 calls of 4 bytes for g (again while g
 * is not invertible mod 3), 761 calls of 4 bytes for f, then one call of
 * 191 bytes for rho; enc draws 761 calls of 4 bytes for r. With the default
 * source (OpenSSL RAND_bytes) the same bytes are drawn in one call per
 * polynomial, which is equivalent for a stream generator.
 */
#include "sntrup761.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* Parameters (specification, section 3.5, sntrup761). */
#define P 761                   /* ring degree, prime */
#define Q 4591                  /* modulus, prime */
#define W 286                   /* weight of short polynomials */
#define Q12 ((Q - 1) / 2)       /* Z/q is represented as -Q12..Q12 */
#define ROUNDED_M ((Q + 2) / 3) /* 1531 values of a rounded coefficient */

/* Byte sizes. */
#define SMALL_BYTES ((P + 3) / 4) /* 191: Small encoding, also rho and Inputs */
#define RQ_BYTES 1158             /* Encode(h, q) for p = 761 */
#define ROUNDED_BYTES 1007        /* Encode(c, (q+2)/3) for p = 761 */
#define HASH_BYTES 32             /* every Hash_b output: SHA-512 cut to 32 bytes */
#define CONFIRM_BYTES HASH_BYTES
#define SK_CORE_BYTES (2 * SMALL_BYTES) /* Small(f) || Small(1/g) */
#define SK_PK_OFF SK_CORE_BYTES
#define SK_RHO_OFF (SK_PK_OFF + RQ_BYTES)
#define SK_CACHE_OFF (SK_RHO_OFF + SMALL_BYTES)
#define CT_BYTES (ROUNDED_BYTES + CONFIRM_BYTES)

_Static_assert(RQ_BYTES == SF_SNTRUP761_PUBLICKEY_BYTES, "public key size");
_Static_assert(SK_CACHE_OFF + HASH_BYTES == SF_SNTRUP761_SECRETKEY_BYTES, "secret key size");
_Static_assert(CT_BYTES == SF_SNTRUP761_CIPHERTEXT_BYTES, "ciphertext size");
_Static_assert(HASH_BYTES == SF_SNTRUP761_SHARED_BYTES, "shared secret size");

/* Hash prefixes (specification, section 4.3). */
#define HASH_SESSION_BAD 0 /* session key after a rejected ciphertext */
#define HASH_SESSION 1
#define HASH_CONFIRM 2
#define HASH_INPUT 3 /* Hash3(Small(r)) */
#define HASH_PK 4    /* Hash4(pk), cached in sk */

#define ENCODE_LIMIT 16384 /* radix encoder: emit bytes while a range is at least 2^14 */
#define KEYGEN_TRIES 1000  /* g candidates: a working source almost never needs a second */
#define FQ_FREEZE_MAX (2 * Q12 * Q12) /* 10534050 */
#define FQ_OFFSET (Q * 2400u)         /* a multiple of q above FQ_FREEZE_MAX */
#define F3_FREEZE_MAX 24575
#define F3_OFFSET (3u * 8192u) /* a multiple of 3 above F3_FREEZE_MAX */
#define INV3_MOD_Q (-1530)             /* 3 * -1530 = 1 - 4591 */

typedef int8_t small; /* element of Z/3 as -1, 0, 1 */
typedef int16_t fq;   /* element of Z/q as -Q12..Q12 */

/* ---- constant-time helpers ------------------------------------------- */

/* -1 if x != 0, else 0. */
static int32_t
mask_nonzero(int32_t x)
{
    uint32_t u = (uint32_t)x;

    return -(int32_t)((u | (0u - u)) >> 31);
}

/* -1 if x < 0, else 0. */
static int32_t
mask_negative(int32_t x)
{
    return -(int32_t)((uint32_t)x >> 31);
}

/*
 * u = quo * m + rem with 0 <= rem < m, for a public 0 < m < 2^16 and any
 * u < 2^32, without a division by a secret: a Barrett estimate from
 * floor((2^32-1)/m) is low by at most one, fixed with a mask.
 */
static uint32_t
divmod(uint32_t u, uint32_t m, uint32_t *quo)
{
    uint32_t v = UINT32_MAX / m;
    uint32_t est = (uint32_t)(((uint64_t)u * v) >> 32);
    uint32_t rem = u - est * m; /* 0 <= rem < 2m */
    uint32_t t = rem - m;
    uint32_t low = 0u - (t >> 31); /* all ones if rem < m */

    *quo = est + 1 + low;
    return t + (low & m);
}

static uint32_t
mod(uint32_t u, uint32_t m)
{
    uint32_t quo;

    return divmod(u, m, &quo);
}

/*
 * x mod q into -Q12..Q12, for |x| <= FQ_FREEZE_MAX (every caller: products
 * of two reduced values, sums of p small multiples). Two Barrett steps in
 * 32 bits (so loops over it vectorise): 114 / 2^19 is just below 1/q,
 * leaving 0 <= u < 14q; 29235 / 2^27 is above 1/q by less than
 * 1/(2^27 q) per unit, too little to reach the next multiple for u < 14q,
 * so the second quotient is exact. (Checked for every x in range.)
 */
static fq
fq_freeze(int32_t x)
{
    uint32_t u = (uint32_t)x + FQ_OFFSET + Q12; /* 0 < u < 2^25 */

    u -= ((u * 114) >> 19) * Q;   /* 0 <= u < 14q */
    u -= ((u * 29235) >> 27) * Q; /* 0 <= u < q */
    return (fq)((int32_t)u - Q12);
}

/*
 * x mod 3 into -1..1, for |x| <= F3_FREEZE_MAX: 43691 / 2^17 exceeds 1/3
 * by 1/(3 * 2^17), which floors exactly while u < 2^17.
 */
static small
f3_freeze(int32_t x)
{
    uint32_t u = (uint32_t)x + F3_OFFSET + 1; /* 0 < u < 2^16 */

    u -= ((u * 43691) >> 17) * 3;
    return (small)((int32_t)u - 1);
}

/* 1/a in Z/q (0 for a = 0): a^(q-2) by a fixed square-and-multiply chain. */
static fq
fq_recip(fq a)
{
    int32_t acc = 1;

    for (int bit = 12; bit >= 0; bit--) { /* q - 2 = 4589 < 2^13 */
        acc = fq_freeze(acc * acc);
        if (((Q - 2) >> bit) & 1) { /* public exponent bit */
            acc = fq_freeze(acc * a);
        }
    }
    return (fq)acc;
}

/* Swap a and b when mask is all ones; leave them when it is 0. */
static void
cswap_u32(uint32_t *a, uint32_t *b, uint32_t mask)
{
    uint32_t t = mask & (*a ^ *b);

    *a ^= t;
    *b ^= t;
}

/* Put the smaller of *a, *b in *a, without a branch. */
static void
minmax_u32(uint32_t *a, uint32_t *b)
{
    uint64_t diff = (uint64_t)*b - (uint64_t)*a; /* borrows into bit 63 iff b < a */

    cswap_u32(a, b, (uint32_t)0 - (uint32_t)(diff >> 63));
}

/*
 * Sort x[0..n-1] ascending with Batcher's merge exchange (Knuth, TAOCP
 * vol. 3, 5.2.2, algorithm M): the comparisons made depend on n only.
 */
static void
sort_u32(uint32_t *x, size_t n)
{
    size_t top = 1;

    if (n < 2) {
        return;
    }
    while (top < n) {
        top <<= 1;
    }
    top >>= 1; /* 2^(t-1) with 2^t >= n */
    for (size_t p = top; p > 0; p >>= 1) {
        size_t q = top;
        size_t r = 0;
        size_t d = p;

        for (;;) {
            for (size_t i = 0; i + d < n; i++) {
                if ((i & p) == r) {
                    minmax_u32(&x[i], &x[i + d]);
                }
            }
            if (q == p) {
                break;
            }
            d = q - p;
            q >>= 1;
            r = p;
        }
    }
}

/* ---- polynomials ------------------------------------------------------- */

/*
 * Products: schoolbook into 2p - 1 int32 coefficients, then x^p = x + 1,
 * i.e. x^k = x^(k-p+1) + x^(k-p) with k-p+1 < p. The second factor is
 * padded with zeros to MULT_LEN so the inner loop runs over whole blocks.
 */
#define MULT_BLOCK 16
#define MULT_LEN 768 /* p rounded up to a whole block */
_Static_assert(MULT_LEN >= P && MULT_LEN % MULT_BLOCK == 0, "mult padding");

struct mult_work {
    int32_t a[P];
    int32_t b[MULT_LEN];
    int32_t ab[P + MULT_LEN]; /* |coefficient| <= 3 p Q12 after the fold */
};

/* m->ab[0..p-1] = m->a * m->b mod x^p - x - 1, unreduced. */
static void
mult_fold(struct mult_work *m)
{
    memset(m->ab, 0, sizeof m->ab);
    for (int i = 0; i < P; i++) {
        int32_t ai = m->a[i];
        int32_t *row = m->ab + i;

        for (int blk = 0; blk < MULT_LEN / MULT_BLOCK; blk++) {
            for (int j = 0; j < MULT_BLOCK; j++) {
                row[blk * MULT_BLOCK + j] += ai * m->b[blk * MULT_BLOCK + j];
            }
        }
    }
    for (int k = 2 * P - 2; k >= P; k--) {
        m->ab[k - P] += m->ab[k];
        m->ab[k - P + 1] += m->ab[k];
    }
}

/* h = f * g in R/q, g small. h may alias f. */
static void
rq_mult_small(fq *h, const fq *f, const small *g, struct mult_work *m)
{
    memset(m->b, 0, sizeof m->b);
    for (int i = 0; i < P; i++) {
        m->a[i] = f[i];
        m->b[i] = g[i];
    }
    mult_fold(m);
    for (int i = 0; i < P; i++) {
        h[i] = fq_freeze(m->ab[i]);
    }
}

/* h = f * g in R/3. */
static void
r3_mult(small *h, const small *f, const small *g, struct mult_work *m)
{
    memset(m->b, 0, sizeof m->b);
    for (int i = 0; i < P; i++) {
        m->a[i] = f[i];
        m->b[i] = g[i];
    }
    mult_fold(m);
    for (int i = 0; i < P; i++) {
        h[i] = f3_freeze(m->ab[i]);
    }
}

/*
 * Reciprocals by the constant-time extended GCD of the specification
 * (Bernstein-Yang divsteps on the reversed polynomials x^p f(1/x)).
 * f starts as the reversed modulus x^p - x - 1, g as the reversed input;
 * every one of the fixed 2p-1 steps multiplies v by x, swaps (f,v) with
 * (g,r) when delta > 0 and g(0) != 0, and then cancels g's constant term
 * against f's and divides g by x. The input is invertible iff delta ends
 * at 0, and then the reciprocal is v reversed, divided by f(0).
 *
 * The arrays hold p + 1 coefficients, padded with zeros to RECIP_LEN (a
 * multiple of RECIP_BLOCK) so that every loop runs over whole blocks of a
 * fixed size and compiles to vector code; zeros stay zero.
 */
#define RECIP_BLOCK 16
#define RECIP_LEN 768 /* p + 1 = 762 rounded up to a whole block */
_Static_assert(RECIP_LEN >= P + 1 && RECIP_LEN % RECIP_BLOCK == 0, "recip padding");

struct recip3_work {
    int8_t f[RECIP_LEN + 1], g[RECIP_LEN + 1], v[RECIP_LEN + 1], r[RECIP_LEN + 1];
};

struct recipq_work {
    int32_t f[RECIP_LEN + 1], g[RECIP_LEN + 1], v[RECIP_LEN + 1], r[RECIP_LEN + 1];
};

/* Blocks of v and r that can be nonzero before step k (they gain at most a coefficient a step). */
static int
vr_blocks(int step)
{
    int n = (step + 2 + RECIP_BLOCK - 1) / RECIP_BLOCK;

    return n < RECIP_LEN / RECIP_BLOCK ? n : RECIP_LEN / RECIP_BLOCK;
}

/* x mod 3 into -1..1 for -2 <= x <= 2. */
static int8_t
f3_freeze_tiny(int32_t x)
{
    int32_t above = (int32_t)((uint32_t)(1 - x) >> 31); /* x > 1 */
    int32_t below = (int32_t)((uint32_t)(x + 1) >> 31); /* x < -1 */

    return (int8_t)(x - 3 * above + 3 * below);
}

/* Swap a and b over their first nblocks blocks when mask is all ones. */
static void
cswap_i8_blocks(int8_t *a, int8_t *b, int nblocks, int32_t mask)
{
    for (int blk = 0; blk < nblocks; blk++) {
        for (int j = 0; j < RECIP_BLOCK; j++) {
            int i = blk * RECIP_BLOCK + j;
            int32_t t = mask & (a[i] ^ b[i]);

            a[i] = (int8_t)(a[i] ^ t);
            b[i] = (int8_t)(b[i] ^ t);
        }
    }
}

static void
cswap_i32_blocks(int32_t *a, int32_t *b, int nblocks, int32_t mask)
{
    for (int blk = 0; blk < nblocks; blk++) {
        for (int j = 0; j < RECIP_BLOCK; j++) {
            int i = blk * RECIP_BLOCK + j;
            int32_t t = mask & (a[i] ^ b[i]);

            a[i] ^= t;
            b[i] ^= t;
        }
    }
}

/* out = 1/in in R/3. Returns 0 if in is invertible, else -1. */
static int
r3_recip(small *out, const small *in, struct recip3_work *s)
{
    int32_t delta = 1;
    int32_t sign;

    memset(s, 0, sizeof *s);
    s->r[0] = 1;
    s->f[0] = 1;
    s->f[P - 1] = -1;
    s->f[P] = -1;
    for (int i = 0; i < P; i++) {
        s->g[P - 1 - i] = in[i];
    }
    for (int step = 0; step < 2 * P - 1; step++) {
        int nb = vr_blocks(step);
        int32_t swap;

        memmove(s->v + 1, s->v, P * sizeof s->v[0]);
        s->v[0] = 0;
        /* f(0) is always +-1, so g - f(0) g(0) f has no constant term. */
        sign = -s->g[0] * s->f[0];
        swap = mask_negative(-delta) & mask_nonzero(s->g[0]);
        delta ^= swap & (delta ^ -delta);
        delta += 1;
        cswap_i8_blocks(s->f, s->g, RECIP_LEN / RECIP_BLOCK, swap);
        cswap_i8_blocks(s->v, s->r, nb, swap);
        /* g = (g + sign f) / x: the constant term is 0 and is dropped. */
        for (int i = 0; i < RECIP_LEN; i++) {
            s->g[i] = f3_freeze_tiny(s->g[i + 1] + sign * s->f[i + 1]);
        }
        for (int blk = 0; blk < nb; blk++) {
            for (int j = 0; j < RECIP_BLOCK; j++) {
                int i = blk * RECIP_BLOCK + j;

                s->r[i] = f3_freeze_tiny(s->r[i] + sign * s->v[i]);
            }
        }
    }
    sign = s->f[0]; /* 1/f(0) = f(0) in Z/3 */
    for (int i = 0; i < P; i++) {
        out[i] = (small)(sign * s->v[P - 1 - i]);
    }
    return (int)mask_nonzero(delta);
}

/* out = 1/(3 in) in R/q. Returns 0 if 3 in is invertible (always, for in != 0), else -1. */
static int
rq_recip3(fq *out, const small *in, struct recipq_work *s)
{
    int32_t delta = 1;
    fq scale;

    memset(s, 0, sizeof *s);
    s->r[0] = INV3_MOD_Q;
    s->f[0] = 1;
    s->f[P - 1] = -1;
    s->f[P] = -1;
    for (int i = 0; i < P; i++) {
        s->g[P - 1 - i] = in[i];
    }
    for (int step = 0; step < 2 * P - 1; step++) {
        int nb = vr_blocks(step);
        int32_t swap;
        int32_t f0;
        int32_t g0;

        memmove(s->v + 1, s->v, P * sizeof s->v[0]);
        s->v[0] = 0;
        swap = mask_negative(-delta) & mask_nonzero(s->g[0]);
        delta ^= swap & (delta ^ -delta);
        delta += 1;
        cswap_i32_blocks(s->f, s->g, RECIP_LEN / RECIP_BLOCK, swap);
        cswap_i32_blocks(s->v, s->r, nb, swap);
        f0 = s->f[0];
        g0 = s->g[0];
        /* g = (f(0) g - g(0) f) / x: the constant term is 0 and is dropped. */
        for (int i = 0; i < RECIP_LEN; i++) {
            s->g[i] = fq_freeze(f0 * s->g[i + 1] - g0 * s->f[i + 1]);
        }
        for (int blk = 0; blk < nb; blk++) {
            for (int j = 0; j < RECIP_BLOCK; j++) {
                int i = blk * RECIP_BLOCK + j;

                s->r[i] = fq_freeze(f0 * s->r[i] - g0 * s->v[i]);
            }
        }
    }
    scale = fq_recip((fq)s->f[0]);
    for (int i = 0; i < P; i++) {
        out[i] = fq_freeze(scale * s->v[P - 1 - i]);
    }
    return (int)mask_nonzero(delta);
}

/* Round every coefficient to the nearest multiple of 3 (specification's Round). */
static void
rq_round(fq *c, const fq *a)
{
    for (int i = 0; i < P; i++) {
        c[i] = (fq)(a[i] - f3_freeze(a[i]));
    }
}

/* 0 if r has exactly W nonzero coefficients, else -1. */
static int32_t
weight_w_mask(const small *r)
{
    int32_t weight = 0;

    for (int i = 0; i < P; i++) {
        weight += r[i] & 1;
    }
    return mask_nonzero(weight - W);
}

/* ---- encodings (specification, section 4.2) --------------------------- */

/* Small: four coefficients a byte, each + 1, first coefficient in the low bits. */
static void
small_encode(uint8_t *s, const small *f)
{
    for (int i = 0; i < P / 4; i++) {
        s[i] = (uint8_t)((f[4 * i] + 1) | ((f[4 * i + 1] + 1) << 2) | ((f[4 * i + 2] + 1) << 4) |
                         ((f[4 * i + 3] + 1) << 6));
    }
    s[P / 4] = (uint8_t)(f[P - 1] + 1); /* p = 1 mod 4 */
}

static void
small_decode(small *f, const uint8_t *s)
{
    for (int i = 0; i < P / 4; i++) {
        for (int j = 0; j < 4; j++) {
            f[4 * i + j] = (small)(((s[i] >> (2 * j)) & 3) - 1);
        }
    }
    f[P - 1] = (small)((s[P / 4] & 3) - 1);
}

/*
 * The specification's Encode for 0 <= r[i] < m[i] < 2^14: pairs are
 * merged into one value of range m[i] m[i+1], whose low bytes are emitted
 * while the range is at least 2^14; the halved list is then encoded the
 * same way, until one value is left, which is emitted whole. r and m are
 * overwritten. Returns the number of bytes written. Branches depend on m
 * only.
 */
static size_t
encode_rm(uint8_t *out, uint16_t *r, uint16_t *m, size_t len)
{
    size_t n = 0;
    uint32_t rr;
    uint32_t mm;

    while (len > 1) {
        size_t i;

        for (i = 0; i + 1 < len; i += 2) {
            rr = r[i] + (uint32_t)r[i + 1] * m[i];
            mm = (uint32_t)m[i + 1] * m[i];
            while (mm >= ENCODE_LIMIT) {
                out[n++] = (uint8_t)rr;
                rr >>= 8;
                mm = (mm + 255) >> 8;
            }
            r[i / 2] = (uint16_t)rr;
            m[i / 2] = (uint16_t)mm;
        }
        if (i < len) {
            r[i / 2] = r[i];
            m[i / 2] = m[i];
        }
        len = (len + 1) / 2;
    }
    rr = r[0];
    mm = m[0];
    while (mm > 1) {
        out[n++] = (uint8_t)rr;
        rr >>= 8;
        mm = (mm + 255) >> 8;
    }
    return n;
}

#define DECODE_LEVELS 11 /* lists of 761, 381, 191, 96, 48, 24, 12, 6, 3, 2, 1 values */

/*
 * The specification's Decode, for p values that all have the range m: the
 * inverse of encode_rm, so that out[i] < m for every input (a non-canonical
 * string still decodes to values in range). The list ranges of every level
 * are worked out first (they are public); then the values are rebuilt from
 * the top level down. Returns the number of bytes read.
 */
static size_t
decode_rm(uint16_t *out, const uint8_t *s, uint16_t m)
{
    uint16_t ms[2 * P + DECODE_LEVELS]; /* ranges of every level, level after level */
    uint16_t rs[2 * P + DECODE_LEVELS]; /* values of every level, same places */
    size_t base[DECODE_LEVELS];
    size_t lens[DECODE_LEVELS];
    size_t soff[DECODE_LEVELS]; /* where each level's bytes start in s */
    size_t levels = 0;
    size_t off = 0;
    size_t len = P;
    size_t at = 0;
    uint32_t top;

    for (size_t i = 0; i < P; i++) {
        ms[i] = m;
    }
    for (;;) {
        base[levels] = at;
        lens[levels] = len;
        soff[levels] = off;
        levels++;
        if (len == 1) {
            break;
        }
        for (size_t i = 0; i + 1 < len; i += 2) {
            uint32_t mm = (uint32_t)ms[at + i] * ms[at + i + 1];
            uint16_t *m2 = &ms[at + len + i / 2];

            if (mm > 256 * (ENCODE_LIMIT - 1)) {
                off += 2;
                *m2 = (uint16_t)((((mm + 255) >> 8) + 255) >> 8);
            } else if (mm >= ENCODE_LIMIT) {
                off += 1;
                *m2 = (uint16_t)((mm + 255) >> 8);
            } else {
                *m2 = (uint16_t)mm;
            }
        }
        if (len & 1) {
            ms[at + len + len / 2] = ms[at + len - 1];
        }
        at += len;
        len = (len + 1) / 2;
    }
    /* The last value: 0, 1 or 2 bytes by its range. */
    at = base[levels - 1];
    if (ms[at] == 1) {
        top = 0;
    } else if (ms[at] <= 256) {
        top = mod(s[off], ms[at]);
        off += 1;
    } else {
        top = mod(s[off] + ((uint32_t)s[off + 1] << 8), ms[at]);
        off += 2;
    }
    rs[at] = (uint16_t)top;
    for (size_t l = levels - 1; l-- > 0;) {
        size_t b = base[l];
        size_t up = base[l + 1];
        size_t n = lens[l];
        size_t so = soff[l];

        for (size_t i = 0; i + 1 < n; i += 2) {
            uint32_t mm = (uint32_t)ms[b + i] * ms[b + i + 1];
            uint32_t v = rs[up + i / 2];
            uint32_t q1;

            if (mm > 256 * (ENCODE_LIMIT - 1)) {
                v = s[so] + ((uint32_t)s[so + 1] << 8) + (v << 16);
                so += 2;
            } else if (mm >= ENCODE_LIMIT) {
                v = s[so] + (v << 8);
                so += 1;
            }
            rs[b + i] = (uint16_t)divmod(v, ms[b + i], &q1);
            rs[b + i + 1] = (uint16_t)mod(q1, ms[b + i + 1]); /* q1 < range unless non-canonical */
        }
        if (n & 1) {
            rs[b + n - 1] = rs[up + n / 2];
        }
    }
    memcpy(out, rs, P * sizeof out[0]);
    return off;
}

/* h as P values in 0..q-1. */
static size_t
rq_encode(uint8_t *s, const fq *h)
{
    uint16_t r[P];
    uint16_t m[P];

    for (int i = 0; i < P; i++) {
        r[i] = (uint16_t)(h[i] + Q12);
        m[i] = Q;
    }
    return encode_rm(s, r, m, P);
}

static size_t
rq_decode(fq *h, const uint8_t *s)
{
    uint16_t r[P];
    size_t n = decode_rm(r, s, Q);

    for (int i = 0; i < P; i++) {
        h[i] = (fq)(r[i] - Q12);
    }
    return n;
}

/* A rounded polynomial (multiples of 3) as P values (c + Q12) / 3 in 0..(q-1)/3. */
static size_t
rounded_encode(uint8_t *s, const fq *c)
{
    uint16_t r[P];
    uint16_t m[P];
    size_t n;

    for (int i = 0; i < P; i++) {
        /* (3k * 10923) >> 15 = k for 3k < 2^15, since 3 * 10923 = 2^15 + 1 */
        r[i] = (uint16_t)(((uint32_t)(c[i] + Q12) * 10923) >> 15);
        m[i] = ROUNDED_M;
    }
    n = encode_rm(s, r, m, P);
    sf_wipe(r, sizeof r);
    return n;
}

static size_t
rounded_decode(fq *c, const uint8_t *s)
{
    uint16_t r[P];
    size_t n = decode_rm(r, s, ROUNDED_M);

    for (int i = 0; i < P; i++) {
        c[i] = (fq)(r[i] * 3 - Q12);
    }
    return n;
}

/* ---- hashing ------------------------------------------------------------ */

/* A SHA-512 context for one KEM operation. */
struct hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

static int
hasher_init(struct hasher *hs)
{
    hs->md = EVP_MD_fetch(NULL, "SHA512", NULL);
    hs->ctx = EVP_MD_CTX_new();
    return hs->md != NULL && hs->ctx != NULL ? 0 : SF_ERR_CRYPTO;
}

static void
hasher_free(struct hasher *hs)
{
    EVP_MD_CTX_free(hs->ctx); /* clears the digest state */
    EVP_MD_free(hs->md);
    hs->ctx = NULL;
    hs->md = NULL;
}

/* Hash_b: out = first 32 bytes of SHA-512(b || x1 || x2); x2 may be NULL. */
static int
hash_prefix(struct hasher *hs, uint8_t out[HASH_BYTES], uint8_t b, const uint8_t *x1, size_t n1,
            const uint8_t *x2, size_t n2)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hn = 0;
    int r = SF_ERR_CRYPTO;

    if (EVP_DigestInit_ex(hs->ctx, hs->md, NULL) != 1 || EVP_DigestUpdate(hs->ctx, &b, 1) != 1 ||
        EVP_DigestUpdate(hs->ctx, x1, n1) != 1 ||
        (x2 != NULL && EVP_DigestUpdate(hs->ctx, x2, n2) != 1) ||
        EVP_DigestFinal_ex(hs->ctx, h, &hn) != 1 || hn < HASH_BYTES) {
        goto out;
    }
    memcpy(out, h, HASH_BYTES);
    r = 0;
out:
    sf_wipe(h, sizeof h);
    return r;
}

/* ---- randomness ----------------------------------------------------------- */

/* n little-endian 32-bit values: one rng call of 4 bytes each, or one RAND_bytes call. */
static int
random_u32s(uint32_t *out, uint8_t *tmp, size_t n, sf_sntrup761_rng rng, void *rngctx)
{
    if (rng == NULL) {
        if (n > INT32_MAX / 4 || RAND_bytes(tmp, (int)(4 * n)) != 1) {
            return SF_ERR_CRYPTO;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (rng(rngctx, tmp + 4 * i, 4) != 0) {
                return SF_ERR_CRYPTO;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = tmp + 4 * i;

        out[i] = (uint32_t)c[0] | ((uint32_t)c[1] << 8) | ((uint32_t)c[2] << 16) |
                 ((uint32_t)c[3] << 24);
    }
    return 0;
}

static int
random_bytes(uint8_t *out, size_t n, sf_sntrup761_rng rng, void *rngctx)
{
    if (rng == NULL) {
        return n <= INT32_MAX && RAND_bytes(out, (int)n) == 1 ? 0 : SF_ERR_CRYPTO;
    }
    return rng(rngctx, out, n) == 0 ? 0 : SF_ERR_CRYPTO;
}

/* Scratch of every KEM operation; all of it is wiped before returning. */
struct work {
    uint32_t list[P];       /* random 32-bit values */
    uint8_t bytes[4 * P];   /* their bytes as drawn */
    small a[P], b[P], c[P]; /* small polynomials (g, 1/g, f / r / e, 1/g, ev) */
    fq h[P], t[P];          /* polynomials mod q */
    union {
        struct recip3_work r3;
        struct recipq_work rq;
        struct mult_work mult;
    } u;
    uint8_t input[SMALL_BYTES];   /* Small(r) */
    uint8_t hr[HASH_BYTES];       /* Hash3(Small(r)) */
    uint8_t ctnew[CT_BYTES];      /* re-encryption in dec */
};

/* Short_random: a random polynomial with exactly W coefficients +-1 (spec 4.4). */
static int
short_random(small *out, struct work *wk, sf_sntrup761_rng rng, void *rngctx)
{
    int r;

    if ((r = random_u32s(wk->list, wk->bytes, P, rng, rngctx)) != 0) {
        return r;
    }
    /* Low bits 0 or 2 (-1 or +1) for the first W, 1 (zero) for the rest; sort by the rest. */
    for (int i = 0; i < W; i++) {
        wk->list[i] &= ~(uint32_t)1;
    }
    for (int i = W; i < P; i++) {
        wk->list[i] = (wk->list[i] & ~(uint32_t)2) | 1;
    }
    sort_u32(wk->list, P);
    for (int i = 0; i < P; i++) {
        out[i] = (small)((wk->list[i] & 3) - 1);
    }
    return 0;
}

/* Small_random: each coefficient -1, 0 or 1 from the top of 30 random bits. */
static int
small_random(small *out, struct work *wk, sf_sntrup761_rng rng, void *rngctx)
{
    int r;

    if ((r = random_u32s(wk->list, wk->bytes, P, rng, rngctx)) != 0) {
        return r;
    }
    for (int i = 0; i < P; i++) {
        out[i] = (small)((((wk->list[i] & 0x3fffffff) * 3) >> 30) - 1);
    }
    return 0;
}

/*
 * Hide (spec 4.4): ct = Encode(Round(h r)) || Hash2(Hash3(Small(r)) || cache),
 * leaving Small(r) in wk->input and Hash3(Small(r)) in wk->hr. The random
 * polynomial r is in wk->c. Uses wk->h and wk->t.
 */
static int
hide(uint8_t *ct, struct work *wk, struct hasher *hs, const uint8_t *pk, const uint8_t *cache)
{
    int r;

    small_encode(wk->input, wk->c);
    if (rq_decode(wk->h, pk) != RQ_BYTES) {
        return SF_ERR_INTERNAL;
    }
    rq_mult_small(wk->t, wk->h, wk->c, &wk->u.mult);
    rq_round(wk->t, wk->t);
    if (rounded_encode(ct, wk->t) != ROUNDED_BYTES) {
        return SF_ERR_INTERNAL;
    }
    if ((r = hash_prefix(hs, wk->hr, HASH_INPUT, wk->input, SMALL_BYTES, NULL, 0)) != 0 ||
        (r = hash_prefix(hs, ct + ROUNDED_BYTES, HASH_CONFIRM, wk->hr, HASH_BYTES, cache,
                         HASH_BYTES)) != 0) {
        return r;
    }
    return 0;
}

/* ---- the KEM ----------------------------------------------------------------- */

int
sf_sntrup761_keypair(uint8_t *pk, uint8_t *sk, sf_sntrup761_rng rng, void *rngctx)
{
    struct work wk;
    struct hasher hs = { NULL, NULL };
    int r = SF_ERR_INTERNAL;
    int tries;

    if (pk == NULL || sk == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = hasher_init(&hs)) != 0) {
        goto out;
    }
    /* g: small and invertible mod 3 (a rejected g is discarded, so the count may leak). */
    for (tries = 0; tries < KEYGEN_TRIES; tries++) {
        if ((r = small_random(wk.a, &wk, rng, rngctx)) != 0) {
            goto out;
        }
        if (r3_recip(wk.b, wk.a, &wk.u.r3) == 0) {
            break;
        }
    }
    if (tries == KEYGEN_TRIES) {
        r = SF_ERR_CRYPTO; /* the random source is broken */
        goto out;
    }
    /* f: short. h = g / (3 f) in R/q (3f is invertible: x^p - x - 1 is irreducible mod q). */
    if ((r = short_random(wk.c, &wk, rng, rngctx)) != 0) {
        goto out;
    }
    if (rq_recip3(wk.h, wk.c, &wk.u.rq) != 0) {
        r = SF_ERR_INTERNAL;
        goto out;
    }
    rq_mult_small(wk.t, wk.h, wk.a, &wk.u.mult);
    if (rq_encode(pk, wk.t) != RQ_BYTES) {
        r = SF_ERR_INTERNAL;
        goto out;
    }
    small_encode(sk, wk.c);
    small_encode(sk + SMALL_BYTES, wk.b);
    memcpy(sk + SK_PK_OFF, pk, RQ_BYTES);
    if ((r = random_bytes(sk + SK_RHO_OFF, SMALL_BYTES, rng, rngctx)) != 0 ||
        (r = hash_prefix(&hs, sk + SK_CACHE_OFF, HASH_PK, pk, RQ_BYTES, NULL, 0)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        memset(pk, 0, SF_SNTRUP761_PUBLICKEY_BYTES);
        sf_wipe(sk, SF_SNTRUP761_SECRETKEY_BYTES);
    }
    hasher_free(&hs);
    sf_wipe(&wk, sizeof wk);
    return r;
}

int
sf_sntrup761_enc(uint8_t *ct, uint8_t *ss, const uint8_t *pk, sf_sntrup761_rng rng, void *rngctx)
{
    struct work wk;
    struct hasher hs = { NULL, NULL };
    uint8_t cache[HASH_BYTES];
    int r = SF_ERR_INTERNAL;

    if (ct == NULL || ss == NULL || pk == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = hasher_init(&hs)) != 0 ||
        (r = hash_prefix(&hs, cache, HASH_PK, pk, RQ_BYTES, NULL, 0)) != 0 ||
        (r = short_random(wk.c, &wk, rng, rngctx)) != 0 ||
        (r = hide(ct, &wk, &hs, pk, cache)) != 0 ||
        (r = hash_prefix(&hs, ss, HASH_SESSION, wk.hr, HASH_BYTES, ct, CT_BYTES)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        memset(ct, 0, SF_SNTRUP761_CIPHERTEXT_BYTES);
        sf_wipe(ss, SF_SNTRUP761_SHARED_BYTES);
    }
    hasher_free(&hs);
    sf_wipe(&wk, sizeof wk);
    return r;
}

int
sf_sntrup761_dec(uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    struct work wk;
    struct hasher hs = { NULL, NULL };
    const uint8_t *pk = sk + SK_PK_OFF;
    const uint8_t *rho = sk + SK_RHO_OFF;
    const uint8_t *cache = sk + SK_CACHE_OFF;
    uint8_t diff = 0;
    int32_t bad;
    int32_t differs;
    int r = SF_ERR_INTERNAL;

    if (ss == NULL || ct == NULL || sk == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = hasher_init(&hs)) != 0) {
        goto out;
    }
    /* Decrypt (spec 3.4): e = 3 f c in R/3, then r = e / g if it has weight W. */
    small_decode(wk.a, sk);               /* f */
    small_decode(wk.b, sk + SMALL_BYTES); /* 1/g */
    if (rounded_decode(wk.h, ct) != ROUNDED_BYTES) {
        r = SF_ERR_INTERNAL;
        goto out;
    }
    rq_mult_small(wk.t, wk.h, wk.a, &wk.u.mult);
    for (int i = 0; i < P; i++) {
        wk.a[i] = f3_freeze(fq_freeze(3 * wk.t[i])); /* R3_fromRq(3 f c) */
    }
    r3_mult(wk.c, wk.a, wk.b, &wk.u.mult);
    /* Not weight W: use r = (1,...,1,0,...,0) instead, as the specification does. */
    bad = weight_w_mask(wk.c);
    for (int i = 0; i < W; i++) {
        wk.c[i] = (small)(((wk.c[i] ^ 1) & ~bad) ^ 1);
    }
    for (int i = W; i < P; i++) {
        wk.c[i] = (small)(wk.c[i] & ~bad);
    }
    /* Re-encrypt, compare in constant time, and substitute rho on a mismatch. */
    if ((r = hide(wk.ctnew, &wk, &hs, pk, cache)) != 0) {
        goto out;
    }
    for (int i = 0; i < CT_BYTES; i++) {
        diff |= (uint8_t)(ct[i] ^ wk.ctnew[i]);
    }
    differs = mask_nonzero(diff); /* -1 if rejected: then rho, and prefix HASH_SESSION_BAD */
    for (int i = 0; i < SMALL_BYTES; i++) {
        wk.input[i] = (uint8_t)(wk.input[i] ^ (differs & (wk.input[i] ^ rho[i])));
    }
    if ((r = hash_prefix(&hs, wk.hr, HASH_INPUT, wk.input, SMALL_BYTES, NULL, 0)) != 0 ||
        (r = hash_prefix(&hs, ss, (uint8_t)(HASH_SESSION + differs), wk.hr, HASH_BYTES, ct,
                         CT_BYTES)) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sf_wipe(ss, SF_SNTRUP761_SHARED_BYTES);
    }
    hasher_free(&hs);
    sf_wipe(&wk, sizeof wk);
    sf_wipe(&diff, sizeof diff);
    return r;
}
