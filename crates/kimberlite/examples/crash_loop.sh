#!/usr/bin/env bash
# Kills a group-commit writer (crash_writer.rs) with SIGKILL at a random moment, ROUNDS times,
# and after each kill checks the store: `kimberlite verify` must say intact, every batch the
# writer acknowledged must be there whole (lost: 0), and no batch may be there in part
# (partial batches). Prints the counts. Not part of CI: run it by hand.
#
#   crates/kimberlite/examples/crash_loop.sh [ROUNDS]    (default 200)
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-200}
cargo build -q --release -p kimberlite --example crash_writer
cargo build -q --release -p kimberlite-cli
writer=target/release/examples/crash_writer
cli=target/release/kimberlite
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
acked_total=0 lost=0 partial=0 found_total=0 bad_verify=0
for round in $(seq 1 "$rounds"); do
  # A fresh store each round, so a round's checks cost the same as the first's.
  store=$work/store-$round
  "$writer" "$store" > "$work/acks" &
  pid=$!
  sleep "0.$(( (RANDOM % 30) + 2 ))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if ! "$cli" verify "$store" > "$work/verify" 2>&1; then
    bad_verify=$((bad_verify + 1)); cat "$work/verify" >&2
  fi
  "$cli" read "$store" crash > "$work/events"
  # Batches found: thread-batch -> number of its events present.
  awk -F- '{ n[$1 "-" $2]++ } END { for (b in n) print b, n[b] }' "$work/events" \
    > "$work/found"
  partial=$((partial + $(awk '$2 != 4' "$work/found" | wc -l)))
  found_total=$((found_total + $(wc -l < "$work/events")))
  acked=$(grep -c '^ack ' "$work/acks" || true)
  acked_total=$((acked_total + acked))
  missing=$(sed -n 's/^ack //p' "$work/acks" | sort -u \
    | join -v1 - <(awk '$2 == 4 { print $1 }' "$work/found" | sort -u) | wc -l)
  lost=$((lost + missing))
  rm -rf "$store"
done
echo "rounds $rounds | batches acknowledged $acked_total | events found $found_total" \
  "| lost $lost | partial batches $partial | verify not intact $bad_verify"
