#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks: Debian's postgresql, initialised
# by the `postgres` user in a temporary directory, listening on 127.0.0.1 only, on a free port.
#   scripts/postgres.sh start DIR   starts it and prints an admin URL (also written to DIR/url)
#   scripts/postgres.sh restart DIR restarts it (the tests' server-restart fault)
#   scripts/postgres.sh stop DIR    stops it
# The role `hints` owns the database `hints` and may create databases (each test makes its
# own); it signs in with a password, kept in DIR/url, over TCP.
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the cluster}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
run() { runuser -u postgres -- "$@"; }
case "$action" in
start)
  mkdir -p "$dir"
  chown postgres: "$dir"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$password" >"$dir/password"
  chown postgres: "$dir/password"
  chmod 600 "$dir/password"
  run "$bin/initdb" -D "$dir/data" -A scram-sha-256 --pwfile="$dir/password" -U postgres >/dev/null
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 100
fsync = off
CONF
  run "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
  PGPASSWORD=$password "$bin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE hints LOGIN CREATEDB PASSWORD '$password'" -c "CREATE DATABASE hints OWNER hints"
  echo "postgres://hints:$password@127.0.0.1:$port/hints?sslmode=disable" | tee "$dir/url"
  ;;
restart)
  run "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w restart >/dev/null
  ;;
stop)
  run "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
*) echo "usage: $0 start|restart|stop DIR" >&2; exit 2 ;;
esac
