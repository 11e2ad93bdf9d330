#!/usr/bin/env bash
# PostgreSQL on loopback for the `server_postgres` bench (docs/PERFORMANCE.md): Debian's
# package (installed when missing), a fresh cluster in a temporary directory beside the
# bench's own stores ($TMPDIR, as the bench's temporary stores), a free port, durable
# commits (`fsync=on`, `synchronous_commit=on`); stopped and removed on exit.
#
#   scripts/postgres.sh                    prints the connection string, serves until Ctrl-C
#   scripts/postgres.sh COMMAND [ARG...]   runs COMMAND with KIMBERLITE_BENCH_POSTGRES set
#
# e.g. crates/kimberlite-bench/scripts/postgres.sh cargo bench -p kimberlite-bench --bench server_postgres
set -euo pipefail

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(bindir)" ]; then
  echo "postgres.sh: installing Debian's postgresql package" >&2
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get install -y --no-install-recommends postgresql >&2 \
    || { "${SUDO[@]}" apt-get update >&2 \
         && "${SUDO[@]}" apt-get install -y --no-install-recommends postgresql >&2; }
fi
BIN=$(bindir)
[ -x "$BIN/initdb" ] || { echo "postgres.sh: no initdb under /usr/lib/postgresql" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/kimberlite-bench-pg.XXXXXX")
# initdb and postgres refuse to run as root: as root, run them as the package's user.
AS=()
if [ "$(id -u)" = 0 ]; then
  AS=(runuser -u postgres --)
  chown postgres "$DIR"
fi
stop() {
  "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap stop EXIT
trap 'exit 130' INT TERM

"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-instructions >"$DIR/initdb.log" \
  || { cat "$DIR/initdb.log" >&2; exit 1; }

# A free port: try random ones until the server starts on one.
PORT=
for _ in $(seq 1 20); do
  candidate=$((20000 + RANDOM % 40000))
  if "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 start -o \
    "-c listen_addresses=127.0.0.1 -c port=$candidate -c unix_socket_directories=$DIR \
     -c max_connections=300 -c fsync=on -c synchronous_commit=on" >/dev/null; then
    PORT=$candidate
    break
  fi
done
[ -n "$PORT" ] || { echo "postgres.sh: PostgreSQL did not start" >&2; cat "$DIR/server.log" >&2; exit 1; }

export KIMBERLITE_BENCH_POSTGRES="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
echo "KIMBERLITE_BENCH_POSTGRES=\"$KIMBERLITE_BENCH_POSTGRES\"" >&2
if [ "$#" -gt 0 ]; then
  "$@"
else
  echo "postgres.sh: serving until Ctrl-C" >&2
  while sleep 3600; do :; done
fi
