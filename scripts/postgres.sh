#!/usr/bin/env bash
# A private PostgreSQL server for the tests, sourced by scripts/test.sh:
#
#   source scripts/postgres.sh && postgres_start
#
# installs PostgreSQL from the distribution's packages if its server binaries
# are missing, makes a cluster in a temporary directory, starts it on a free
# loopback port (password authentication over TCP) and exports
# KEYSTATE_TEST_POSTGRES=postgres://keystate:<password>@127.0.0.1:<port>/keystate.
# The server is stopped and its directory removed when the calling shell exits.
# PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` user (made by the package) or a system user made for it.
#
# On its own, `bash scripts/postgres.sh -- COMMAND...` runs COMMAND with the
# server up, e.g. `bash scripts/postgres.sh -- cargo test -p keystate --test postgres`.

postgres_bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
    elif command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
        dirname "$(command -v pg_ctl)"
    fi
}

postgres_install() {
    echo "postgres: server binaries missing; installing PostgreSQL from the distribution's packages"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
}

# Run a command as the user that owns the server.
postgres_as() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$POSTGRES_USER" -- "$@"
    else
        "$@"
    fi
}

postgres_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

postgres_stop() {
    if [ -n "${POSTGRES_DIR:-}" ] && [ -d "$POSTGRES_DIR" ]; then
        postgres_as "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$POSTGRES_DIR"
    fi
}

postgres_start() {
    POSTGRES_BIN=$(postgres_bin_dir)
    if [ -z "$POSTGRES_BIN" ]; then
        postgres_install
        POSTGRES_BIN=$(postgres_bin_dir)
    fi
    if [ -z "$POSTGRES_BIN" ]; then
        echo "postgres: no initdb/pg_ctl even after installing PostgreSQL" >&2
        return 1
    fi
    POSTGRES_USER=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        POSTGRES_USER=postgres
        if ! id -u postgres >/dev/null 2>&1; then
            POSTGRES_USER=keystate-pg
            id -u "$POSTGRES_USER" >/dev/null 2>&1 || useradd --system --no-create-home "$POSTGRES_USER"
        fi
    fi
    # As root, under /tmp: a TMPDIR below /root would be out of the server user's reach.
    local parent="${TMPDIR:-/tmp}"
    [ "$(id -u)" = 0 ] && parent=/tmp
    POSTGRES_DIR=$(mktemp -d "$parent/keystate-pg.XXXXXX")
    trap postgres_stop EXIT
    chmod 0755 "$POSTGRES_DIR"
    local password port
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" >"$POSTGRES_DIR/pwfile"
    mkdir "$POSTGRES_DIR/sock"
    [ "$(id -u)" = 0 ] && chown -R "$POSTGRES_USER" "$POSTGRES_DIR"
    postgres_as "$POSTGRES_BIN/initdb" -D "$POSTGRES_DIR/data" -U keystate --pwfile="$POSTGRES_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >"$POSTGRES_DIR/initdb.log" 2>&1 || {
        cat "$POSTGRES_DIR/initdb.log" >&2
        return 1
    }
    rm -f "$POSTGRES_DIR/pwfile"
    local tries
    for tries in 1 2 3; do
        port=$(postgres_free_port)
        # fsync off: the tests kill hosts, never the server, and the shared CI disk is slow.
        if postgres_as "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_DIR/sock -c max_connections=300 -c fsync=off" \
            start >/dev/null; then
            break
        fi
        port=""
    done
    if [ -z "$port" ]; then
        cat "$POSTGRES_DIR/server.log" >&2
        return 1
    fi
    postgres_as "$POSTGRES_BIN/createdb" -h "$POSTGRES_DIR/sock" -p "$port" -U keystate keystate || return 1
    export KEYSTATE_TEST_POSTGRES="postgres://keystate:$password@127.0.0.1:$port/keystate"
    echo "postgres: private server $("$POSTGRES_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port in $POSTGRES_DIR"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    [ "${1:-}" = "--" ] && shift
    postgres_start
    "$@"
fi
