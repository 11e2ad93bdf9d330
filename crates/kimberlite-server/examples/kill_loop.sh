#!/usr/bin/env bash
# Kills the server (SIGKILL) during a load of synced appends, ROUNDS times, over one store
# that every round restarts; after each kill: `kimberlite verify` must say intact, every batch
# the server acknowledged must be there whole (lost: 0), no batch may be there in part, and
# the access log must hold a record of every acknowledged append. Prints the counts.
# Not part of CI (tests/kill_loop.rs runs a few rounds there): run it by hand.
#
#   crates/kimberlite-server/examples/kill_loop.sh [ROUNDS]    (default 40: each round reads the whole store)
#
# The server is examples/serve_token.rs: `kimberlite serve`'s code with one key given in the
# environment. With key files, `kimberlite key add DIR --name loader --allow admin:* --allow
# append:*` and `kimberlite serve DIR --listen ADDR` do the same.
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-40}
cargo build -q --release -p kimberlite-server --example serve_token --example load_acks
cargo build -q --release -p kimberlite-cli
server=target/release/examples/serve_token
loader=target/release/examples/load_acks
cli=target/release/kimberlite
work=$(mktemp -d)
trap 'kill -9 "${server_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
export KIMBERLITE_TOKEN=kill-loop-token
store=$work/store
: > "$work/acks"
acked_total=0 bad_verify=0 lost=0 partial=0 unrecorded=0
for round in $(seq 1 "$rounds"); do
  "$server" "$store" 127.0.0.1:0 > "$work/server.out" 2> "$work/server.err" &
  server_pid=$!
  for _ in $(seq 1 200); do
    addr=$(sed -n 's/^listening //p' "$work/server.out")
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { echo "round $round: the server did not start" >&2; cat "$work/server.err" >&2; exit 1; }
  if [ "$round" = 1 ]; then
    curl -sf -o /dev/null -H "Authorization: Bearer $KIMBERLITE_TOKEN" \
      -H 'Content-Type: application/json' -d '{"name":"crash"}' "http://$addr/v1/streams"
  fi
  "$loader" "$addr" "$round" >> "$work/acks" &
  loader_pid=$!
  sleep "0.$(( (RANDOM % 40) + 2 ))"
  kill -9 "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  wait "$loader_pid" || true
  if ! "$cli" verify "$store" > "$work/verify" 2>&1; then
    bad_verify=$((bad_verify + 1)); cat "$work/verify" >&2
  fi
  # Batches found: round-client-batch -> number of its events present.
  "$cli" read "$store" crash > "$work/events"
  awk -F- '{ n[$1 "-" $2 "-" $3]++ } END { for (b in n) print b, n[b] }' "$work/events" \
    > "$work/found"
  # A batch of an odd client holds 300 events, of an even one 4 (load_acks.rs).
  whole='{ split($1, id, "-"); want = (id[2] % 2 == 1) ? 300 : 4 }'
  partial=$(awk "$whole"' $2 != want' "$work/found" | wc -l)
  acked_total=$(wc -l < "$work/acks")
  lost=$(awk '{ print $3 }' "$work/acks" | sort -u \
    | join -v1 - <(awk "$whole"' $2 == want { print $1 }' "$work/found" | sort -u) | wc -l)
  # Offsets of acknowledged appends the access log recorded as answered 200.
  "$cli" read "$store" _access \
    | sed -n 's/.*"stream":"crash","from":\([0-9]*\),.*"status":200.*/\1/p' | sort -u \
    > "$work/recorded"
  unrecorded=$(awk '{ print $2 }' "$work/acks" | sort -u | join -v1 - "$work/recorded" | wc -l)
  if [ "$lost" != 0 ] || [ "$partial" != 0 ] || [ "$unrecorded" != 0 ]; then
    echo "round $round: lost $lost, partial $partial, unrecorded $unrecorded" >&2
    break
  fi
done
echo "rounds $round | batches acknowledged $acked_total | events found $(wc -l < "$work/events")" \
  "| lost $lost | partial batches $partial | acknowledged without access record $unrecorded" \
  "| verify not intact $bad_verify"
