#!/usr/bin/env bash
# bench/compare.sh -- sshflow side by side with libssh2, libssh, paramiko and
# OpenSSH's ssh, on one private sshd (127.0.0.1, throwaway keys, from
# scripts/lib.sh). Measures; asserts nothing about speed, only that every
# transfer arrived intact.
#
#   bench/compare.sh [MiB] [runs]          defaults: 128 MiB, 3 runs
#
# Environment:
#   BENCH_CLIENTS     clients to run, in this order (default
#                     "sshflow libssh2 libssh paramiko ssh sshflow-cli";
#                     sshflow-cli is the sshflow command-line tool, run
#                     like ssh)
#   BENCH_HANDSHAKES  connections for the handshake median (default 20)
#   BENCH_BUILD       build directory (default /tmp/sshflow-bench-build)
#   BENCH_NO_INSTALL  1: do not apt-get install missing packages
#   BENCH_RAW         a file to copy the raw per-run results to
#
# What it does: installs the bench's own Debian packages if missing (list
# below; scripts/lib.sh's list is not touched), builds sshflow (Release,
# cmake -S <repo> -B $BENCH_BUILD) and the C clients bench/client_*.c with
# gcc, starts sshd, makes a file of N MiB of random bytes and, for every
# cipher x mode x run, runs each client once (clients interleaved, so drift
# in machine load spreads over all of them):
#   upload     remote `sha256sum` reads the data; its hash must match
#   download   remote `cat FILE`; the client compares every byte with FILE
#   roundtrip  remote `cat`; the client sends FILE and compares what returns
# A client library that cannot negotiate a cipher (probed with one
# connection) gets "n/a" for it. Then each client makes BENCH_HANDSHAKES
# connections (connect, kex, host key check, auth, exec "true", exit status)
# and the median is reported; libssh2, libssh and paramiko leave Nagle's
# algorithm on by default, so they are also measured with TCP_NODELAY asked
# for (client option -N; sshflow sets it always). Prints markdown on stdout, progress on stderr.
#
# Clocks: the library clients time themselves from before the TCP connect to
# after the close (bench/bench_common.h); ssh and sshflow-cli are timed from
# outside (process start to exit, so process start-up is included).
# Peak RSS is /usr/bin/time's %M of the client process.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mib=${1:-128}
runs=${2:-3}
hs_n=${BENCH_HANDSHAKES:-20}
read -r -a clients <<<"${BENCH_CLIENTS:-sshflow libssh2 libssh paramiko ssh sshflow-cli}"
build=${BENCH_BUILD:-/tmp/sshflow-bench-build}
PY=/usr/bin/python3 # Debian's python (python3-paramiko), not a pyenv/venv one
case "$mib" in '' | *[!0-9]*) sf_die "MiB must be a number" ;; esac
case "$runs" in '' | *[!0-9]* | 0) sf_die "runs must be a number > 0" ;; esac

# ---- dependencies (bench only) ----

BENCH_DEPS=(build-essential cmake pkg-config libssl-dev openssh-server openssh-client
            libssh2-1-dev libssh-dev python3 python3-paramiko time util-linux coreutils)

bench_install_deps() {
    local missing=() p
    if [ "${BENCH_NO_INSTALL:-0}" = 1 ]; then
        return 0
    fi
    if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        sf_warn "no dpkg/apt-get: not installing (need: ${BENCH_DEPS[*]})"
        return 0
    fi
    for p in "${BENCH_DEPS[@]}"; do
        sf_pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    sf_log "installing: ${missing[*]}" >&2
    sf_sudo apt-get update >&2
    sf_sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

# ---- build ----

bench_build() {
    local cf=(-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter)
    sf_log "building sshflow (Release) in $build" >&2
    cmake -S "$SF_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSSHFLOW_TESTS=OFF >/dev/null
    cmake --build "$build" -j2 --target sshflow_shared sshflow_cli >/dev/null
    mkdir -p "$build/bench"
    sf_log "building the C clients" >&2
    # sshflow: the public header only, against the shared library (which
    # exports nothing but the SSHFLOW_API symbols).
    gcc "${cf[@]}" -I"$SF_ROOT/include" bench/client_sshflow.c bench/bench_common.c \
        -L"$build" -lsshflow -Wl,-rpath,"$build" -lpthread -o "$build/bench/client_sshflow"
    # shellcheck disable=SC2046 # pkg-config output is meant to split
    gcc "${cf[@]}" bench/client_libssh2.c bench/bench_common.c \
        $(pkg-config --cflags --libs libssh2) -o "$build/bench/client_libssh2"
    # shellcheck disable=SC2046
    gcc "${cf[@]}" bench/client_libssh.c bench/bench_common.c \
        $(pkg-config --cflags --libs libssh) -o "$build/bench/client_libssh"
}

bench_install_deps
bench_build

# ---- the server and the data ----

if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    dir=$(mktemp -d /dev/shm/sshflow-compare.XXXXXX) # data in RAM: no disk in the numbers
else
    dir=$(mktemp -d /tmp/sshflow-compare.XXXXXX)
fi
trap 'sf_sshd_stop "$dir"; rm -rf "$dir"' EXIT
sf_sshd_start "$dir" >&2
bytes=$((mib * 1048576))
head -c "$bytes" /dev/urandom >"$dir/in"
want=$(sha256sum <"$dir/in" | cut -d' ' -f1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# Cipher configurations: label|cipher|mac (mac empty for AEAD ciphers).
configs=(
    "chacha20-poly1305|chacha20-poly1305@openssh.com|"
    "aes128-gcm|aes128-gcm@openssh.com|"
    "aes128-ctr + hmac-sha2-256-etm|aes128-ctr|hmac-sha2-256-etm@openssh.com"
    "aes128-ctr + hmac-sha2-256|aes128-ctr|hmac-sha2-256"
)
modes=(upload download roundtrip)
KEX=curve25519-sha256
HOSTKEY=ssh-ed25519

# argv of a client (before MODE ARG) for cipher $2, mac $3, in CMD
cmd_for() {
    local c=$1 cipher=$2 mac=$3 kex=$KEX
    case "$c" in
    sshflow | libssh2 | libssh | paramiko)
        if [ "$c" = paramiko ]; then
            kex=curve25519-sha256@libssh.org # the same algorithm; paramiko knows only this name
            CMD=("$PY" bench/client_paramiko.py)
        else
            CMD=("$build/bench/client_$c")
        fi
        CMD+=(-p "$SF_SSHD_PORT" -l "$SF_SSHD_USER" -i "$SF_SSHD_KEY" -k "$SF_SSHD_KNOWN_HOSTS"
            -x "$kex" -H "$HOSTKEY" -c "$cipher" ${mac:+-m "$mac"})
        ;;
    ssh | sshflow-cli)
        if [ "$c" = ssh ]; then
            CMD=(ssh -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes)
        else
            CMD=("$build/sshflow")
        fi
        CMD+=(-p "$SF_SSHD_PORT" -i "$SF_SSHD_KEY" -o UserKnownHostsFile="$SF_SSHD_KNOWN_HOSTS"
            -o StrictHostKeyChecking=yes -o KexAlgorithms="$kex" -o HostKeyAlgorithms="$HOSTKEY"
            -o Ciphers="$cipher" ${mac:+-o MACs="$mac"} -l "$SF_SSHD_USER" 127.0.0.1)
        ;;
    *) sf_die "unknown client $c" ;;
    esac
}

is_lib() { case "$1" in ssh | sshflow-cli) return 1 ;; *) return 0 ;; esac; }

# probe CLIENT CIPHER MAC: true if one connection with these algorithms works
probe() {
    local c=$1 cipher=$2 mac=$3
    cmd_for "$c" "$cipher" "$mac"
    if is_lib "$c"; then
        "${CMD[@]}" handshake 1 >/dev/null 2>"$dir/probe.err"
    else
        "${CMD[@]}" true </dev/null >/dev/null 2>"$dir/probe.err"
    fi
}

# run_one CLIENT CIPHER MAC MODE: sets R_SECS and R_RSS (KiB); dies on wrong data
run_one() {
    local c=$1 cipher=$2 mac=$3 mode=$4 out t0 t1 line secs got arg
    cmd_for "$c" "$cipher" "$mac"
    if is_lib "$c"; then
        line=$(/usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" "$mode" "$dir/in" </dev/null) ||
            sf_die "$c $cipher $mode failed"
        line=$(grep '^RESULT ' <<<"$line") || sf_die "$c $cipher $mode: no RESULT line"
        secs=$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$line")
        got=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$line")
        [ "$got" = "$bytes" ] || sf_die "$c $cipher $mode: $got bytes, not $bytes"
        case "$line" in *"cipher=$cipher "*) ;; *) sf_die "$c: negotiated something else: $line" ;; esac
        if [ -n "$mac" ]; then
            case "$line" in *"mac=$mac"*) ;; *) sf_die "$c: negotiated another MAC: $line" ;; esac
        fi
        if [ "$mode" = upload ]; then
            case "$line" in *" hash=$want"*) ;; *) sf_die "$c $cipher upload: wrong hash" ;; esac
        fi
    else
        rm -f "$dir/out"
        t0=$(date +%s%N)
        case "$mode" in
        upload)
            out=$(/usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" sha256sum <"$dir/in")
            [ "${out%% *}" = "$want" ] || sf_die "$c $cipher upload: wrong hash"
            ;;
        download)
            arg="cat '$dir/in'"
            /usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" "$arg" </dev/null >"$dir/out"
            ;;
        roundtrip)
            /usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" cat <"$dir/in" >"$dir/out"
            ;;
        esac
        t1=$(date +%s%N)
        if [ "$mode" != upload ]; then
            cmp -s "$dir/in" "$dir/out" || sf_die "$c $cipher $mode: wrong data"
        fi
        rm -f "$dir/out"
        secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
    fi
    R_SECS=$secs
    R_RSS=$(tail -1 "$dir/rss")
    case "$R_SECS" in '' | *[!0-9.]*) sf_die "$c $cipher $mode: no time measured" ;; esac
}

# ---- throughput ----

: >"$dir/results" # label|client|mode|run|secs|rss_kib   (secs "n/a": unsupported)
: >"$dir/unsupported"
for cfg in "${configs[@]}"; do
    IFS='|' read -r label cipher mac <<<"$cfg"
    ok=()
    for c in "${clients[@]}"; do
        if probe "$c" "$cipher" "$mac"; then
            ok+=("$c")
        else
            printf '%s|%s|%s\n' "$c" "$label" "$(tail -1 "$dir/probe.err" | cut -c1-160)" \
                >>"$dir/unsupported"
            for mode in "${modes[@]}"; do
                printf '%s|%s|%s|0|n/a|0\n' "$label" "$c" "$mode" >>"$dir/results"
            done
            sf_log "$c: $label not supported ($(tail -1 "$dir/probe.err" | cut -c1-100))" >&2
        fi
    done
    for mode in "${modes[@]}"; do
        for r in $(seq 1 "$runs"); do
            for c in "${ok[@]}"; do
                run_one "$c" "$cipher" "$mac" "$mode"
                secs=$R_SECS
                rss=$R_RSS
                printf '%s|%s|%s|%s|%s|%s\n' "$label" "$c" "$mode" "$r" "$secs" "$rss" >>"$dir/results"
                printf '  %-10s %-32s %-9s run %s: %7.1f MiB/s  %6.1f MiB RSS\n' "$c" "$label" "$mode" "$r" \
                    "$(awk -v m="$mib" -v s="$secs" 'BEGIN { print m / s }')" \
                    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" >&2
            done
        done
    done
done

# ---- handshakes ----

: >"$dir/hs" # client|ms
hs_clients=()
for c in "${clients[@]}"; do
    hs_clients+=("$c")
    case "$c" in libssh2 | libssh | paramiko) hs_clients+=("$c -N") ;; esac
done
for hc in "${hs_clients[@]}"; do
    read -r c flag <<<"$hc"
    sf_log "handshakes: $hc x $hs_n" >&2
    cmd_for "$c" aes128-ctr hmac-sha2-256
    if is_lib "$c"; then
        line=$("${CMD[@]}" ${flag:+"$flag"} handshake "$hs_n" </dev/null) || sf_die "$hc handshake failed"
        sed -n 's/.* ms=\([0-9.,]*\).*/\1/p' <<<"$line" | tr ',' '\n' | sed "s/^/$hc|/" >>"$dir/hs"
    else
        for _ in $(seq 1 "$hs_n"); do
            t0=$(date +%s%N)
            "${CMD[@]}" true </dev/null >/dev/null || sf_die "$c handshake failed"
            t1=$(date +%s%N)
            awk -v c="$c" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s|%.3f\n", c, (b - a) / 1e6 }' >>"$dir/hs"
        done
    fi
done
if [ -n "${BENCH_RAW:-}" ]; then
    { echo "# label|client|mode|run|secs|rss_kib"; cat "$dir/results"
      echo "# client|handshake_ms"; cat "$dir/hs"; } >"$BENCH_RAW"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ----

pkgver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
echo "## bench/compare.sh $mib MiB, best of $runs"
echo
echo "- started $started, ended $(date -u '+%H:%M UTC'); $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)); load average before $load_before, after $load_after"
echo "- server: OpenSSH sshd $(pkgver openssh-server) on the same machine ($(ssh -V 2>&1))"
echo "- sshflow $(sed -n 's/^#define SSHFLOW_VERSION "\(.*\)"/\1/p' include/sshflow.h) ($(git -C "$SF_ROOT" describe --always --dirty 2>/dev/null || echo '?'), Release build)"
echo "- libssh2 $(pkgver libssh2-1), libssh $(pkgver libssh-4), paramiko $(pkgver python3-paramiko) (python $($PY -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo '?'), cryptography $(pkgver python3-cryptography)), OpenSSH ssh $(pkgver openssh-client), OpenSSL $(pkgver libssl3)"
echo "- every connection: kex curve25519-sha256, host key ssh-ed25519 checked against known_hosts, publickey auth with an unencrypted ed25519 key"
echo
echo "### Throughput (MiB/s, best of $runs; spread = slowest..fastest run; RSS = peak of the client process, largest run)"
echo
awk -F'|' -v mib="$mib" -v order="${clients[*]}" '
    BEGIN { n = split(order, cl, " ") }
    {
        k = $1 SUBSEP $3 SUBSEP $2
        if (!(($1 SUBSEP $3) in seen)) { seen[$1 SUBSEP $3] = 1; rows[++nr] = $1 SUBSEP $3 }
        if ($5 == "n/a") { na[k] = 1; next }
        v = mib / $5
        if (!(k in best) || v > best[k]) best[k] = v
        if (!(k in worst) || v < worst[k]) worst[k] = v
        if (!(k in rss) || $6 > rss[k]) rss[k] = $6
    }
    END {
        print "| cipher | mode | client | MiB/s | spread | RSS MiB |"
        print "|---|---|---|---:|---:|---:|"
        for (i = 1; i <= nr; i++) {
            split(rows[i], p, SUBSEP)
            for (j = 1; j <= n; j++) {
                k = rows[i] SUBSEP cl[j]
                if (k in na) { printf "| %s | %s | %s | n/a | | |\n", p[1], p[2], cl[j]; continue }
                if (!(k in best)) continue
                printf "| %s | %s | %s | %.0f | %.0f..%.0f (%.0f %%) | %.1f |\n", p[1], p[2], cl[j],
                    best[k], worst[k], best[k], 100 * (best[k] - worst[k]) / best[k], rss[k] / 1024
            }
        }
        print ""
        print "### The same, best MiB/s only"
        print ""
        printf "| cipher | mode |"; for (j = 1; j <= n; j++) printf " %s |", cl[j]; print ""
        printf "|---|---|"; for (j = 1; j <= n; j++) printf "---:|"; print ""
        for (i = 1; i <= nr; i++) {
            split(rows[i], p, SUBSEP)
            printf "| %s | %s |", p[1], p[2]
            for (j = 1; j <= n; j++) {
                k = rows[i] SUBSEP cl[j]
                if (k in best) printf " %.0f |", best[k]; else printf " n/a |"
            }
            print ""
        }
    }' "$dir/results"
echo
echo "### Handshake (connect + kex + host key check + auth + exec \"true\" + exit status + close; aes128-ctr + hmac-sha2-256; $hs_n connections)"
echo
echo "| client | median ms | fastest ms | slowest ms | timed |"
echo "|---|---:|---:|---:|---|"
for hc in "${hs_clients[@]}"; do
    read -r c flag <<<"$hc"
    if [ -n "$flag" ]; then
        name="$c, TCP_NODELAY"
    else
        name=$c
    fi
    grep "^$hc|" "$dir/hs" | cut -d'|' -f2 | sort -g |
        awk -v c="$name" -v how="$(is_lib "$c" && echo 'in the process' || echo 'whole process')" '
        { v[NR] = $1 }
        END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "| %s | %.1f | %.1f | %.1f | %s |\n", c, m, v[1], v[NR], how
        }'
done
if [ -s "$dir/unsupported" ]; then
    echo
    echo "### Not supported (probe connection failed)"
    echo
    while IFS='|' read -r c label why; do
        echo "- $c: $label — $why"
    done <"$dir/unsupported"
fi
