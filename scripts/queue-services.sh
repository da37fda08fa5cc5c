#!/usr/bin/env bash
# Start or stop the services of a queueserver session on loopback:
# Redis, a Tiled server with an API key (the catalog) and the RE Manager
# running profile/startup, whose worker environment is then opened.
#
#   scripts/queue-services.sh start | stop | status
#
# Environment (defaults in brackets):
#   HAE_QUEUE_DIR      state, logs, pid files and the catalog
#                      [~/.local/share/hae-bluesky/queue]
#   HAE_TILED_API_KEY  API key of the Tiled server [generated once, kept in
#                      $HAE_QUEUE_DIR/tiled-api-key]
#   HAE_TILED_PORT [8000]  HAE_REDIS_PORT [6379]
#   HAE_ZMQ_CONTROL_PORT [60615]  HAE_ZMQ_INFO_PORT [60625]
#   HAE_DEVICES, HAE_NOISE, HAE_REAL_TIME, HAE_SETTLE_TIME, HAE_EXPOSURE_TIME
#                      passed to the profile (see profile/startup/20-devices.py)
#   VENV [.venv]       the virtual environment with hae-bluesky installed
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
BIN="$VENV/bin"
STATE="${HAE_QUEUE_DIR:-$HOME/.local/share/hae-bluesky/queue}"
TILED_PORT="${HAE_TILED_PORT:-8000}"
REDIS_PORT="${HAE_REDIS_PORT:-6379}"
CONTROL="tcp://127.0.0.1:${HAE_ZMQ_CONTROL_PORT:-60615}"
INFO="tcp://127.0.0.1:${HAE_ZMQ_INFO_PORT:-60625}"

running() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds="$1" what="$2"; shift 2
    for _ in $(seq "$((seconds * 5))"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "queue-services: $what did not come up in $seconds s; see $STATE/*.log" >&2
    return 1
}

start_redis() {
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        echo "Redis already answers on port $REDIS_PORT"
        return
    fi
    command -v redis-server >/dev/null || {
        echo "queue-services: redis-server not found (Debian package redis-server)" >&2
        exit 1
    }
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
    wait_for 10 Redis redis-cli -p "$REDIS_PORT" ping
    echo "Redis on 127.0.0.1:$REDIS_PORT"
}

start_tiled() {
    if running "$STATE/tiled.pid"; then
        echo "Tiled already running (pid $(cat "$STATE/tiled.pid"))"
        return
    fi
    local init=()
    [[ -f "$STATE/catalog.db" ]] || init=(--init)
    mkdir -p "$STATE/data"
    nohup "$BIN/tiled" serve catalog "$STATE/catalog.db" "${init[@]}" \
        -w "$STATE/data" -w "duckdb:///$STATE/storage.db" \
        --api-key "$API_KEY" --host 127.0.0.1 --port "$TILED_PORT" \
        >"$STATE/tiled.log" 2>&1 &
    echo $! >"$STATE/tiled.pid"
    wait_for 60 Tiled curl -sf "http://127.0.0.1:$TILED_PORT/api/v1/"
    echo "Tiled catalog on http://127.0.0.1:$TILED_PORT ($STATE/catalog.db)"
}

start_manager() {
    if running "$STATE/re-manager.pid"; then
        echo "RE Manager already running (pid $(cat "$STATE/re-manager.pid"))"
        return
    fi
    HAE_TILED_URI="http://127.0.0.1:$TILED_PORT/api/v1" HAE_TILED_API_KEY="$API_KEY" \
    nohup "$BIN/start-re-manager" \
        --startup-dir "$ROOT/profile/startup" \
        --existing-plans-devices "$ROOT/profile/existing_plans_and_devices.yaml" \
        --update-existing-plans-devices NEVER \
        --user-group-permissions "$ROOT/profile/user_group_permissions.yaml" \
        --redis-addr "127.0.0.1:$REDIS_PORT" --redis-name-prefix hae \
        --zmq-control-addr "$CONTROL" --zmq-info-addr "$INFO" \
        >"$STATE/re-manager.log" 2>&1 &
    echo $! >"$STATE/re-manager.pid"
    wait_for 60 "the RE Manager" "$BIN/qserver" --zmq-control-addr "$CONTROL" status
    if ! "$BIN/hae" queue --address "$CONTROL" --timeout 300 env-open >/dev/null; then
        echo "queue-services: the RE Manager runs on $CONTROL but its worker environment" \
             "did not open; the end of $STATE/re-manager.log:" >&2
        tail -n 15 "$STATE/re-manager.log" >&2
        echo "Fix the cause, then '$0 stop' and start again." >&2
        exit 1
    fi
    echo "RE Manager on $CONTROL with the worker environment open"
}

stop_pid() {  # stop_pid NAME PIDFILE
    if running "$2"; then
        kill "$(cat "$2")"
        for _ in $(seq 100); do running "$2" || break; sleep 0.2; done
        running "$2" && kill -9 "$(cat "$2")"
        echo "stopped $1"
    fi
    rm -f "$2"
}

case "${1:-}" in
    start)
        mkdir -p "$STATE"
        chmod 700 "$STATE"
        if [[ -z "${HAE_TILED_API_KEY:-}" ]]; then
            [[ -f "$STATE/tiled-api-key" ]] || (umask 077; "$BIN/python" -c \
                "import secrets; print(secrets.token_hex(16))" >"$STATE/tiled-api-key")
            HAE_TILED_API_KEY="$(cat "$STATE/tiled-api-key")"
        fi
        API_KEY="$HAE_TILED_API_KEY"
        start_redis
        start_tiled
        start_manager
        echo "Read runs with HAE_TILED_URI=http://127.0.0.1:$TILED_PORT/api/v1 and the key" \
             "in $STATE/tiled-api-key (or your HAE_TILED_API_KEY)."
        ;;
    stop)
        if running "$STATE/re-manager.pid"; then
            "$BIN/hae" queue --address "$CONTROL" env-close >/dev/null 2>&1 || true
        fi
        stop_pid "RE Manager" "$STATE/re-manager.pid"
        stop_pid Tiled "$STATE/tiled.pid"
        stop_pid Redis "$STATE/redis.pid"  # only a Redis this script started
        ;;
    status)
        for name in redis tiled re-manager; do
            if running "$STATE/$name.pid"; then
                echo "$name: running (pid $(cat "$STATE/$name.pid"))"
            else
                echo "$name: not started here"
            fi
        done
        ;;
    *)
        echo "usage: $0 start | stop | status" >&2
        exit 2
        ;;
esac
