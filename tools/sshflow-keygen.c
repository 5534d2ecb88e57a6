/*
 * tools/sshflow-keygen.c -- a small ssh-keygen-style helper built on the
 * public API only: generate a key pair in OpenSSH format (-t, -b, -C, -N,
 * -f), or print a key file's fingerprint as `ssh-keygen -l` does (-l, -E).
 *
 * Owns: argument parsing and messages. Must never: use anything but
 * include/sshflow.h, or overwrite an existing key file (the library refuses).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sshflow.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: sshflow-keygen [-t ed25519|ecdsa|rsa] [-b bits] [-C comment] [-N passphrase] -f file\n"
                "       sshflow-keygen -l [-E sha256|md5] -f file\n"
                "\n"
                "  -t type     key type to generate (default ed25519)\n"
                "  -b bits     ECDSA 256/384/521, RSA 2048..16384 (default 256 / 3072)\n"
                "  -C comment  comment stored with the key\n"
                "  -N phrase   encrypt the private key (bcrypt, 16 rounds, aes256-ctr);\n"
                "              default: not encrypted (this tool never prompts)\n"
                "  -f file     private key file; the public key goes to file.pub.\n"
                "              Existing files are never overwritten.\n"
                "  -l          print the fingerprint line of file (public, RFC 4716,\n"
                "              certificate or private key) as ssh-keygen -l does\n"
                "  -E hash     fingerprint hash for -l: sha256 (default) or md5\n");
}

int main(int argc, char **argv)
{
    const char *type = "ed25519", *comment = NULL, *pass = NULL, *file = NULL, *hash = "SHA256";
    unsigned bits = 0;
    bool list = false;
    int o;

    while ((o = getopt(argc, argv, "t:b:C:N:f:lE:h")) != -1) {
        switch (o) {
        case 't':
            type = optarg;
            break;
        case 'b': {
            char *end = NULL;
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v > 65536) {
                fprintf(stderr, "sshflow-keygen: bad -b value \"%s\"\n", optarg);
                return 1;
            }
            bits = (unsigned)v;
            break;
        }
        case 'C':
            comment = optarg;
            break;
        case 'N':
            pass = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'l':
            list = true;
            break;
        case 'E':
            if (strcasecmp(optarg, "sha256") == 0) {
                hash = "SHA256";
            } else if (strcasecmp(optarg, "md5") == 0) {
                hash = "MD5";
            } else {
                fprintf(stderr, "sshflow-keygen: unsupported hash \"%s\" (sha256 or md5)\n", optarg);
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (file == NULL || optind != argc) {
        usage(stderr);
        return 1;
    }
    sshflow_error err;
    memset(&err, 0, sizeof(err));
    char msg[700];
    if (list) {
        char line[1024];
        if (sshflow_key_fingerprint_file(file, hash, line, sizeof(line), &err) != 0) {
            fprintf(stderr, "sshflow-keygen: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
            return 1;
        }
        printf("%s\n", line);
        return 0;
    }
    if (sshflow_keygen(type, bits, comment, pass, file, &err) != 0) {
        fprintf(stderr, "sshflow-keygen: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
        return 1;
    }
    char pub[4200];
    snprintf(pub, sizeof(pub), "%s.pub", file);
    printf("Your identification has been saved in %s\nYour public key has been saved in %s\n", file, pub);
    char line[1024];
    if (sshflow_key_fingerprint_file(pub, "SHA256", line, sizeof(line), &err) == 0) {
        printf("The key fingerprint is:\n%s\n", line);
    }
    return 0;
}
