# shellcheck shell=bash
# Shared shell functions for YADTQ's scripts (setup, stack, test, demo, ...).
#
# Source it, do not run it:   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# The sourcing script is expected to run with `set -euo pipefail`.
#
# Functions a script or a test harness can use:
#   yadtq_log MSG / yadtq_warn MSG / yadtq_die MSG   messages prefixed with "yadtq:"
#   as_root CMD...                 run CMD as root (sudo only when not root already)
#   free_port                      print a TCP port on 127.0.0.1 that is free right now
#   broker_port / redis_port ...   the ports of YADTQ_BROKERS / YADTQ_REDIS
#   stack_up DIR BROKER_PORT REDIS_PORT [REDIS_PASSWORD]
#                                  start Tansu + Redis (whichever is not running yet) with
#                                  logs, pid files and data under DIR; wait until both answer
#   stack_down DIR                 stop both (TERM, then KILL after a timeout)
#   stack_status DIR               print both; non-zero if one is down
#
# Files under a stack DIR: tansu.{pid,port,log}, redis.{pid,port,log}, redis.conf,
# redis-data/ (Redis's append-only file); for a Redis Cluster, the same per node as
# redis-PORT.{pid,port,log,conf}, redis-PORT-data/, and cluster.ports (every node's port). Tests can read DIR/redis.pid to kill -9 Redis
# and run `scripts/stack up` again (same YADTQ_STACK_DIR/YADTQ_REDIS) to restart it
# on the same data.

if [[ -n "${YADTQ_LIB_LOADED:-}" ]]; then
    return 0
fi
YADTQ_LIB_LOADED=1

YADTQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
YADTQ_PYTHON="${YADTQ_PYTHON:-python3}"

# Where setup installs the runtime pieces. The Swift binaries carry RUNPATH
# /usr/local/lib/yadtq (see Package.swift), so they load this librdkafka.
YADTQ_LIB_DIR=/usr/local/lib/yadtq
# shellcheck disable=SC2034 # used by the scripts that source this file
YADTQ_RDKAFKA_RUNTIME="$YADTQ_LIB_DIR/librdkafka.so.1"
YADTQ_TANSU_BIN=/usr/local/bin/tansu

YADTQ_DEFAULT_BROKERS=127.0.0.1:9092
YADTQ_DEFAULT_REDIS=redis://127.0.0.1:6379/0

# Seconds `up` waits for the services to answer, and `down` waits before KILL.
YADTQ_STACK_START_TIMEOUT="${YADTQ_STACK_START_TIMEOUT:-30}"
YADTQ_STACK_STOP_TIMEOUT="${YADTQ_STACK_STOP_TIMEOUT:-10}"

# ---------------------------------------------------------------- messages

yadtq_log() { printf 'yadtq: %s\n' "$*" >&2; }
yadtq_warn() { printf 'yadtq: warning: %s\n' "$*" >&2; }
yadtq_die() {
    printf 'yadtq: error: %s\n' "$*" >&2
    exit 1
}

# Prints a script's usage: its header comment, from the second line to `set -euo`.
yadtq_usage() {
    sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'
}

# Print the last lines of a log file, indented, to stderr.
yadtq_tail() {
    local file=$1 lines=${2:-20}
    if [[ -s "$file" ]]; then
        printf 'yadtq: --- last %s lines of %s ---\n' "$lines" "$file" >&2
        tail -n "$lines" "$file" | sed 's/^/    /' >&2
    fi
}

# ---------------------------------------------------------------- system

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        yadtq_die "need root for: $* (run as root or install sudo)"
    fi
}

# Seconds since the epoch with milliseconds, for timings.
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- settings

# YADTQ_BROKERS is a comma-separated bootstrap list; the local stack uses the first
# entry. Accepts host:port and scheme://host:port.
_first_broker() {
    local brokers=${YADTQ_BROKERS:-$YADTQ_DEFAULT_BROKERS}
    local first=${brokers%%,*}
    first=${first#*://}
    printf '%s\n' "${first// /}"
}

# The host of HOST[:PORT], or $2 when it is empty.
_host_of() {
    if [[ "$1" == *:* ]]; then printf '%s\n' "${1%:*}"; else printf '%s\n' "${1:-$2}"; fi
}

# The port of HOST[:PORT], or $2 when it names none; $3 says where it came from, for the error.
_port_of() {
    local port=$2
    if [[ "$1" == *:* ]]; then port=${1##*:}; fi
    _check_port "$port" "$3"
    printf '%s\n' "$port"
}

broker_host() {
    local first
    first=$(_first_broker)
    _host_of "$first" ""
}

broker_port() {
    local first
    first=$(_first_broker)
    _port_of "$first" 9092 "YADTQ_BROKERS=${YADTQ_BROKERS:-}"
}

# redis://[[user]:password@]host[:port][/db]
_redis_authority() {
    local url=${YADTQ_REDIS:-$YADTQ_DEFAULT_REDIS}
    [[ "$url" == redis://* ]] || yadtq_die "YADTQ_REDIS must look like redis://[:password@]host:port/db, got '$url'"
    local rest=${url#redis://}
    printf '%s\n' "${rest%%/*}"
}

# The first node's host:port (the only one of a single Redis).
_redis_hostport() {
    local auth hostports
    auth=$(_redis_authority)
    hostports=${auth##*@}
    printf '%s\n' "${hostports%%,*}"
}

redis_host() {
    local hp
    hp=$(_redis_hostport)
    _host_of "$hp" 127.0.0.1
}

redis_port() {
    local hp
    hp=$(_redis_hostport)
    _port_of "$hp" 6379 "YADTQ_REDIS=${YADTQ_REDIS:-}"
}

# The password in the URL (redis://:pw@host or redis://user:pw@host), or nothing.
redis_password() {
    local auth userinfo
    auth=$(_redis_authority)
    if [[ "$auth" != *@* ]]; then return 0; fi
    userinfo=${auth%@*}
    if [[ "$userinfo" == *:* ]]; then printf '%s\n' "${userinfo#*:}"; fi
}

_check_port() {
    local port=$1 origin=$2
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        yadtq_die "bad port '$port' (from $origin)"
    fi
}

# The stack runs on loopback only; refuse to pretend otherwise.
require_loopback() {
    local what=$1 host=$2
    case "$host" in
        127.0.0.1 | localhost | "") ;;
        *) yadtq_die "$what points at '$host'; scripts/stack only runs a local stack on 127.0.0.1 (use 127.0.0.1 or localhost, or skip scripts/stack for a remote cluster)" ;;
    esac
}

stack_dir() {
    local dir=${YADTQ_STACK_DIR:-$YADTQ_ROOT/.stack}
    mkdir -p "$dir"
    (cd "$dir" && pwd)
}

# ---------------------------------------------------------------- ports

# A TCP port on 127.0.0.1 that the kernel says is free right now.
free_port() {
    "$YADTQ_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# True when something already listens on 127.0.0.1:PORT (or on the wildcard address).
# A free port for a Redis Cluster node: at most 55535, with the cluster bus port (10,000
# higher) free too.
free_cluster_port() {
    "$YADTQ_PYTHON" -c 'import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    port = random.randint(20000, 55535)
    if free(port) and free(port + 10000):
        print(port)
        break'
}

port_busy() {
    ! "$YADTQ_PYTHON" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# "name (pid N)" of whoever listens on PORT, when ss can tell.
port_owner() {
    local line
    if command -v ss >/dev/null 2>&1; then
        line=$(ss -ltnpH "sport = :$1" 2>/dev/null | head -n 1 || true)
        if [[ "$line" =~ users:\(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
            printf '%s (pid %s)\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
            return 0
        fi
    fi
    printf 'another process\n'
}

# ---------------------------------------------------------------- processes

# True when PID is a live (non-zombie) process whose command name is NAME.
pid_is() {
    local pid=$1 name=$2 comm state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    if [[ -r "/proc/$pid/comm" ]]; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
        [[ "$comm" == "$name" && "$state" != Z ]]
    else
        kill -0 "$pid" 2>/dev/null
    fi
}

# The pid of service SVC (tansu|redis) in DIR if it is running, else nothing (status 1).
service_pid() {
    local dir=$1 svc=$2 pid
    pid=$(cat "$dir/$svc.pid" 2>/dev/null || true)
    if [[ -n "$pid" ]] && pid_is "$pid" "$(_service_comm "$svc")"; then
        printf '%s\n' "$pid"
        return 0
    fi
    return 1
}

_service_comm() {
    case "$1" in
        tansu) printf 'tansu\n' ;;
        redis | redis-*) printf 'redis-server\n' ;;
        *) yadtq_die "unknown service '$1'" ;;
    esac
}

_service_label() {
    case "$1" in
        tansu) printf 'broker (tansu)\n' ;;
        redis) printf 'redis\n' ;;
        redis-*) printf 'redis cluster node %s\n' "${1#redis-}" ;;
    esac
}

# Start CMD... detached (own session, stdin from /dev/null, output to LOG), writing
# its pid to PIDFILE. The pid is the command's own: the wrapper shell execs it.
spawn_detached() {
    local pidfile=$1 log=$2 what
    shift 2
    what=$*
    # shellcheck disable=SC2016 # $0/$@ belong to the inner shell
    setsid bash -c 'echo "$$" >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.02
    done
    yadtq_die "could not start: $what (no pid file $pidfile)"
}

# TERM the process, wait up to the stop timeout, then KILL.
stop_pid() {
    local pid=$1 name=$2 label=$3 waited=0 limit
    limit=$((YADTQ_STACK_STOP_TIMEOUT * 10))
    kill -TERM "$pid" 2>/dev/null || true
    while pid_is "$pid" "$name"; do
        if ((waited >= limit)); then
            yadtq_warn "$label (pid $pid) did not stop within ${YADTQ_STACK_STOP_TIMEOUT}s; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# ---------------------------------------------------------------- tools

tansu_bin() {
    if [[ -x "$YADTQ_TANSU_BIN" ]]; then
        printf '%s\n' "$YADTQ_TANSU_BIN"
    elif command -v tansu >/dev/null 2>&1; then
        command -v tansu
    else
        yadtq_die "tansu not found at $YADTQ_TANSU_BIN; run scripts/setup"
    fi
}

# Tansu reads some settings from the environment (SCHEMA_REGISTRY, OTEL_EXPORTER_OTLP_ENDPOINT,
# CLUSTER_ID, ...); run it with those cleared so the user's environment cannot change it.
YADTQ_TANSU_ENV=(env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE
    -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT NO_COLOR=1)

# True when the broker on PORT answers a metadata request.
broker_ping() {
    timeout 3 "${YADTQ_TANSU_ENV[@]}" "$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$1" >/dev/null 2>&1
}

# True when Redis on PORT answers PING (with PASSWORD if given).
redis_ping() {
    local port=$1 password=${2:-} reply
    command -v redis-cli >/dev/null 2>&1 || yadtq_die "redis-cli not found; run scripts/setup"
    if [[ -n "$password" ]]; then
        reply=$(REDISCLI_AUTH=$password timeout 3 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)
    else
        reply=$(timeout 3 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)
    fi
    [[ "$reply" == PONG ]]
}

# ---------------------------------------------------------------- stack

# Redis config: loopback, append-only file fsynced on every write (a status a worker was
# told is stored survives kill -9), no RDB snapshots, data in DIR/SVC-data. A cluster node
# (service redis-PORT) also gets cluster mode, with a 2 s node timeout so a replica takes
# over from a dead master within seconds.
_write_redis_conf() {
    local dir=$1 svc=$2 port=$3 password=$4 conf=$1/$2.conf
    mkdir -p "$dir/$svc-data"
    (
        umask 077
        {
            echo "# written by scripts/stack; regenerated on every start"
            echo "port $port"
            echo "bind 127.0.0.1"
            echo "daemonize no"
            echo "logfile \"\""
            echo "dir $(_redis_quote "$dir/$svc-data")"
            echo "appendonly yes"
            echo "appendfsync always"
            echo "save \"\""
            if [[ -n "$password" ]]; then
                echo "requirepass $(_redis_quote "$password")"
                echo "masterauth $(_redis_quote "$password")"
            fi
            if [[ "$svc" == redis-* ]]; then
                echo "cluster-enabled yes"
                echo "cluster-config-file nodes.conf"
                echo "cluster-node-timeout 2000"
            fi
        } >"$conf"
    )
}

_redis_quote() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"\n' "$s"
}

# _start_service DIR SVC PORT [PASSWORD]: start one service unless it already runs.
_start_service() {
    local dir=$1 svc=$2 port=$3 password=${4:-} pid label running_port
    label=$(_service_label "$svc")
    if pid=$(service_pid "$dir" "$svc"); then
        running_port=$(cat "$dir/$svc.port" 2>/dev/null || echo '?')
        if [[ "$running_port" != "$port" ]]; then
            yadtq_die "$label already runs from $dir on port $running_port (pid $pid), not $port; run 'scripts/stack down' first"
        fi
        yadtq_log "$label already running (pid $pid, port $port)"
        return 0
    fi
    rm -f "$dir/$svc.pid" "$dir/$svc.port"
    if port_busy "$port"; then
        yadtq_die "port $port (for $label) is already in use by $(port_owner "$port"), not by this stack ($dir); stop it or choose another port in $(_svc_setting "$svc")"
    fi
    local log=$dir/$svc.log
    printf '\n==== %s start on port %s at %s ====\n' "$svc" "$port" "$(date -Is)" >>"$log"
    case "$svc" in
        tansu)
            spawn_detached "$dir/tansu.pid" "$log" "${YADTQ_TANSU_ENV[@]}" "$(tansu_bin)" broker \
                --listener-url "tcp://127.0.0.1:$port" \
                --advertised-listener-url "tcp://127.0.0.1:$port" \
                --storage-engine memory://tansu/
            ;;
        redis | redis-*)
            command -v redis-server >/dev/null 2>&1 || yadtq_die "redis-server not found; run scripts/setup"
            _write_redis_conf "$dir" "$svc" "$port" "$password"
            spawn_detached "$dir/$svc.pid" "$log" redis-server "$dir/$svc.conf"
            ;;
    esac
    printf '%s\n' "$port" >"$dir/$svc.port"
    yadtq_log "started $label on 127.0.0.1:$port (pid $(cat "$dir/$svc.pid"), log $log)"
}

_svc_setting() {
    case "$1" in
        tansu) printf 'YADTQ_BROKERS\n' ;;
        redis) printf 'YADTQ_REDIS\n' ;;
    esac
}

# _wait_service DIR SVC PORT [PASSWORD]: wait until it answers; fail with its log if it dies.
_wait_service() {
    local dir=$1 svc=$2 port=$3 password=${4:-} label deadline
    label=$(_service_label "$svc")
    deadline=$(($(now_ms) + YADTQ_STACK_START_TIMEOUT * 1000))
    while true; do
        if ! service_pid "$dir" "$svc" >/dev/null; then
            yadtq_tail "$dir/$svc.log" 20
            yadtq_die "$label exited during start-up (log $dir/$svc.log)"
        fi
        case "$svc" in
            tansu) broker_ping "$port" && return 0 ;;
            redis | redis-*) redis_ping "$port" "$password" && return 0 ;;
        esac
        if (($(now_ms) > deadline)); then
            yadtq_tail "$dir/$svc.log" 20
            yadtq_die "$label did not answer on port $port within ${YADTQ_STACK_START_TIMEOUT}s (log $dir/$svc.log)"
        fi
        sleep 0.1
    done
}

# stack_up DIR BROKER_PORT REDIS_PORT [REDIS_PASSWORD]
stack_up() {
    local dir=$1 bport=$2 rport=$3 password=${4:-} t0
    [[ "$bport" != "$rport" ]] || yadtq_die "broker and Redis cannot share port $bport"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    t0=$(now_ms)
    _start_service "$dir" tansu "$bport"
    _start_service "$dir" redis "$rport" "$password"
    _wait_service "$dir" tansu "$bport"
    _wait_service "$dir" redis "$rport" "$password"
    yadtq_log "stack up in $(($(now_ms) - t0)) ms: broker 127.0.0.1:$bport, redis 127.0.0.1:$rport (dir $dir)"
}

# The Redis services of DIR: redis-PORT for each cluster node, or else redis.
_redis_services() {
    local dir=$1 file found=0
    for file in "$dir"/redis-*.pid; do
        [[ -e "$file" ]] || continue
        basename "$file" .pid
        found=1
    done
    ((found)) || printf 'redis\n'
}

# _redis_cli PORT PASSWORD ARGS...: redis-cli against 127.0.0.1:PORT.
_redis_cli() {
    local port=$1 password=$2
    shift 2
    if [[ -n "$password" ]]; then export REDISCLI_AUTH=$password; else unset REDISCLI_AUTH; fi
    timeout 10 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

# cluster_up DIR BROKER_PORT REPLICAS PASSWORD PORT...: the broker (none when BROKER_PORT is
# -) and a Redis Cluster of one master per PORT, each with REPLICAS replicas on free ports
# (recorded in DIR/cluster.ports). A cluster already running from DIR is left as it is.
cluster_up() {
    local dir=$1 bport=$2 replicas=$3 password=$4 t0 port all=() deadline i replication
    shift 4
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    t0=$(now_ms)
    [[ "$bport" == - ]] || _start_service "$dir" tansu "$bport"
    all=("$@")
    if [[ -s "$dir/cluster.ports" ]]; then
        read -r -a all <"$dir/cluster.ports"
    else
        for ((i = 0; i < replicas * $#; i++)); do
            port=$(free_cluster_port)
            while [[ " ${all[*]} $bport " == *" $port "* ]]; do port=$(free_port); done
            all+=("$port")
        done
    fi
    for port in "${all[@]}"; do _start_service "$dir" "redis-$port" "$port" "$password"; done
    [[ "$bport" == - ]] || _wait_service "$dir" tansu "$bport"
    for port in "${all[@]}"; do _wait_service "$dir" "redis-$port" "$port" "$password"; done
    if [[ "$(_redis_cli "${all[0]}" "$password" CLUSTER INFO | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" != "${#all[@]}" ]]; then
        local nodes=()
        for port in "${all[@]}"; do nodes+=("127.0.0.1:$port"); done
        # Masters first: redis-cli makes the first N nodes (N = nodes / (replicas + 1)) masters.
        if [[ -n "$password" ]]; then export REDISCLI_AUTH=$password; else unset REDISCLI_AUTH; fi
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$replicas" \
            --cluster-yes >>"$dir/cluster.log" 2>&1 || {
            yadtq_tail "$dir/cluster.log" 20
            yadtq_die "redis-cli --cluster create failed (log $dir/cluster.log)"
        }
    fi
    printf '%s\n' "${all[*]}" >"$dir/cluster.ports"
    deadline=$(($(now_ms) + YADTQ_STACK_START_TIMEOUT * 1000))
    for port in "${all[@]}"; do
        until _redis_cli "$port" "$password" CLUSTER INFO | tr -d '\r' | grep -q '^cluster_state:ok' &&
            (($(_redis_cli "$port" "$password" CLUSTER NODES | grep -c slave) == ${#all[@]} - $#)); do
            (($(now_ms) < deadline)) || yadtq_die "the Redis Cluster on ports ${all[*]} is not ok after ${YADTQ_STACK_START_TIMEOUT}s"
            sleep 0.2
        done
    done
    # A replica that has not finished its first sync refuses to take over when its master dies
    # ("disconnected from master for longer than allowed"): wait until every one is in sync.
    for port in "${all[@]}"; do
        while replication=$(_redis_cli "$port" "$password" INFO replication | tr -d '\r') &&
            grep -q '^role:slave' <<<"$replication" && ! grep -q '^master_link_status:up' <<<"$replication"; do
            (($(now_ms) < deadline)) || yadtq_die "the replica on port $port is not in sync with its master after ${YADTQ_STACK_START_TIMEOUT}s (log $dir/redis-$port.log)"
            sleep 0.2
        done
    done
    yadtq_log "stack up in $(($(now_ms) - t0)) ms: broker 127.0.0.1:$bport, Redis Cluster of $# masters on $* with $replicas replicas each (ports ${all[*]}, dir $dir)"
}

# stack_down DIR
stack_down() {
    local dir=$1 svc pid label
    [[ -d "$dir" ]] || return 0
    for svc in tansu $(_redis_services "$dir"); do
        label=$(_service_label "$svc")
        if pid=$(service_pid "$dir" "$svc"); then
            stop_pid "$pid" "$(_service_comm "$svc")" "$label"
            yadtq_log "stopped $label (pid $pid)"
        elif [[ -e "$dir/$svc.pid" ]]; then
            yadtq_log "$label was not running (removed stale pid file)"
        else
            yadtq_log "$label was not running"
        fi
        rm -f "$dir/$svc.pid" "$dir/$svc.port"
    done
}

# The ports of the nodes named in YADTQ_REDIS, one per line.
redis_ports() {
    local auth hostports entry entries
    auth=$(_redis_authority)
    hostports=${auth##*@}
    IFS=, read -r -a entries <<<"$hostports"
    for entry in "${entries[@]}"; do
        _port_of "$entry" 6379 "YADTQ_REDIS=${YADTQ_REDIS:-}"
    done
}

# True when YADTQ_REDIS means a Redis Cluster: several nodes, or cluster=yes.
redis_is_cluster() {
    local url=${YADTQ_REDIS:-$YADTQ_DEFAULT_REDIS}
    [[ "$url" == *cluster=yes* || "$(_redis_authority)" == *,* ]]
}

# stack_status DIR [BROKER_PORT REDIS_PORT [REDIS_PASSWORD]]: one line per service.
# Ports default to the ones recorded when the service started.
stack_status() {
    local dir=$1 want_b=${2:-} want_r=${3:-} password=${4:-} svc pid port state rc=0 ok
    for svc in tansu $(_redis_services "$dir"); do
        pid=$(service_pid "$dir" "$svc" || true)
        port=$(cat "$dir/$svc.port" 2>/dev/null || true)
        if [[ -z "$port" ]]; then
            if [[ "$svc" == tansu ]]; then port=$want_b; else port=$want_r; fi
        fi
        if [[ -z "$pid" ]]; then
            state=down
            rc=1
        else
            ok=0
            case "$svc" in
                tansu) broker_ping "$port" && ok=1 ;;
                redis | redis-*) redis_ping "$port" "$password" && ok=1 ;;
            esac
            if ((ok)); then state=up; else
                state="not answering"
                rc=1
            fi
        fi
        printf 'yadtq: %-15s %-14s pid %-8s port %-6s log %s\n' \
            "$(_service_label "$svc")" "$state" "${pid:--}" "${port:--}" "$dir/$svc.log"
    done
    return "$rc"
}
