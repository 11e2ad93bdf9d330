#!/usr/bin/env bash
# Runs examples/python/kimberlite_client.py against a live `kimberlite serve` on 127.0.0.1:
# a fresh store, a key made with `kimberlite key add`, /healthz awaited, the script, the
# server stopped. Called by .ci/run after the tests; takes the kimberlite binary as $1.
set -euo pipefail
cd "$(dirname "$0")/.."

# 1 (the default): a build without `kimberlite key add` fails here instead of skipping.
REQUIRED="${KIMBERLITE_PY_EXAMPLE_REQUIRED:-1}"
bin="${1:?usage: python_example.sh PATH/TO/kimberlite}"

if ! "$bin" key add --help >/dev/null 2>&1; then
    if [ "$REQUIRED" = 1 ]; then
        echo "kimberlite key add is missing: the Python example cannot get a key" >&2
        exit 1
    fi
    echo "skipped: this build has no \`kimberlite key add\`, so no key for the example"
    exit 0
fi

if ! python3 -c 'import requests' 2>/dev/null; then
    python3 -m pip install --quiet requests \
        || python3 -m pip install --quiet --break-system-packages requests
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

store="$work/store"
# The token: a line `token: T` if `key add` prints one, else the last word it prints.
"$bin" key add "$store" --name python-example --allow 'admin:*' --allow 'append:*' \
    >"$work/key.out"
token="$(sed -n 's/^[[:space:]]*token:[[:space:]]*//p' "$work/key.out" | tail -n 1)"
if [ -z "$token" ]; then
    token="$(awk 'NF { last = $NF } END { print last }' "$work/key.out")"
fi
printf '%s\n' "$token" >"$work/token"
if [ -z "$token" ]; then
    echo "kimberlite key add printed no token" >&2
    exit 1
fi

"$bin" serve "$store" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
server_pid=$!

# Bounded wait (10 s): the address the server printed, then /healthz answering 200.
url=""
for _ in $(seq 1 100); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "kimberlite serve exited early:" >&2
        cat "$work/serve.log" >&2
        exit 1
    fi
    url="$(grep -o 'https\?://127\.0\.0\.1:[0-9]*' "$work/serve.log" | head -n 1 || true)"
    if [ -n "$url" ] && python3 -c '
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1)' "$url" 2>/dev/null; then
        break
    fi
    url=""
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "kimberlite serve did not answer /healthz within 10 s:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi

timeout 120 python3 examples/python/kimberlite_client.py --server "$url" \
    --token-file "$work/token"
