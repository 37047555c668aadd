#!/usr/bin/env python3
"""A fault-injecting proxy for the local cloud: on 127.0.0.1, in front of an EC2 Query endpoint
(moto's), it forwards requests unchanged unless a rule matches, in which case it answers with an
EC2 error instead (or delays the request, or drops the connection).

Rules come from a JSON file (re-read on each request, so a test can change them while running):
  [{"action": "RunInstances", "match": {"InstanceMarketOptions.MarketType": "spot"},
    "error": "InsufficientInstanceCapacity", "status": 500, "times": 1},
   {"action": "*", "error": "RequestLimitExceeded", "status": 503, "times": 3},
   {"action": "DescribeInstances", "delay": 2.0},
   {"action": "RunInstances", "drop": true, "times": 1}]
`match` compares form parameters exactly; `times` (default: always) counts how often the rule
fires. Every request is logged to the --log file as one JSON line: action, the parameters that
rules look at, and what was done ("forwarded", "error <code>", "dropped").

Usage: fault_proxy.py --target http://127.0.0.1:PORT/ --rules FILE --log FILE [--lifetime S]
Prints "PORT PID" once it accepts connections; exits on SIGTERM, its parent's death or lifetime.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

ARGS = None
LOCK = threading.Lock()
FIRED = {}  # rule index -> times fired


def rules():
    try:
        with open(ARGS.rules) as f:
            return json.load(f)
    except (OSError, ValueError):
        return []


def pick(action, params):
    with LOCK:
        for i, r in enumerate(rules()):
            if r.get("action", "*") not in ("*", action):
                continue
            if any(params.get(k) != v for k, v in r.get("match", {}).items()):
                continue
            key = json.dumps(r, sort_keys=True)
            if "times" in r and FIRED.get(key, 0) >= r["times"]:
                continue
            FIRED[key] = FIRED.get(key, 0) + 1
            return r
    return None


def log(entry):
    with LOCK, open(ARGS.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _answer(self, status, body, ctype="text/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        action = params.get("Action", "?")
        seen = {k: v for k, v in params.items() if k in ("InstanceMarketOptions.MarketType",
                                                           "Placement.AvailabilityZone", "InstanceType")}
        rule = pick(action, params)
        if rule and rule.get("delay"):
            time.sleep(rule["delay"])
        if rule and rule.get("drop"):
            log(dict(seen, action=action, done="dropped"))
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if rule and rule.get("error"):
            code = rule["error"]
            xml = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>%s</Code>"
                   "<Message>injected by fault_proxy.py</Message></Error></Errors>"
                   "<RequestID>fault-proxy</RequestID></Response>" % code)
            log(dict(seen, action=action, done="error " + code))
            self._answer(rule.get("status", 400), xml.encode())
            return
        req = urllib.request.Request(ARGS.target, data=body, method="POST",
                                     headers={k: v for k, v in self.headers.items()
                                              if k.lower() not in ("host", "content-length", "connection")})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "text/xml")
        except urllib.error.HTTPError as e:
            status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "text/xml")
        log(dict(seen, action=action, done="forwarded %d" % status))
        self._answer(status, data, ctype)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--lifetime", type=float, default=300)
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    parent = os.getppid()

    def watchdog():
        until = time.time() + ARGS.lifetime
        while time.time() < until and os.getppid() == parent:
            time.sleep(0.5)
        srv.shutdown()

    threading.Thread(target=watchdog, daemon=True).start()
    print("%d %d" % (srv.server_address[1], os.getpid()), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
