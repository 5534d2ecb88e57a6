#!/usr/bin/env bash
# bench/throughput.sh -- sshflow's CLI side by side with OpenSSH's ssh on the
# same private sshd (127.0.0.1, throwaway keys): upload, download and a
# round trip through `cat`, per cipher. Prints MiB/s (best of N runs) and
# the client's peak RSS. Measures; asserts nothing except that the data
# arrived intact.
#
#   bench/throughput.sh [MiB] [runs]     defaults: 256 MiB, 3 runs
# Needs a built build/sshflow (scripts/test.sh or scripts/demo.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mib=${1:-256}
runs=${2:-3}
cli=${SSHFLOW_CLI:-$SF_ROOT/build/sshflow}
[ -x "$cli" ] || sf_die "no $cli: build first (scripts/test.sh)"
command -v /usr/bin/time >/dev/null 2>&1 || sf_sudo apt-get install -y -qq time >/dev/null

dir=$(mktemp -d /tmp/sshflow-bench.XXXXXX)
trap 'sf_sshd_stop "$dir"; rm -rf "$dir"' EXIT
sf_sshd_start "$dir"
bytes=$((mib * 1048576))
head -c "$bytes" /dev/urandom >"$dir/in"
want=$(sha256sum <"$dir/in" | cut -d' ' -f1)

# cmd_for KIND CIPHER: the client's argv (before the remote command) in CMD
cmd_for() {
    local kind=$1 cipher=$2
    if [ "$kind" = sshflow ]; then
        CMD=("$cli" -p "$SF_SSHD_PORT" -i "$SF_SSHD_KEY" -o UserKnownHostsFile="$SF_SSHD_KNOWN_HOSTS"
            -o StrictHostKeyChecking=yes -o Ciphers="$cipher" -l "$SF_SSHD_USER" 127.0.0.1)
    else
        CMD=(ssh -F /dev/null -p "$SF_SSHD_PORT" -i "$SF_SSHD_KEY" -o IdentitiesOnly=yes
            -o UserKnownHostsFile="$SF_SSHD_KNOWN_HOSTS" -o StrictHostKeyChecking=yes
            -o BatchMode=yes -o Ciphers="$cipher" -l "$SF_SSHD_USER" 127.0.0.1)
    fi
}

# measure KIND CIPHER MODE: prints "seconds rss_kib" of the best run
measure() {
    local kind=$1 cipher=$2 mode=$3 best="" rss="" i t0 t1 s m out
    cmd_for "$kind" "$cipher"
    for i in $(seq 1 "$runs"); do
        t0=$(date +%s.%N)
        case "$mode" in
        upload)
            out=$(/usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" sha256sum <"$dir/in" 2>/dev/null)
            [ "${out%% *}" = "$want" ] || sf_die "$kind $cipher upload: wrong data"
            ;;
        download)
            /usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" "cat $dir/in" </dev/null >"$dir/out"
            cmp -s "$dir/in" "$dir/out" || sf_die "$kind $cipher download: wrong data"
            ;;
        roundtrip)
            /usr/bin/time -f '%M' -o "$dir/rss" "${CMD[@]}" cat <"$dir/in" >"$dir/out"
            cmp -s "$dir/in" "$dir/out" || sf_die "$kind $cipher round trip: wrong data"
            ;;
        esac
        t1=$(date +%s.%N)
        s=$(echo "$t1 - $t0" | bc -l)
        m=$(tail -1 "$dir/rss")
        if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then
            best=$s
            rss=$m
        fi
    done
    echo "$best $rss"
}

command -v bc >/dev/null 2>&1 || sf_sudo apt-get install -y -qq bc >/dev/null
printf '%-10s %-32s %-10s %10s %10s\n' client cipher mode MiB/s rss_MiB
for cipher in chacha20-poly1305@openssh.com aes128-gcm@openssh.com aes128-ctr; do
    for mode in upload download roundtrip; do
        for kind in sshflow ssh; do
            read -r s rss < <(measure "$kind" "$cipher" "$mode")
            printf '%-10s %-32s %-10s %10.1f %10.1f\n' "$kind" "$cipher" "$mode" \
                "$(echo "$mib / $s" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
        done
    done
done
