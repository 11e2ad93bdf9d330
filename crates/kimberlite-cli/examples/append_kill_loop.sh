#!/usr/bin/env bash
# Kills `kimberlite append` of a big file (200,000 events, 20 batches of 10,000) with SIGKILL
# at a random moment, ROUNDS times, a fresh store each round, and after each kill checks:
# `verify` intact; every event of a batch the CLI reported durable (its `durable:` lines, or
# its final `appended` line) is there (lost: 0); the stream is a whole number of batches of
# the file, in order (partial batches: 0); then the resume command the CLI printed finishes
# the import and the stream is then exactly the file (duplicates or differences: 0). Prints
# the counts. Not part of CI: run it by hand.
#
#   crates/kimberlite-cli/examples/append_kill_loop.sh [ROUNDS]    (default 200)
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-200}
# KIMBERLITE_CLI=path runs another build of the program instead of this tree's release build.
if [ -z "${KIMBERLITE_CLI:-}" ]; then cargo build -q --release -p kimberlite-cli; fi
cli=${KIMBERLITE_CLI:-$PWD/target/release/kimberlite}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
events=200000
batch=10000
awk -v n="$events" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"event\":\"record.viewed\",\"seq\":%07d,\"pad\":\"%s\"}\n", i,
    substr("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", 1 + i % 30) }' \
  > "$work/events.txt"
# How long a whole import takes here: kills land anywhere in it.
start=$(date +%s%N)
"$cli" append "$work/calibrate" s --create --file "$work/events.txt" > /dev/null 2>&1
span_ms=$(( ($(date +%s%N) - start) / 1000000 + 20 ))
rm -rf "$work/calibrate"
acked_total=0 found_total=0 lost=0 partial=0 bad_verify=0 resumed=0 not_resumable=0 wrong=0
for round in $(seq 1 "$rounds"); do
  store=$work/store-$round
  "$cli" append "$store" s --create --file "$work/events.txt" \
    > "$work/out" 2> "$work/err" &
  pid=$!
  delay=$(( (RANDOM * 32768 + RANDOM) % span_ms ))
  sleep "$(awk -v ms="$delay" 'BEGIN { printf "%.3f", ms / 1000 }')"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Acknowledged: the last batch reported durable, or all of them if the import finished.
  acked=$(sed -n 's/^kimberlite: durable: events [0-9]*\.\.\([0-9]*\) .*/\1/p' "$work/err" \
    | tail -n 1)
  acked=${acked:-0}
  if grep -q '^appended ' "$work/out"; then acked=$events; fi
  acked_total=$((acked_total + acked))
  found=0
  # No marker: killed while the store itself was being created (the next append creates it).
  if [ -f "$store/kimberlite.json" ]; then
    if ! "$cli" verify "$store" > "$work/verify" 2>&1; then
      bad_verify=$((bad_verify + 1)); cat "$work/verify" >&2
    fi
    "$cli" read "$store" s > "$work/found" 2> /dev/null || true
    found=$(wc -l < "$work/found")
    if ! head -n "$found" "$work/events.txt" | cmp -s - "$work/found"; then
      wrong=$((wrong + 1)); echo "round $round: the stream is not a prefix of the file" >&2
    fi
  fi
  found_total=$((found_total + found))
  if [ "$found" -lt "$acked" ]; then lost=$((lost + acked - found)); fi
  if [ $((found % batch)) -ne 0 ] && [ "$found" -ne "$events" ]; then
    partial=$((partial + 1)); echo "round $round: $found events, not whole batches" >&2
  fi
  # Resume with the exact command the CLI printed (if it got that far), else start over.
  resume=$(sed -n '/if interrupted, resume with:/{n;s/^  //p;}' "$work/err")
  if [ -n "$resume" ]; then
    resumed=$((resumed + 1))
    eval "$resume" > /dev/null 2> "$work/resume-err" || cat "$work/resume-err" >&2
  else
    not_resumable=$((not_resumable + 1))
    "$cli" append "$store" s --create --file "$work/events.txt" > /dev/null 2>&1
  fi
  if ! "$cli" read "$store" s 2> /dev/null | cmp -s - "$work/events.txt"; then
    wrong=$((wrong + 1)); echo "round $round: after resuming, the stream is not the file" >&2
  fi
  rm -rf "$store"
done
echo "rounds $rounds | events acknowledged $acked_total | events found $found_total" \
  "| lost $lost | partial batches $partial | verify not intact $bad_verify" \
  "| resumed $resumed (killed before the resume line: $not_resumable)" \
  "| stream not the file after resuming $wrong"
