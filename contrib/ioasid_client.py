#!/usr/bin/env python3
"""A client of `ioasid serve` in Python's standard library only: HTTP/1.1 over
the service's Unix socket, JSON bodies, events followed as JSON Lines.

    python3 contrib/ioasid_client.py SOCKET selftest

allocates an ID, follows the events of a new subscriber until its ALLOC
arrives, acknowledges it, and checks the subscriber has nothing pending.
"""
import http.client
import json
import os
import socket
import sys
import threading


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix domain socket."""

    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        path = os.fsencode(self.unix_path)
        try:
            if len(path) < 108:
                sock.connect(path)
            else:
                # Longer than a socket address holds: through the open directory (Linux), as the CLI does.
                directory, name = os.path.split(path)
                fd = os.open(directory or b".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    sock.connect(b"/proc/self/fd/%d/%s" % (fd, name))
                finally:
                    os.close(fd)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class IOASIDClient:
    def __init__(self, path):
        self.path = path

    def request(self, method, target, body=None):
        """Returns (status, parsed JSON body)."""
        conn = UnixHTTPConnection(self.path)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, target, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            return response.status, (json.loads(text) if text.strip() else None)
        finally:
            conn.close()

    def follow(self, subscriber, on_event, stop):
        """Calls on_event(event) for each event of `subscriber` as it commits, until stop is set."""
        conn = UnixHTTPConnection(self.path, timeout=30)
        conn.request("GET", "/events/%s?follow=true" % subscriber)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError("follow: HTTP %d %s" % (response.status, response.read().decode()))
        while not stop.is_set():
            line = response.readline()
            if not line:
                break
            if line.strip():
                on_event(json.loads(line))
        conn.close()


def selftest(path):
    client = IOASIDClient(path)
    status, body = client.request("POST", "/subscribers", {"name": "py-agent", "kinds": ["ALLOC"]})
    assert status == 200, (status, body)
    events = []
    arrived = threading.Event()
    stop = threading.Event()

    def on_event(event):
        events.append(event)
        arrived.set()
        stop.set()

    follower = threading.Thread(target=client.follow, args=("py-agent", on_event, stop), daemon=True)
    follower.start()
    status, body = client.request("POST", "/sets/1/ids", {"data": "c0ffee"})
    assert status == 200, (status, body)
    allocated = body["id"]
    assert arrived.wait(10), "no event arrived"
    event = events[0]
    assert event["kind"] == "ALLOC" and event["id"] == allocated, event
    status, body = client.request("POST", "/events/py-agent/ack", {"through": event["sequence"]})
    assert status == 200 and body["lag"] == 0, (status, body)
    status, body = client.request("POST", "/sets/999/ids", {})
    assert status == 404 and body["error"]["code"] == "noSuchSet", (status, body)
    print(json.dumps({"allocated": allocated, "event": event["sequence"], "acknowledged": True}))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] != "selftest":
        sys.exit(__doc__)
    selftest(sys.argv[1])
