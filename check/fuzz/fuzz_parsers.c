/*
 * check/fuzz/fuzz_parsers.c -- libFuzzer harness for the parsers that take
 * bytes from the peer or from files: buffer getters, public key blobs and
 * signatures, private key files, and the packet layer's decoder.
 *
 * Build: cmake -DSSHFLOW_FUZZ=ON -DCMAKE_C_COMPILER=clang ..., then
 *   ./fuzz_parsers -max_total_time=60 check/fuzz/corpus
 * The first input byte selects the target; the rest is its input.
 */
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "key.h"

static void fuzz_buf(const uint8_t *d, size_t n)
{
    struct sf_buf b, sub, list;
    const uint8_t *p = NULL;
    size_t len = 0;
    char cstr[64];
    uint32_t v = 0;

    sf_buf_init_view(&b, d, n);
    while (sf_buf_len(&b) > 0) {
        uint8_t op = 0;
        if (sf_buf_get_u8(&b, &op) != 0) {
            break;
        }
        int r = 0;
        switch (op % 6) {
        case 0:
            r = sf_buf_get_string(&b, &p, &len, 1024);
            break;
        case 1:
            r = sf_buf_get_mpint_pos(&b, &p, &len, 1024);
            break;
        case 2:
            r = sf_buf_get_namelist(&b, &list, 1024);
            if (r == 0) {
                const char *name = NULL;
                while (sf_namelist_next(&list, &name, &len) == 1) {
                }
            }
            break;
        case 3:
            r = sf_buf_get_cstr(&b, cstr, sizeof(cstr));
            break;
        case 4:
            r = sf_buf_get_sub(&b, &sub, 4096);
            break;
        default:
            r = sf_buf_get_u32(&b, &v);
            break;
        }
        if (r != 0) {
            break;
        }
    }
}

static void fuzz_pubkey(const uint8_t *d, size_t n)
{
    struct sf_pubkey *k = NULL;
    if (sf_pubkey_from_blob(d, n, &k) == 0) {
        static const uint8_t msg[] = "message";
        (void)sf_pubkey_verify(k, sf_pubkey_type(k), d, n, msg, sizeof(msg));
        (void)sf_pubkey_verify(k, "rsa-sha2-512", d, n, msg, sizeof(msg));
        sf_pubkey_free(k);
    }
}

static void fuzz_privkey(const uint8_t *d, size_t n)
{
    struct sf_privkey *k = NULL;
    if (sf_privkey_load(d, n, NULL, &k) == 0) {
        sf_privkey_free(k);
    }
}

static void fuzz_packets(const uint8_t *d, size_t n)
{
    static struct sf_tp tp;
    static int ready;
    struct sf_buf payload;
    uint8_t *room = NULL;

    if (!ready) {
        if (sf_tp_init(&tp) != 0) {
            return;
        }
        ready = 1;
    }
    tp.rxoff = tp.rxlen = tp.rxpkt = 0;
    tp.rxpeeked = false;
    size_t cap = sf_tp_rx_room(&tp, &room);
    size_t take = n < cap ? n : cap;
    memcpy(room, d, take);
    sf_tp_rx_commit(&tp, take);
    while (sf_tp_decode(&tp, &payload) == 1) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        fuzz_buf(data + 1, size - 1);
        break;
    case 1:
        fuzz_pubkey(data + 1, size - 1);
        break;
    case 2:
        fuzz_privkey(data + 1, size - 1);
        break;
    default:
        fuzz_packets(data + 1, size - 1);
        break;
    }
    return 0;
}
