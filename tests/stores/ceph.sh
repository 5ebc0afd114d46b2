#!/usr/bin/env bash
# Start a throwaway single-host Ceph cluster (1 mon + 1 memstore OSD + radosgw)
# on loopback, for integration tests that need a real S3 engine.
#
#   ceph.sh install      install radosgw ceph-mon ceph-osd if radosgw is missing
#   ceph.sh start DIR    start a cluster whose every file lives under DIR; prints
#                        CEPH_ENDPOINT / CEPH_ACCESS_KEY / CEPH_SECRET_KEY / CEPH_REGION
#                        lines on stdout and writes the same to DIR/env
#   ceph.sh stop DIR     stop the daemons started for DIR (idempotent)
#
# Environment (all optional):
#   CEPH_ACCESS_KEY, CEPH_SECRET_KEY  keys for the S3 user (generated otherwise)
#   CEPH_START_TIMEOUT                seconds to wait for readiness (default 120)
#   CEPH_MEMSTORE_BYTES               OSD RAM store size (default 2 GiB)
#   CEPH_OWNER_PID                    if set, the daemons are stopped once this
#                                     process exits (guards against a dead runner)
#
# Only stdout carries the result lines; everything else goes to stderr or DIR/log.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REGION=us-east-1
STORE_NAME=ceph.sh
# shellcheck source=lib.sh
. "$(dirname "$SELF")/lib.sh"

usage() {
    sed -n '2,17p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- install

apt_busy() {
    pgrep -x 'apt|apt-get|dpkg|unattended-upgr' >/dev/null 2>&1 ||
        { command -v fuser >/dev/null && fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; }
}

wait_for_apt() {
    local waited=0
    while apt_busy; do
        if [ $((waited % 30)) -eq 0 ]; then
            log "another apt/dpkg is running; waiting (see /tmp/apt-install.log if present)"
        fi
        sleep 5
        waited=$((waited + 5))
        [ "$waited" -lt 1800 ] || die "apt still busy after ${waited}s"
    done
}

cmd_install() {
    if command -v radosgw >/dev/null 2>&1; then
        log "radosgw already installed: $(radosgw --version 2>/dev/null | head -n1)"
        return 0
    fi
    wait_for_apt
    # The other installer may have installed it meanwhile.
    if command -v radosgw >/dev/null 2>&1; then
        log "radosgw installed by another process"
        return 0
    fi
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y radosgw ceph-mon ceph-osd >&2
    command -v radosgw >/dev/null 2>&1 || die "radosgw not on PATH after install"
}

# ---------------------------------------------------------------- helpers

# poll DESCRIPTION LOGFILE [DAEMON] CMD...: retry CMD every 0.5 s until it
# succeeds or the start deadline passes (or DAEMON, e.g. osd.0, exits); on
# failure print the log tail and fail.
poll() {
    local what=$1 logf=$2 daemon=''
    shift 2
    case $1 in mon.a | osd.0 | client.rgw.a) daemon=$1; shift ;; esac
    until "$@" >/dev/null 2>&1; do
        if [ -n "$daemon" ] && ! daemon_alive "$daemon"; then
            log "$daemon exited while waiting for $what"
            log_tail "$logf"
            return 1
        fi
        if [ "$(remaining)" -le 0 ]; then
            log "timed out waiting for $what"
            log_tail "$logf"
            return 1
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------- start

write_conf() {
    cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $FSID
mon_host = v1:127.0.0.1:$MON_PORT
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
keyring = $DIR/keyring
ms_bind_msgr2 = false
ms_bind_ipv6 = false
public_addr = 127.0.0.1
run_dir = $DIR/run
pid_file = $DIR/run/\$name.pid
admin_socket = $DIR/run/\$cluster-\$name.asok
log_file = $DIR/log/\$cluster-\$name.log
crash_dir = $DIR/crash
log_to_stderr = false
err_to_stderr = false
log_to_file = true
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_data_avail_crit = 1
mon_data_avail_warn = 2
# a one-mon cluster: commit map changes (pool creation) without the 1 s batching
paxos_propose_interval = 0.05
paxos_min_wait = 0.01

[mon]
mon_data = $DIR/mon/\$name

[mon.a]
mon_addr = v1:127.0.0.1:$MON_PORT

[osd]
osd_data = $DIR/osd/\$name
osd_objectstore = memstore
memstore_device_bytes = ${CEPH_MEMSTORE_BYTES:-2147483648}
osd_crush_update_on_start = false
# the device-class update at boot can race the fresh mon ('wrong fsid') and
# abort the OSD; memstore has no device class worth setting anyway
osd_class_update_on_start = false

[client]
admin_socket = $DIR/run/\$cluster-\$name.\$pid.asok
log_file = $DIR/log/\$cluster-\$name.log

[client.rgw.a]
admin_socket = $DIR/run/\$cluster-\$name.asok
rgw_data = $DIR/rgw
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_dns_name =
rgw_enable_usage_log = false
EOF
}

ceph_cli() {
    timeout 30 ceph -c "$DIR/ceph.conf" --connect-timeout 20 "$@" 2>>"$DIR/log/cli.log"
}

mon_answers() { ceph_cli mon stat | grep -q quorum; }

osd_up() { ceph_cli osd dump 2>/dev/null | grep -Eq '^osd\.0 up '; }

rgw_answers() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$RGW_PORT/" | grep -Eq '^[1-5][0-9][0-9]$'
}

daemon_alive() { pid_alive "$(read_pid "$DIR/run/$1.pid")"; }

# The daemon $1 must be the one listening on port $2 (not a concurrent run's).
check_owner() {
    local pid
    pid=$(read_pid "$DIR/run/$1.pid")
    pid_alive "$pid" || { log "$1 exited"; log_tail "$3"; return 1; }
    if ! port_owned_by "$2" "$pid"; then
        log "port $2 is not held by our $1 (pid $pid); port collision?"
        log_tail "$3"
        return 1
    fi
}

cmd_start() {
    [ $# -eq 1 ] || usage
    command -v radosgw >/dev/null 2>&1 || die "radosgw not installed; run: $SELF install"
    mkdir -p "$1"
    DIR=$(readlink -f "$1")
    [ ! -e "$DIR/ceph.conf" ] || die "$DIR already holds a cluster; use a fresh directory"
    DEADLINE=$((SECONDS + ${CEPH_START_TIMEOUT:-120}))
    local t0=$SECONDS
    # admin sockets are unix sockets: keep the path short enough (108 bytes)
    [ ${#DIR} -le 60 ] || log "warning: long DIR; admin sockets may fail to bind (harmless)"

    mkdir -p "$DIR"/{run,log,crash,mon/mon.a,osd/osd.0,rgw}
    : >"$DIR/keyring"
    trap start_failed EXIT

    FSID=$(uuidgen)
    free_port MON_PORT
    free_port RGW_PORT
    local ak=${CEPH_ACCESS_KEY:-$(rand_str 20 'A-Z0-9')}
    local sk=${CEPH_SECRET_KEY:-$(rand_str 40 'A-Za-z0-9')}
    write_conf
    log "dir $DIR, mon port $MON_PORT, rgw port $RGW_PORT"

    [ -z "${CEPH_OWNER_PID:-}" ] || start_watchdog "$CEPH_OWNER_PID" "$DIR/ceph.conf"

    # monitor
    monmaptool --create --clobber --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" \
        "$DIR/monmap" >>"$DIR/log/setup.log" 2>&1
    ceph-mon -c "$DIR/ceph.conf" -i a --mkfs --monmap "$DIR/monmap" \
        >>"$DIR/log/setup.log" 2>&1 || { log_tail "$DIR/log/setup.log"; false; }
    ceph-mon -c "$DIR/ceph.conf" -i a >>"$DIR/log/setup.log" 2>&1 ||
        { log_tail "$DIR/log/setup.log" "$DIR/log/ceph-mon.a.log"; false; }
    poll "mon pid file" "$DIR/log/ceph-mon.a.log" test -s "$DIR/run/mon.a.pid"
    poll "mon to listen on $MON_PORT" "$DIR/log/ceph-mon.a.log" mon.a \
        port_owned_by "$MON_PORT" "$(read_pid "$DIR/run/mon.a.pid")" ||
        { check_owner mon.a "$MON_PORT" "$DIR/log/ceph-mon.a.log"; false; }
    # A mon that has just started can refuse the first commands ('wrong fsid',
    # EPERM) until it has committed its first monmap; wait for a clean answer.
    poll "mon to answer commands" "$DIR/log/ceph-mon.a.log" mon.a mon_answers
    log "mon up after $((SECONDS - t0))s"

    # OSD (memstore)
    local osd_uuid osd_id
    osd_uuid=$(uuidgen)
    osd_id=$(ceph_cli osd new "$osd_uuid") || { log_tail "$DIR/log/cli.log"; false; }
    [ "$osd_id" = 0 ] || die "unexpected osd id '$osd_id'"
    ceph-osd -c "$DIR/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
        >>"$DIR/log/setup.log" 2>&1 || { log_tail "$DIR/log/setup.log" "$DIR/log/ceph-osd.0.log"; false; }
    ceph_cli osd crush add osd.0 1 root=default host=localhost >/dev/null ||
        { log_tail "$DIR/log/cli.log"; false; }
    ceph-osd -c "$DIR/ceph.conf" -i 0 >>"$DIR/log/setup.log" 2>&1 ||
        { log_tail "$DIR/log/setup.log" "$DIR/log/ceph-osd.0.log"; false; }
    poll "osd.0 up" "$DIR/log/ceph-osd.0.log" osd.0 osd_up
    log "osd up after $((SECONDS - t0))s"

    # radosgw
    radosgw -c "$DIR/ceph.conf" -n client.rgw.a >>"$DIR/log/setup.log" 2>&1 ||
        { log_tail "$DIR/log/setup.log" "$DIR/log/ceph-client.rgw.a.log"; false; }
    poll "radosgw pid file" "$DIR/log/ceph-client.rgw.a.log" test -s "$DIR/run/client.rgw.a.pid"
    local f
    until rgw_answers; do
        daemon_alive client.rgw.a || { log "radosgw exited"; log_tail "$DIR/log/ceph-client.rgw.a.log"; false; }
        if [ "$(remaining)" -le 0 ]; then
            log "timed out waiting for radosgw on http://127.0.0.1:$RGW_PORT/"
            for f in ceph-client.rgw.a.log ceph-osd.0.log; do log_tail "$DIR/log/$f"; done
            false
        fi
        sleep 0.5
    done
    check_owner client.rgw.a "$RGW_PORT" "$DIR/log/ceph-client.rgw.a.log"
    log "radosgw answers after $((SECONDS - t0))s"

    # S3 user
    timeout "$(( $(remaining) > 10 ? $(remaining) : 10 ))" \
        radosgw-admin -c "$DIR/ceph.conf" user create --uid=tests --display-name=tests \
        --access-key="$ak" --secret-key="$sk" >>"$DIR/log/setup.log" 2>&1 ||
        { log "radosgw-admin user create failed"; log_tail "$DIR/log/setup.log"; false; }

    local out
    out="CEPH_ENDPOINT=http://127.0.0.1:$RGW_PORT
CEPH_ACCESS_KEY=$ak
CEPH_SECRET_KEY=$sk
CEPH_REGION=$REGION"
    printf '%s\n' "$out" >"$DIR/env"
    STARTED_OK=1
    trap - EXIT
    log "ready after $((SECONDS - t0))s"
    printf '%s\n' "$out"
}

# ---------------------------------------------------------------- stop

# terminate_and_wait GRACE PIDFILE...: SIGTERM the processes (those still
# belonging to DIR), SIGKILL them after GRACE seconds, wait until gone (≤ 5 s more).
terminate_and_wait() {
    local grace=$1 pf pid n pids=()
    shift
    for pf in "$@"; do
        [ -e "$pf" ] || continue
        pid=$(read_pid "$pf")
        # never kill ourselves (the watchdog runs stop) or our parent
        [ -n "$pid" ] && [ "$pid" != $$ ] && [ "$pid" != "$PPID" ] || continue
        pid_alive "$pid" || continue
        # only a process that still belongs to this DIR (pids get reused)
        tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null |
            grep -qxF -e "$STOP_DIR/ceph.conf" -e "$STOP_DIR" || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    for n in $(seq 1 $(( (grace + 5) * 10 ))); do
        local alive=()
        for pid in ${pids[@]+"${pids[@]}"}; do pid_alive "$pid" && alive+=("$pid"); done
        [ ${#alive[@]} -gt 0 ] || return 0
        pids=("${alive[@]}")
        [ "$n" -ne $((grace * 10)) ] || kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.1
    done
    log "pids ${pids[*]} did not exit"
    return 1
}

cmd_stop() {
    [ $# -eq 1 ] || usage
    [ -d "$1" ] || { log "no such dir $1; nothing to stop"; return 0; }
    STOP_DIR=$(readlink -f "$1")
    local r="$STOP_DIR/run" rc=0
    [ -d "$r" ] || return 0
    # The data is throwaway: ask everyone to exit, and SIGKILL what is still
    # there after 2 s (a clean exit takes ~2 s per daemon, longer for an OSD
    # whose mon is already gone).
    terminate_and_wait 2 "$r/watchdog.pid" "$r/client.rgw.a.pid" "$r/osd.0.pid" "$r/mon.a.pid" || rc=1
    return $rc
}

case "${1:-}" in
install) shift; cmd_install "$@" ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) usage ;;
esac
