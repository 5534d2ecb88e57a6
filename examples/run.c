/*
 * examples/run.c -- the README's example: run one command on a server over
 * SSH and copy its output to stdout.
 *
 *   run HOST PORT USER KEYFILE KNOWN_HOSTS COMMAND
 */
#include <stdio.h>
#include <stdlib.h>

#include "sshflow.h"

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s host port user keyfile known_hosts command\n", argv[0]);
        return 2;
    }
    sshflow_error err;
    char msg[600];
    int code = 255;

    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *trust = sshflow_hostauth_known_hosts(argv[5], SSHFLOW_HOSTKEY_STRICT);
    sshflow_request *req = sshflow_request_exec(argv[6]);
    if (cred == NULL || trust == NULL || req == NULL ||
        sshflow_cred_add_keyfile(cred, argv[4], NULL, &err) != 0) {
        fprintf(stderr, "setup: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
        goto out;
    }

    /* Any reliable byte stream will do; here, TCP. */
    sshflow_flow *tcp = sshflow_connect_tcp(argv[1], (uint16_t)atoi(argv[2]), 10000, &err);
    if (tcp == NULL) {
        fprintf(stderr, "connect: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
        goto out;
    }
    /* Upgrade it to SSH; the result is a flow again (the channel). */
    sshflow_flow *ch = sshflow_client_of_flow(tcp, argv[3], cred, trust, req, NULL, &err);
    if (ch == NULL) {
        fprintf(stderr, "ssh: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
        goto out;
    }
    sshflow_shutdown(ch, NULL); /* nothing to send: EOF on the remote stdin */

    char buf[65536];
    ssize_t n;
    while ((n = sshflow_read_into(ch, buf, sizeof(buf), &err)) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
    }
    if (n < 0) {
        fprintf(stderr, "read: %s\n", sshflow_strerror(&err, msg, sizeof(msg)));
    }
    sshflow_close_timeout(ch, 5000, NULL); /* waits for the server's close */

    sshflow_exit ex;
    sshflow_exit_info(ch, &ex);
    code = ex.kind == SSHFLOW_EXIT_STATUS ? (int)ex.status : 255;
    sshflow_free(ch);
out:
    sshflow_request_free(req);
    sshflow_hostauth_free(trust);
    sshflow_cred_free(cred);
    return code;
}
