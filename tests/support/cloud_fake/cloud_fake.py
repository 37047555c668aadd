#!/usr/bin/env python3
"""Fake RunPod, Lambda Cloud, DigitalOcean and Vast.ai APIs on 127.0.0.1, stateful, whose instances are
real machines (netns OpenSSH hosts of the `skyc` bed, store.py), each served BEHIND Stoplight
Prism (`prism proxy --errors`) with that cloud's official OpenAPI spec (tests/data/cloud-specs/):
a request skyhost sends or an answer the fake gives that the spec does not allow is an error
answer, and a line with "violation" in Prism's log.

Usage (root; any python3): cloud_fake.py [--lifetime S] [--token T]
prints one JSON line once every Prism answers:
  {"runpod": URL, "lambda": URL, "digitalocean": URL, "vast": URL   (through Prism: what skyhost is given;
   "runpod_v2": URL                                     RunPod's API v2 price list, its own spec and Prism)
   "control": {cloud: URL}                              (the fake itself, for the test)
   "prism_log": PATH, "pid": PID}
then runs until SIGTERM, its parent's death or the lifetime; on the way out it removes every
host it made and stops the Prisms (by PID). The test asks the fake itself (not through Prism):
  GET  /_fake/state                       instances, keys, capacity, requests
  POST /_fake/capacity {"available": b}   whether launches of that cloud find capacity
  POST /_fake/faults {"statuses": [429, 500]}   the next API requests of that cloud get these
                                          (429 with Retry-After: 1), in the cloud's error format
API requests need `Authorization: Bearer <token>` (default "fake-token"); others get 401.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import apis  # noqa: E402
from store import Store, log  # noqa: E402

PRISM = os.path.join(os.environ.get("SKYHOST_PRISM_DIR", "/opt/skyhost-prism"), "node_modules", ".bin", "prism")
SPEC = {"runpod": "runpod.json", "runpod_v2": "runpod-v2.json", "lambda": "lambda.yaml", "digitalocean": "digitalocean.json", "vast": "vast.json"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handler(cloud, store, token):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, status, doc, headers=()):
            body = b"" if doc is None else json.dumps(doc).encode()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if doc is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _do(self, method):
            u = urlsplit(self.path)
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return self._send(400, {"error": "body is not JSON"})
            if u.path == "/_fake/state":
                return self._send(200, store.snapshot())
            if u.path == "/_fake/capacity":
                store.capacity[cloud] = bool(body.get("available"))
                return self._send(200, store.capacity)
            if u.path == "/_fake/faults":
                store.faults[cloud] = list(body.get("statuses", []))
                return self._send(200, store.faults)
            store.requests.append((cloud, method, u.path))
            if self.headers.get("Authorization") != "Bearer " + token:
                if cloud == "vast":
                    return self._send(401, {"success": False, "error": "auth_error", "msg": "Invalid user key"})
                if cloud == "lambda":
                    return self._send(401, apis._lambda_error("global/invalid-api-key", "API key is invalid, expired, or deleted."))
                return self._send(401, {"id": "unauthorized", "message": "Unable to authenticate you."})
            if store.faults.get(cloud):
                status = store.faults[cloud].pop(0)
                store.requests.append((cloud, method, u.path, status))
                return self._send(status, *apis.fault(cloud, status))
            fn, m = apis.route(cloud, method, u.path)
            if not fn:
                return self._send(404, {"error": "no route %s %s" % (method, u.path)})
            try:
                status, doc = fn(store, m, body, parse_qs(u.query))
            except (KeyError, TypeError, ValueError, IndexError) as e:
                status, doc = 400, {"error": "bad request: %r" % e}
            self._send(status, doc)

        def do_GET(self):
            self._do("GET")

        def do_POST(self):
            self._do("POST")

        def do_DELETE(self):
            self._do("DELETE")

        def do_PUT(self):
            self._do("PUT")

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=float, default=600)
    ap.add_argument("--token", default="fake-token")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cloud_fake.py: must run as root (network namespaces)")
    if not os.access(PRISM, os.X_OK):
        sys.exit("cloud_fake.py: no Prism at %s: run .ci/install-prism" % PRISM)
    store = Store()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    prism_log = tempfile.NamedTemporaryFile(prefix="skyhost-prism-", suffix=".log", delete=False)
    servers, prisms, out = [], [], {"control": {}, "prism_log": prism_log.name, "pid": os.getpid()}
    specs = os.path.join(HERE, "..", "..", "data", "cloud-specs")
    try:
        for cloud in SPEC:
            srv = ThreadingHTTPServer(("127.0.0.1", 0), handler(cloud, store, args.token))
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            servers.append(srv)
            upstream = "http://127.0.0.1:%d" % srv.server_address[1]
            port = free_port()
            prisms.append(subprocess.Popen([PRISM, "proxy", "--errors", "-h", "127.0.0.1", "-p", str(port),
                                            os.path.join(specs, SPEC[cloud]), upstream],
                                           stdout=prism_log, stderr=subprocess.STDOUT))
            out[cloud] = "http://127.0.0.1:%d" % port
            out["control"][cloud] = upstream
        deadline = time.time() + 60
        for cloud in SPEC:
            while True:
                try:
                    urllib.request.urlopen(out[cloud] + "/_prism_ready", timeout=1)
                    break
                except urllib.error.HTTPError:
                    break  # Prism answered (404 or 401): it is listening
                except OSError:
                    if time.time() > deadline or any(p.poll() is not None for p in prisms):
                        sys.exit("cloud_fake.py: Prism did not start; its log: %s" % open(prism_log.name).read()[-2000:])
                    time.sleep(0.2)
        print(json.dumps(out), flush=True)
        parent = os.getppid()
        until = time.time() + args.lifetime
        while not stop and time.time() < until and os.getppid() == parent:
            store.step()
            time.sleep(0.2)
    finally:
        for p in prisms:
            p.terminate()
        for p in prisms:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        store.close()
        for srv in servers:
            srv.shutdown()
        log("stopped")


if __name__ == "__main__":
    main()
