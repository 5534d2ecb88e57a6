#!/usr/bin/env bash
# scripts/test.sh -- install what is missing, build, run the whole test suite.
#
#   scripts/test.sh                          build/ (or $BUILD_DIR), ctest -j2
#   scripts/test.sh --sanitize address,undefined   build-asan/, same tests
#   scripts/test.sh --sanitize thread        build-tsan/
#   scripts/test.sh --valgrind               build-valgrind/, each test program
#                                            under valgrind with CK_FORK=no
#
# Exits with ctest's status (or non-zero if any valgrind run failed). The
# interop tests start their own sshd on free 127.0.0.1 ports, so they run in
# parallel. Owns nothing but its build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

mode=plain
sanitize=""
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize)
        [ $# -ge 2 ] || sf_die "--sanitize needs a value (address,undefined or thread)"
        mode=sanitize
        sanitize=$2
        shift 2
        ;;
    --sanitize=*)
        mode=sanitize
        sanitize=${1#--sanitize=}
        shift
        ;;
    --valgrind)
        mode=valgrind
        shift
        ;;
    -h | --help)
        sed -n '2,12p' "$0"
        exit 0
        ;;
    *)
        sf_die "unknown argument: $1 (see --help)"
        ;;
    esac
done

case "$mode" in
plain) dir=${BUILD_DIR:-build} ;;
valgrind) dir=${BUILD_DIR:-build-valgrind} ;;
sanitize)
    case "$sanitize" in
    address,undefined | undefined,address | address) dir=${BUILD_DIR:-build-asan} ;;
    thread) dir=${BUILD_DIR:-build-tsan} ;;
    *) dir=${BUILD_DIR:-build-san-${sanitize//,/-}} ;;
    esac
    ;;
esac

case "$dir" in
/*) abs=$dir ;;
*) abs=$SF_ROOT/$dir ;;
esac

sf_install_deps
if [ "$mode" = sanitize ]; then
    sf_build "$dir" "-DSSHFLOW_SANITIZE=$sanitize"
else
    sf_build "$dir" -DSSHFLOW_SANITIZE=
fi

# Keys for the test sshd, generated once and shared by all test programs
# (check/testlib/sshd.c); throwaway, inside the build directory.
export SSHFLOW_TEST_KEYCACHE="$abs/test-keys"

case "$mode" in
plain)
    sf_log "running the tests (ctest -j2 in $dir)"
    set +e
    ctest --test-dir "$dir" --output-on-failure -j2
    rc=$?
    set -e
    exit "$rc"
    ;;
sanitize)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-5}
    sf_log "running the tests under -fsanitize=$sanitize (ctest -j2 in $dir)"
    set +e
    ctest --test-dir "$dir" --output-on-failure -j2
    rc=$?
    set -e
    exit "$rc"
    ;;
valgrind)
    command -v valgrind >/dev/null 2>&1 || sf_die "valgrind is not installed"
    logs="$abs/valgrind"
    rm -rf "$logs"
    mkdir -p "$logs"
    # The test programs ctest knows, one name a line.
    mapfile -t tests < <(ctest --test-dir "$dir" -N | sed -n 's/^ *Test *#[0-9]*: *//p')
    [ "${#tests[@]}" -gt 0 ] || sf_die "ctest lists no tests in $dir"
    sf_log "running ${#tests[@]} test programs under valgrind (CK_FORK=no, 2 at a time)"
    run_one() {
        local t=$1
        CK_FORK=no SSHFLOW_CLI="$abs/sshflow" SSHFLOW_SOURCE_DIR="$SF_ROOT" \
            timeout 3600 valgrind --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            --track-origins=yes --num-callers=30 \
            "$abs/$t" >"$logs/$t.log" 2>&1
    }
    pass=0
    fail=0
    failed_tests=()
    finish() {
        # $1: pid, $2: test name
        if wait "$1"; then
            pass=$((pass + 1))
            echo "    ok    $2"
        else
            fail=$((fail + 1))
            failed_tests+=("$2")
            echo "    FAIL  $2 (log: $logs/$2.log)"
        fi
    }
    pids=()
    names=()
    for t in "${tests[@]}"; do
        run_one "$t" &
        pids+=("$!")
        names+=("$t")
        if [ "${#pids[@]}" -ge 2 ]; then
            finish "${pids[0]}" "${names[0]}"
            pids=("${pids[@]:1}")
            names=("${names[@]:1}")
        fi
    done
    for i in "${!pids[@]}"; do
        finish "${pids[$i]}" "${names[$i]}"
    done
    for t in "${failed_tests[@]}"; do
        echo "---- $t ----"
        tail -60 "$logs/$t.log"
    done
    echo "valgrind: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    ;;
esac
