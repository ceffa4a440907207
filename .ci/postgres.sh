#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the study storage test, with its data in a
# temporary directory. Source it: it exports REGLAB_TEST_POSTGRES_URL and stops the server on exit.
set -euo pipefail
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
pg_data=$(mktemp -d /tmp/reglab-pg.XXXXXX)
chown postgres: "$pg_data"
pg_port=54329
as_postgres() { runuser -u postgres -- "$@"; }
as_postgres "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -o "-h 127.0.0.1 -p $pg_port -k $pg_data" -l "$pg_data/server.log" -w start >/dev/null
stop_postgres() { as_postgres "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null || true; rm -rf "$pg_data"; }
trap stop_postgres EXIT
as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" reglab_test
export REGLAB_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@127.0.0.1:$pg_port/reglab_test"
echo "PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port for the study storage test"
