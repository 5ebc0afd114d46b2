#!/usr/bin/env bash
# Start a throwaway Garage (S3-compatible, AGPL; run as an external program only)
# on loopback, for integration tests that need a real S3 engine.
#
#   garage.sh install                  build garage 2.5.0 with `cargo install --locked` unless that
#                                      build is already in ~/.cargo/bin (a 15-20 min release build,
#                                      once; any other `garage` there is rebuilt)
#   garage.sh check                    exit 0 if the installed garage is that build
#   garage.sh bin                      print the path of the garage binary the tests run
#   garage.sh start DIR [--nodes 1|3]  start a cluster whose every file lives under DIR; prints
#                                      GARAGE_ENDPOINT / _ACCESS_KEY / _SECRET_KEY / _REGION /
#                                      _BUCKET (and GARAGE_ENDPOINTS for 3 nodes) on stdout and
#                                      writes the same to DIR/env
#   garage.sh kill-node DIR N          SIGKILL node N (1-based) of a running cluster
#   garage.sh stop DIR                 stop the nodes started for DIR (idempotent)
#
# Environment (all optional):
#   GARAGE_ACCESS_KEY, GARAGE_SECRET_KEY  keys of the S3 user (generated otherwise)
#   GARAGE_BUCKET                         bucket to create (default s3-direct-test)
#   GARAGE_REGION                         s3_region, which is also the signing region (default garage)
#   GARAGE_START_TIMEOUT                  seconds to wait for readiness (default 60)
#   GARAGE_OWNER_PID                      if set, the nodes are stopped once this process
#                                         exits (guards against a dead runner)
#
# Only stdout carries the result lines; everything else goes to stderr or DIR/log.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
GARAGE_VERSION=2.5.0
STORE_NAME=garage.sh
# shellcheck source=lib.sh
. "$(dirname "$SELF")/lib.sh"

usage() {
    sed -n '2,23p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- install

# The tests run exactly one Garage build: 2.5.0 from its own Cargo.lock (`cargo install --locked`).
# An unlocked build resolves Garage's dependencies afresh and can be a different program: with
# `http` 1.6.0 (resolved from late 2026 on) Garage drops every POST-form field that is not visible
# ASCII, so a form whose key holds `ü` is refused with "No key was provided" (docs/stores.md,
# "Small-file POST forms").
# After a locked build, the stamp next to the binary records its SHA-256; a `garage` without a
# matching stamp (an older or unlocked build, or another version) is rebuilt, never trusted.
INSTALL_ROOT=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
GARAGE_BIN=$INSTALL_ROOT/bin/garage
GARAGE_STAMP=$INSTALL_ROOT/bin/.garage.s3-direct-stamp
GARAGE_BUILD="garage $GARAGE_VERSION cargo-install-locked"

# True when $GARAGE_BIN is the locked build of $GARAGE_VERSION this script installed.
garage_is_expected_build() {
    [ -x "$GARAGE_BIN" ] && [ -s "$GARAGE_STAMP" ] || return 1
    local sum
    sum=$(sha256sum "$GARAGE_BIN" | cut -d' ' -f1)
    [ "$(cat "$GARAGE_STAMP")" = "$GARAGE_BUILD $sum" ] || return 1
    # `garage --version` prints e.g. "garage cargo:2.5.0 [features: …]" for a cargo build.
    "$GARAGE_BIN" --version 2>/dev/null | grep -qE "(^|[^0-9.])${GARAGE_VERSION//./\\.}([^0-9.]|\$)"
}

cmd_install() {
    if garage_is_expected_build; then
        log "garage $GARAGE_VERSION (locked build) already installed: $GARAGE_BIN"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust first"
    if [ -e "$GARAGE_BIN" ]; then
        log "$GARAGE_BIN is not the locked build of $GARAGE_VERSION the tests need; rebuilding it"
    fi
    log "building garage $GARAGE_VERSION --locked (a long release build, about 15-20 min on 2 cores)"
    cargo install --locked --force garage --version "$GARAGE_VERSION" >&2
    [ -x "$GARAGE_BIN" ] || die "cargo install did not leave $GARAGE_BIN"
    printf '%s %s\n' "$GARAGE_BUILD" "$(sha256sum "$GARAGE_BIN" | cut -d' ' -f1)" >"$GARAGE_STAMP"
    garage_is_expected_build || die "$GARAGE_BIN does not report version $GARAGE_VERSION"
}

# ---------------------------------------------------------------- helpers

# node_cli N ARGS...: the garage CLI talking to node N.
node_cli() {
    local n=$1
    shift
    timeout 20 "$GARAGE_BIN" -c "$DIR/node$n/garage.toml" "$@" 2>>"$DIR/log/cli.log"
}

# poll DESCRIPTION NODE CMD...: retry CMD every 0.2 s until it succeeds, the deadline passes or
# node NODE dies; on failure print the node's log tail and fail.
poll() {
    local what=$1 n=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ! pid_alive "$(read_pid "$DIR/run/node$n.pid")"; then
            log "node $n exited while waiting for $what"
            log_tail "$DIR/log/node$n.log" "$DIR/log/cli.log"
            return 1
        fi
        if [ "$(remaining)" -le 0 ]; then
            log "timed out waiting for $what"
            log_tail "$DIR/log/node$n.log" "$DIR/log/cli.log"
            return 1
        fi
        sleep 0.2
    done
}

s3_answers() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" | grep -Eq '^[1-5][0-9][0-9]$'
}

write_conf() { # node rpc_port s3_port admin_port replication
    local n=$1
    mkdir -p "$DIR/node$n/meta" "$DIR/node$n/data"
    cat >"$DIR/node$n/garage.toml" <<EOF
metadata_dir = "$DIR/node$n/meta"
data_dir = "$DIR/node$n/data"
db_engine = "sqlite"
replication_factor = $5
rpc_bind_addr = "127.0.0.1:$2"
rpc_public_addr = "127.0.0.1:$2"
rpc_secret = "$RPC_SECRET"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$3"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:$4"
EOF
    chmod 600 "$DIR/node$n/garage.toml"
}

start_node() { # node [env assignments...]
    local n=$1
    shift
    # setsid: the node outlives this script; a process group of its own keeps it away from the
    # caller's ctrl-c.
    env "$@" setsid "$GARAGE_BIN" -c "$DIR/node$n/garage.toml" server "${SERVER_FLAGS[@]}" \
        </dev/null >>"$DIR/log/node$n.log" 2>&1 &
    echo $! >"$DIR/run/node$n.pid"
}

# ---------------------------------------------------------------- start

cmd_start() {
    [ $# -ge 1 ] || usage
    local nodes=1 dir=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --nodes) nodes=${2:-}; shift 2 || usage ;;
        *) usage ;;
        esac
    done
    case $nodes in 1 | 3) ;; *) die "--nodes must be 1 or 3, not '$nodes'" ;; esac
    garage_is_expected_build || die "$GARAGE_BIN is not the locked garage $GARAGE_VERSION build; run: $SELF install"
    mkdir -p "$dir"
    DIR=$(readlink -f "$dir")
    [ ! -e "$DIR/env" ] && [ ! -d "$DIR/node1" ] || die "$DIR already holds a cluster; use a fresh directory"
    DEADLINE=$((SECONDS + ${GARAGE_START_TIMEOUT:-60}))
    local t0=$SECONDS
    mkdir -p "$DIR/run" "$DIR/log"
    trap start_failed EXIT

    REGION=${GARAGE_REGION:-garage}
    RPC_SECRET=$(rand_str 64 '0-9a-f')
    local ak=${GARAGE_ACCESS_KEY:-GK$(rand_str 24 '0-9a-f')}
    local sk=${GARAGE_SECRET_KEY:-$(rand_str 64 '0-9a-f')}
    local bucket=${GARAGE_BUCKET:-s3-direct-test}
    local n s3_ports=()
    for n in $(seq 1 "$nodes"); do
        local rpc s3 admin
        free_port rpc
        free_port s3
        free_port admin
        write_conf "$n" "$rpc" "$s3" "$admin" "$nodes"
        s3_ports+=("$s3")
        echo "$rpc" >"$DIR/run/node$n.rpc_port"
    done
    log "dir $DIR, $nodes node(s), S3 ports ${s3_ports[*]}"

    [ -z "${GARAGE_OWNER_PID:-}" ] || start_watchdog "$GARAGE_OWNER_PID" "$DIR/run"

    if [ "$nodes" = 1 ]; then
        SERVER_FLAGS=(--single-node --default-bucket)
        start_node 1 GARAGE_DEFAULT_ACCESS_KEY="$ak" GARAGE_DEFAULT_SECRET_KEY="$sk" \
            GARAGE_DEFAULT_BUCKET="$bucket"
        poll "the S3 API on ${s3_ports[0]}" 1 s3_answers "${s3_ports[0]}"
        # The default bucket and key are created once the layout is applied.
        poll "the default bucket" 1 bucket_ready 1 "$bucket"
    else
        SERVER_FLAGS=()
        for n in $(seq 1 "$nodes"); do start_node "$n"; done
        local ids=()
        for n in $(seq 1 "$nodes"); do
            poll "node $n to answer" "$n" node_cli "$n" node id -q
            ids+=("$(node_cli "$n" node id -q)")
        done
        for n in $(seq 2 "$nodes"); do
            poll "node $n to connect" 1 node_cli 1 node connect "${ids[$((n - 1))]}"
        done
        for n in $(seq 1 "$nodes"); do
            node_cli 1 layout assign -z dc1 -c 1G "${ids[$((n - 1))]%@*}" >>"$DIR/log/setup.log" ||
                { log_tail "$DIR/log/cli.log"; false; }
        done
        node_cli 1 layout apply --version 1 >>"$DIR/log/setup.log" ||
            { log_tail "$DIR/log/cli.log" "$DIR/log/node1.log"; false; }
        node_cli 1 key import --yes -n s3-direct-test "$ak" "$sk" >>"$DIR/log/setup.log" ||
            { log_tail "$DIR/log/cli.log"; false; }
        poll "bucket create" 1 node_cli 1 bucket create "$bucket"
        node_cli 1 bucket allow --read --write --owner "$bucket" --key "$ak" >>"$DIR/log/setup.log" ||
            { log_tail "$DIR/log/cli.log"; false; }
        for n in $(seq 1 "$nodes"); do
            poll "the S3 API of node $n" "$n" s3_answers "${s3_ports[$((n - 1))]}"
            poll "node $n to know the bucket" "$n" bucket_ready "$n" "$bucket"
        done
    fi

    local out endpoints='' p
    for p in "${s3_ports[@]}"; do endpoints+="${endpoints:+,}http://127.0.0.1:$p"; done
    out="GARAGE_ENDPOINT=http://127.0.0.1:${s3_ports[0]}
GARAGE_ACCESS_KEY=$ak
GARAGE_SECRET_KEY=$sk
GARAGE_REGION=$REGION
GARAGE_BUCKET=$bucket"
    [ "$nodes" = 1 ] || out+="
GARAGE_ENDPOINTS=$endpoints"
    printf '%s\n' "$out" >"$DIR/env"
    STARTED_OK=1
    trap - EXIT
    log "ready after $((SECONDS - t0))s"
    printf '%s\n' "$out"
}

# bucket_ready NODE BUCKET: node NODE knows the bucket (and so serves requests on it).
bucket_ready() { node_cli "$1" bucket info "$2" >/dev/null; }

# ---------------------------------------------------------------- kill-node / stop

# The pid in $1 if it is still a garage of this DIR (pids get reused).
our_pid() {
    local pid
    pid=$(read_pid "$1")
    pid_alive "$pid" || return 1
    [ "$pid" != $$ ] && [ "$pid" != "$PPID" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -e "^$STOP_DIR/" -e "^$STOP_DIR\$" || return 1
    echo "$pid"
}

cmd_kill_node() {
    [ $# -eq 2 ] || usage
    STOP_DIR=$(readlink -f "$1")
    local pid
    pid=$(our_pid "$STOP_DIR/run/node$2.pid") || die "node $2 of $STOP_DIR is not running"
    kill -KILL "$pid"
    local i
    for i in $(seq 1 50); do pid_alive "$pid" || { log "node $2 killed"; return 0; }; sleep 0.1; done
    die "node $2 (pid $pid) did not die"
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    [ -d "$1" ] || { log "no such dir $1; nothing to stop"; return 0; }
    STOP_DIR=$(readlink -f "$1")
    [ -d "$STOP_DIR/run" ] || return 0
    local pf pid pids=() n
    for pf in "$STOP_DIR"/run/watchdog.pid "$STOP_DIR"/run/node*.pid; do
        [ -e "$pf" ] || continue
        pid=$(our_pid "$pf") || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    # The data is throwaway: SIGKILL whatever is still there after 3 s.
    for n in $(seq 1 80); do
        local alive=()
        for pid in ${pids[@]+"${pids[@]}"}; do pid_alive "$pid" && alive+=("$pid"); done
        [ ${#alive[@]} -gt 0 ] || return 0
        pids=("${alive[@]}")
        [ "$n" -ne 30 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.1
    done
    log "pids ${pids[*]} did not exit"
    return 1
}

case "${1:-}" in
install) shift; cmd_install "$@" ;;
check) garage_is_expected_build || die "$GARAGE_BIN is not the locked garage $GARAGE_VERSION build; run: $SELF install" ;;
bin) echo "$GARAGE_BIN" ;;
start) shift; cmd_start "$@" ;;
kill-node) shift; cmd_kill_node "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) usage ;;
esac
