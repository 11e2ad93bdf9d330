#!/usr/bin/env python3
"""A Kimberlite client in Python with `requests` only: the /v1 API from another language.

Creates a stream, appends a batch with an expected offset, reads it back page by page,
handles an expected-offset conflict (409, which names the stream's next offset) and asks the
server to verify the stream. Every step checks what the server answered and exits non-zero
on anything unexpected, so CI runs it against a live server (.ci/run).

    python3 kimberlite_client.py --server http://127.0.0.1:7070 --token-file admin.token

The key needs `admin` (to create the stream; it implies read) and `append` on the stream.
The API is described by the server at /v1/openapi.json; docs/SERVER.md explains it.
"""

import argparse
import json
import sys
import time
from urllib.parse import quote

import requests


class Unexpected(Exception):
    """The server answered something this example did not expect."""


def error_of(response):
    """The API's error object ({"kind", "message", "stream"?, "next_offset"?}), or {}."""
    try:
        return response.json().get("error", {})
    except ValueError:
        return {}


def expect(response, status, what):
    if response.status_code != status:
        raise Unexpected(
            f"{what}: expected HTTP {status}, got {response.status_code}: {response.text[:300]}"
        )
    return response


class Kimberlite:
    def __init__(self, server, token, ca_cert=None, timeout_s=30):
        self.base = server.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.http.verify = ca_cert if ca_cert else True
        self.timeout_s = timeout_s

    def url(self, *segments):
        # Each name is one path segment, whatever it holds ('/', '?', '%' encoded).
        return self.base + "/" + "/".join(quote(s, safe="") for s in segments)

    def get(self, *segments, **params):
        return self.http.get(self.url(*segments), params=params, timeout=self.timeout_s)

    def create_stream(self, name):
        """Creates `name`; a stream that exists already (409) is fine here."""
        response = self.http.post(
            self.url("v1", "streams"), json={"name": name}, timeout=self.timeout_s
        )
        if response.status_code == 409 and error_of(response).get("kind") == "conflict":
            return self.stream(name)
        return expect(response, 201, "create the stream").json()

    def stream(self, name):
        return expect(self.get("v1", "streams", name), 200, "show the stream").json()

    def append(self, name, events, expected_offset):
        """Appends `events` (strings) as one atomic batch; the answer comes once durable."""
        return self.http.post(
            self.url("v1", "streams", name, "events"),
            params={"expected_offset": expected_offset},
            json=events,
            timeout=self.timeout_s,
        )

    def read_all(self, name, start, page_size):
        """Every event from `start` to the stream's end, `page_size` per request."""
        events, offset = [], start
        for _ in range(1_000_000):  # bounded: one round per page
            page = expect(
                self.get("v1", "streams", name, "events", **{"from": offset, "limit": page_size}),
                200,
                "read a page",
            ).json()
            events.extend(page["events"])
            offset = page["next_offset"]
            if not page["events"] or offset >= page["end_offset"]:
                return events
        raise Unexpected("the read did not end")

    def has_route(self, path):
        document = expect(self.get("v1", "openapi.json"), 200, "the OpenAPI document").json()
        return path in document.get("paths", {})


def run(client, stream):
    created = client.create_stream(stream)
    start = created["next_offset"]
    print(f"stream {stream!r}: next offset {start}")

    batch = [
        json.dumps({"actor": "dr.moreau", "action": "viewed", "patient": "P-1", "at": time.time()}),
        json.dumps({"actor": "dr.moreau", "action": "edited", "patient": "P-1"}),
        "plain text events are stored as their UTF-8 bytes",
    ]
    appended = expect(client.append(stream, batch, start), 200, "append the batch").json()
    if (appended["first_offset"], appended["next_offset"]) != (start, start + len(batch)):
        raise Unexpected(f"the batch landed at {appended}, not at offset {start}")
    print(f"appended {len(batch)} events at {start}..{appended['next_offset'] - 1}, "
          f"head {appended['head']}")

    events = client.read_all(stream, start, page_size=2)
    payloads = [event.get("payload") for event in events]
    if payloads != batch:
        raise Unexpected(f"read back {payloads!r}, appended {batch!r}")
    offsets = [event["offset"] for event in events]
    if offsets != list(range(start, start + len(batch))):
        raise Unexpected(f"read back offsets {offsets}")
    print(f"read back {len(events)} events in pages of 2: identical")

    # A writer that believes the stream is still at `start` is refused, and told where it is.
    stale = client.append(stream, ["written by a writer that did not see the batch"], start)
    expect(stale, 409, "append at a stale expected offset")
    conflict = error_of(stale)
    if conflict.get("kind") != "conflict" or conflict.get("next_offset") != appended["next_offset"]:
        raise Unexpected(f"the conflict does not name the next offset: {conflict}")
    print(f"stale append refused (409): next offset is {conflict['next_offset']}; retrying there")
    retried = client.append(stream, ["written after reading the stream again"],
                            conflict["next_offset"])
    retried = expect(retried, 200, "retry at the offset the conflict named").json()
    print(f"retry appended at offset {retried['first_offset']}")

    verify_path = "/v1/streams/{stream}/verify"
    if client.has_route(verify_path):
        report = expect(client.get("v1", "streams", stream, "verify"), 200, "verify").json()
        if report.get("intact") is not True:
            raise Unexpected(f"the stream does not verify: {report}")
        print(f"verified: intact ({report.get('records_checked', '?')} records checked)")
    else:
        # The server does not offer it (its OpenAPI document does not list it): said, not hidden.
        print(f"verify skipped: this server has no {verify_path} route")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="e.g. http://127.0.0.1:7070")
    parser.add_argument("--token-file", required=True, help="file holding the key's token")
    parser.add_argument("--ca-cert", help="CA certificate (PEM) to trust for https")
    parser.add_argument("--stream", default="python-example", help="stream to use")
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as file:
        token = file.read().strip()
    try:
        run(Kimberlite(args.server, token, args.ca_cert), args.stream)
    except (Unexpected, requests.RequestException) as error:
        print(f"kimberlite_client.py: {error}", file=sys.stderr)
        return 1
    print("all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
