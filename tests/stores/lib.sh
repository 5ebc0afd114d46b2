# Helpers shared by the store scripts (ceph.sh, garage.sh); sourced, never run.
#
# The sourcing script sets STORE_NAME (the prefix of its log lines) before sourcing, and defines
# cmd_stop DIR; its `start` sets DIR and DEADLINE (in bash SECONDS) and arms `trap start_failed EXIT`.
# shellcheck shell=bash

log() { printf '%s: %s\n' "$STORE_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Ports handed out by free_port in this run, so two calls never return the same one.
USED_PORTS=" "

# free_port VAR: set VAR to a port below the ephemeral range (so outgoing connections never hold
# it), chosen at random, distinct from the ones handed out before, and bindable right now. It
# assigns rather than prints: in a command substitution the record of used ports would be lost.
free_port() {
    local _fp_port _fp_try
    for _fp_try in $(seq 1 200); do
        _fp_port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        case $USED_PORTS in *" $_fp_port "*) continue ;; esac
        if python3 - "$_fp_port" <<'EOF' 2>/dev/null; then
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
EOF
            USED_PORTS+="$_fp_port "
            printf -v "$1" '%s' "$_fp_port"
            return 0
        fi
    done
    die "no free port found"
}

rand_str() { # length, alphabet
    local out=''
    while [ "${#out}" -lt "$1" ]; do
        out+=$(head -c 256 /dev/urandom | LC_ALL=C tr -dc "$2" || true)
    done
    printf '%s' "${out:0:$1}"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

# True if TCP port $1 on 127.0.0.1 is listened on by process $2.
port_owned_by() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -q "pid=$2,"
}

log_tail() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        printf '\n---- last lines of %s ----\n' "$f" >&2
        tail -n 30 "$f" >&2
    done
}

# Remaining seconds before the start deadline.
remaining() { echo $((DEADLINE - SECONDS)); }

# start_watchdog OWNER_PID WHILE_EXISTS: stop the cluster under DIR (`SELF stop DIR`) once process
# OWNER_PID has exited, so a test runner that dies leaves no daemons behind. The watchdog gives up
# by itself once the path WHILE_EXISTS is gone (the cluster was stopped and removed). Its pid goes
# to DIR/run/watchdog.pid, where `stop` finds it.
start_watchdog() {
    setsid bash -c '
        while kill -0 "$1" 2>/dev/null && [ -e "$4" ]; do sleep 2; done
        exec "$2" stop "$3"' watchdog "$1" "$SELF" "$DIR" "$2" \
        </dev/null >>"$DIR/log/watchdog.log" 2>&1 &
    echo $! >"$DIR/run/watchdog.pid"
}

# EXIT trap of `start`: a start that failed stops whatever it had started under DIR.
start_failed() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "${STARTED_OK:-0}" != 1 ]; then
        log "start failed (exit $rc); stopping what was started under $DIR"
        cmd_stop "$DIR" || true
    fi
}
