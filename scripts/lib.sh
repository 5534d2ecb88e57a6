# shellcheck shell=bash
# scripts/lib.sh -- shell helpers shared by scripts/test.sh, scripts/demo.sh
# and .ci/run. Source it; it defines functions and a few variables only.
#
# Owns: installing the build and test dependencies (apt), configuring and
# building with CMake, and a private throwaway OpenSSH server on 127.0.0.1
# (sf_sshd_start / sf_sshd_stop). Must never: touch ~/.ssh or /etc/ssh, stop
# a process it did not start, or listen anywhere but 127.0.0.1.
#
# The server set-up mirrors check/testlib/sshd.c (the C harness the interop
# tests use); keep the two sshd_config default lists in step.

SF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SF_SSHD=/usr/sbin/sshd
SF_SSH=/usr/bin/ssh
SF_SSH_KEYGEN=/usr/bin/ssh-keygen

# Debian packages the build, the tests and the demo need.
SF_DEPS=(build-essential cmake pkg-config libssl-dev zlib1g-dev openssl check openssh-server openssh-client
         valgrind passwd coreutils util-linux
         dropbear-bin tinysshd python3 python3-paramiko python3-asyncssh ssh-audit)

sf_log() { printf '==> %s\n' "$*"; }
sf_warn() { printf 'warning: %s\n' "$*" >&2; }
sf_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Run as root: directly when we are root, else through sudo.
sf_sudo() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# True if dpkg says the package is installed.
sf_pkg_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

SF_APT_UPDATED=${SF_APT_UPDATED:-0}

# Install whatever of SF_DEPS is missing (apt-get update once, only if needed).
sf_install_deps() {
    local missing=() p
    if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        sf_warn "no dpkg/apt-get here: not installing dependencies (need: ${SF_DEPS[*]})"
        return 0
    fi
    for p in "${SF_DEPS[@]}"; do
        sf_pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        sf_log "dependencies: all installed"
        return 0
    fi
    sf_log "installing: ${missing[*]}"
    # tinysshd's package would enable a listener on port 22 of every address
    # on a systemd machine; its unit skips itself when this file exists.
    sf_sudo install -d -m 0755 /etc/tinyssh
    sf_sudo touch /etc/tinyssh/disable_tinysshd
    if [ "$SF_APT_UPDATED" != 1 ]; then
        sf_sudo apt-get update
        SF_APT_UPDATED=1
    fi
    sf_sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# sshd's privilege separation directory.
sf_ensure_run_sshd() {
    if [ ! -d /run/sshd ]; then
        sf_sudo install -d -m 0755 /run/sshd
    fi
}

# sf_build DIR [cmake args...]: configure (RelWithDebInfo, -Werror) and build with -j2.
# SF_BUILD_TARGET=T builds only target T (the demo builds just the CLI).
sf_build() {
    local dir=$1
    shift
    sf_ensure_run_sshd
    sf_log "configuring $dir $*"
    cmake -S "$SF_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSHFLOW_WERROR=ON "$@"
    sf_log "building $dir${SF_BUILD_TARGET:+ (target $SF_BUILD_TARGET)}"
    cmake --build "$dir" -j2 ${SF_BUILD_TARGET:+--target "$SF_BUILD_TARGET"}
}

# ---- the private sshd ----

# Comma list of the names in $2.. that `ssh -Q $1` knows (all of them if the query fails).
sf_algs_known() {
    local what=$1 known name out=""
    shift
    known=$("$SF_SSH" -Q "$what" 2>/dev/null) || known=""
    for name in "$@"; do
        if [ -n "$known" ] && ! grep -qxF -- "$name" <<<"$known"; then
            continue
        fi
        out="${out:+$out,}$name"
    done
    printf '%s' "$out"
}

# Live descendants of pid $1 (children first found, then theirs), from /proc.
sf_descendants() {
    local root=$1 f pid ppid rest changed=1 out="" set
    set=" $root "
    while [ "$changed" = 1 ]; do
        changed=0
        for f in /proc/[0-9]*/stat; do
            pid=${f#/proc/}
            pid=${pid%/stat}
            case "$set" in *" $pid "*) continue ;; esac
            IFS= read -r rest 2>/dev/null <"$f" || continue
            rest=${rest##*) }        # after "pid (comm) ": "S ppid ..."
            read -r _ ppid _ <<<"$rest"
            case "$set" in
            *" $ppid "*)
                set="$set$pid "
                out="$out $pid"
                changed=1
                ;;
            esac
        done
    done
    printf '%s' "$out"
}

# True if 127.0.0.1:$1 accepts a connection and sends an SSH-2.0 banner.
sf_port_speaks_ssh() {
    local line=""
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        exec 3<&-
        case "$line" in SSH-2.0-*) exit 0 ;; *) exit 1 ;; esac
    ) 2>/dev/null
}

# True if something already listens on 127.0.0.1:$1.
sf_port_busy() {
    ( exec 3<>"/dev/tcp/127.0.0.1/$1" ) 2>/dev/null
}

# sf_sshd_start DIR [extra sshd_config lines]
# Creates in DIR (which must exist and be private): host keys (ed25519,
# ecdsa 256, rsa 3072, ecdsa 384), a user key id_ed25519 (authorized),
# authorized_keys, sshd_config, known_hosts ("[127.0.0.1]:PORT" for every
# host key), then starts `sshd -D -e -f DIR/sshd_config -E DIR/sshd.log` on a
# free 127.0.0.1 port and waits (10 s at most) until it answers with an SSH
# banner. Sets SF_SSHD_PORT, SF_SSHD_PID, SF_SSHD_USER, SF_SSHD_KEY,
# SF_SSHD_KNOWN_HOSTS and writes DIR/port. The server dies with this shell
# (setpriv --pdeathsig) if sf_sshd_stop is never reached.
sf_sshd_start() {
    local dir=$1 extra=${2:-} k t b port pid i kex ciphers macs hostalgs
    [ -d "$dir" ] || sf_die "sf_sshd_start: no directory $dir"
    [ -x "$SF_SSHD" ] || sf_die "no $SF_SSHD (apt-get install openssh-server)"
    sf_ensure_run_sshd

    # Keys: generated concurrently, RSA dominates (about a second).
    local pids=()
    for k in ed25519:ed25519: ecdsa256:ecdsa:256 rsa:rsa:3072 ecdsa384:ecdsa:384; do
        IFS=: read -r i t b <<<"$k"
        rm -f "$dir/ssh_host_${i}_key" "$dir/ssh_host_${i}_key.pub"
        "$SF_SSH_KEYGEN" -q -N '' -t "$t" ${b:+-b "$b"} -C "sshflow-demo-host-$i" \
            -f "$dir/ssh_host_${i}_key" </dev/null &
        pids+=("$!")
    done
    rm -f "$dir/id_ed25519" "$dir/id_ed25519.pub"
    "$SF_SSH_KEYGEN" -q -N '' -t ed25519 -C sshflow-demo-user -f "$dir/id_ed25519" </dev/null &
    pids+=("$!")
    for i in "${pids[@]}"; do
        wait "$i" || sf_die "ssh-keygen failed"
    done
    cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"

    kex=$(sf_algs_known kex mlkem768x25519-sha256 sntrup761x25519-sha512 \
        sntrup761x25519-sha512@openssh.com curve25519-sha256 curve25519-sha256@libssh.org \
        ecdh-sha2-nistp256 ecdh-sha2-nistp384 ecdh-sha2-nistp521 \
        diffie-hellman-group14-sha256 diffie-hellman-group16-sha512)
    ciphers=$(sf_algs_known cipher chacha20-poly1305@openssh.com aes128-gcm@openssh.com \
        aes256-gcm@openssh.com aes128-ctr aes192-ctr aes256-ctr)
    macs=$(sf_algs_known mac hmac-sha2-256-etm@openssh.com hmac-sha2-512-etm@openssh.com \
        hmac-sha2-256 hmac-sha2-512)
    hostalgs=$(sf_algs_known HostKeyAlgorithms ssh-ed25519 ecdsa-sha2-nistp256 \
        ecdsa-sha2-nistp384 ecdsa-sha2-nistp521 rsa-sha2-512 rsa-sha2-256)

    SF_SSHD_PID=""
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 40000))
        sf_port_busy "$port" && continue
        # sshd keeps the first value it reads: extra lines go first.
        {
            printf '# sshflow demo server (scripts/lib.sh); throwaway, 127.0.0.1 only\n'
            [ -n "$extra" ] && printf '%s\n' "$extra"
            printf 'ListenAddress 127.0.0.1:%s\n' "$port"
            printf 'AddressFamily inet\n'
            for i in ed25519 ecdsa256 rsa ecdsa384; do
                printf 'HostKey %s/ssh_host_%s_key\n' "$dir" "$i"
            done
            printf 'PidFile %s/sshd.pid\n' "$dir"
            printf 'AuthorizedKeysFile %s/authorized_keys\n' "$dir"
            printf '%s\n' 'StrictModes no' 'UsePAM no' 'PubkeyAuthentication yes' \
                'PasswordAuthentication yes' 'PermitEmptyPasswords no' 'PermitRootLogin yes' \
                'KbdInteractiveAuthentication no' 'LogLevel VERBOSE' 'AcceptEnv LANG LC_* SF_*' \
                'Subsystem sftp internal-sftp' 'PermitUserEnvironment no' 'MaxStartups 100' \
                'MaxSessions 10' 'MaxAuthTries 10' 'LoginGraceTime 60' 'UseDNS no' \
                'PrintMotd no' 'PrintLastLog no' 'X11Forwarding no' 'AllowTcpForwarding yes' \
                'SetEnv SHLVL=1'
            printf 'KexAlgorithms %s\nCiphers %s\nMACs %s\nHostKeyAlgorithms %s\n' \
                "$kex" "$ciphers" "$macs" "$hostalgs"
        } >"$dir/sshd_config"
        : >"$dir/known_hosts"
        for i in ed25519 ecdsa256 rsa ecdsa384; do
            printf '[127.0.0.1]:%s %s\n' "$port" \
                "$(cut -d' ' -f1,2 "$dir/ssh_host_${i}_key.pub")" >>"$dir/known_hosts"
        done
        rm -f "$dir/sshd.pid"
        : >"$dir/sshd.log"
        if command -v setpriv >/dev/null 2>&1 && setpriv --help 2>&1 | grep -q -- --pdeathsig; then
            setpriv --pdeathsig TERM -- "$SF_SSHD" -D -e -f "$dir/sshd_config" -E "$dir/sshd.log" \
                </dev/null >/dev/null &
        else
            "$SF_SSHD" -D -e -f "$dir/sshd_config" -E "$dir/sshd.log" </dev/null >/dev/null &
        fi
        pid=$!
        echo "$pid" >"$dir/sshd.launcher.pid"
        for i in $(seq 1 200); do            # 200 x 0.05 s = 10 s
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if [ -s "$dir/sshd.pid" ] && [ "$(cat "$dir/sshd.pid")" = "$pid" ] &&
                sf_port_speaks_ssh "$port"; then
                SF_SSHD_PID=$pid
                break
            fi
            sleep 0.05
        done
        [ -n "$SF_SSHD_PID" ] && break
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
        rm -f "$dir/sshd.launcher.pid"
        if ! grep -q 'Address already in use' "$dir/sshd.log"; then
            sed 's/^/  sshd: /' "$dir/sshd.log" >&2
            sf_die "sshd did not start (log above)"
        fi
    done
    [ -n "$SF_SSHD_PID" ] || sf_die "sshd: no free port found"
    # shellcheck disable=SC2034 # for the caller
    {
        SF_SSHD_PORT=$port
        SF_SSHD_USER=$(id -un)
        SF_SSHD_KEY=$dir/id_ed25519
        SF_SSHD_KNOWN_HOSTS=$dir/known_hosts
    }
    echo "$port" >"$dir/port"
}

# sf_sshd_stop DIR: stop the sshd that sf_sshd_start started in DIR, and all
# its descendants (SIGTERM, then SIGKILL after 3 s). Safe to call twice.
sf_sshd_stop() {
    local dir=$1 pid procs p i
    [ -f "$dir/sshd.launcher.pid" ] || return 0
    pid=$(cat "$dir/sshd.launcher.pid")
    rm -f "$dir/sshd.launcher.pid"
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    kill -0 "$pid" 2>/dev/null || return 0
    kill -STOP "$pid" 2>/dev/null || true     # no new connections while we look
    procs="$pid $(sf_descendants "$pid")"
    for p in $procs; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $procs; do kill -CONT "$p" 2>/dev/null || true; done
    for i in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || break
        # a zombie is gone for our purposes (reaped by wait below)
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
        sleep 0.05
    done
    for p in $procs; do
        if [ -e "/proc/$p" ]; then
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
    wait "$pid" 2>/dev/null || true
}
