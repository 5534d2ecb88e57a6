#!/usr/bin/env bash
# scripts/demo.sh -- install, build, then show sshflow against a private,
# throwaway OpenSSH server on 127.0.0.1:
#   (a) a remote command's output and non-zero exit code come back;
#   (b) 100 MiB go through `cat` and back unchanged (sha256), timed.
#
# Environment:
#   SSHFLOW_DEMO_CLIENT=ssh   use the real OpenSSH client instead of build/sshflow
#                             (checks the server part; useful for comparisons)
#   SSHFLOW_DEMO_MIB=N        size of the round trip in MiB (default 100)
#   BUILD_DIR=DIR             build directory (default build)
# Exits non-zero if any check fails. Owns nothing outside its temp dir and
# the sshd it starts (stopped, and the dir removed, on any exit).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

client_kind=${SSHFLOW_DEMO_CLIENT:-sshflow}
mib=${SSHFLOW_DEMO_MIB:-100}
build_dir=${BUILD_DIR:-build}
case "$mib" in '' | *[!0-9]*) sf_die "SSHFLOW_DEMO_MIB must be a number" ;; esac

sf_log "step 0: install what is missing"
sf_install_deps

case "$client_kind" in
sshflow)
    sf_log "step 0: build the CLI (in $build_dir)"
    SF_BUILD_TARGET=sshflow_cli sf_build "$build_dir"
    case "$build_dir" in
    /*) cli="$build_dir/sshflow" ;;
    *) cli="$SF_ROOT/$build_dir/sshflow" ;;
    esac
    [ -x "$cli" ] || sf_die "no CLI at $cli"
    ;;
ssh)
    sf_log "step 0: SSHFLOW_DEMO_CLIENT=ssh: using the OpenSSH client, not building"
    sf_ensure_run_sshd
    ;;
*)
    sf_die "SSHFLOW_DEMO_CLIENT must be sshflow or ssh"
    ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/sshflow-demo.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local rc=$?
    sf_sshd_stop "$work"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sf_log "step 1: start a private sshd (throwaway keys in $work)"
sf_sshd_start "$work"
echo "    sshd pid $SF_SSHD_PID listening on 127.0.0.1:$SF_SSHD_PORT, user $SF_SSHD_USER"
echo "    host keys pinned in $SF_SSHD_KNOWN_HOSTS, user key $SF_SSHD_KEY"

# The client command line, without the remote command.
if [ "$client_kind" = ssh ]; then
    client_cmd=("$SF_SSH" -F /dev/null -o BatchMode=yes -o GlobalKnownHostsFile=/dev/null
        -o UpdateHostKeys=no -o IdentitiesOnly=yes)
else
    client_cmd=("$cli")
fi
client_cmd+=(-p "$SF_SSHD_PORT" -i "$SF_SSHD_KEY" -o "UserKnownHostsFile=$SF_SSHD_KNOWN_HOSTS"
    -o StrictHostKeyChecking=yes -l "$SF_SSHD_USER" 127.0.0.1)
echo "    client: ${client_cmd[*]}"

failed=0

# ---- (a) exit code ----
# shellcheck disable=SC2016 # expanded by the remote shell
remote_cmd='echo "hello from $(uname -n) as $(id -un)"; echo "this line goes to stderr" >&2; exit 42'
sf_log "step 2: run a remote command whose exit code is 42"
echo "    command: $remote_cmd"
set +e
timeout 60 "${client_cmd[@]}" "$remote_cmd" >"$work/a.out" 2>"$work/a.err" </dev/null
code=$?
set -e
echo "    stdout:  $(cat "$work/a.out")"
echo "    stderr:  $(cat "$work/a.err")"
echo "    exit code: $code"
if [ "$code" -eq 42 ] && grep -q '^hello from .* as ' "$work/a.out" &&
    grep -q 'this line goes to stderr' "$work/a.err"; then
    echo "    OK: output and exit code 42 came back"
else
    echo "    FAIL: expected exit code 42, the hello line on stdout and the stderr line"
    failed=1
fi

# ---- (b) round trip ----
sf_log "step 3: send $mib MiB of random bytes through 'cat' on the server and back"
head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/in"
echo "    command: ${client_cmd[0]##*/} ... cat < in > out"
start_ns=$(date +%s%N)
set +e
timeout 600 "${client_cmd[@]}" cat <"$work/in" >"$work/out" 2>"$work/b.err"
code=$?
set -e
end_ns=$(date +%s%N)
ms=$(((end_ns - start_ns) / 1000000))
sum_in=$(sha256sum <"$work/in" | cut -d' ' -f1)
sum_out=$(sha256sum <"$work/out" | cut -d' ' -f1)
size_out=$(stat -c %s "$work/out")
echo "    sha256 in:  $sum_in"
echo "    sha256 out: $sum_out  ($size_out bytes)"
if [ "$ms" -gt 0 ]; then
    echo "    time: $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s, $((mib * 1000 * 100 / ms / 100)).$(printf '%02d' $((mib * 1000 * 100 / ms % 100))) MiB/s each way"
fi
if [ "$code" -eq 0 ] && [ "$sum_in" = "$sum_out" ]; then
    echo "    OK: $mib MiB came back unchanged"
else
    echo "    FAIL: exit code $code, sums $( [ "$sum_in" = "$sum_out" ] && echo match || echo differ)"
    sed 's/^/    stderr: /' "$work/b.err" | head -20
    failed=1
fi

sf_log "step 4: stop the server and remove $work"
sf_sshd_stop "$work"
if [ "$failed" -eq 0 ]; then
    sf_log "demo passed"
else
    sf_log "demo FAILED"
fi
exit "$failed"
