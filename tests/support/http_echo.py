#!/usr/bin/env python3
"""A small HTTP/1.1 server for skyhost's HTTP tests, on 127.0.0.1 and an ephemeral port.

Prints "PORT PID" on its first stdout line (and, with --port-file F, writes the same to F
atomically) once it accepts connections. It exits on SIGTERM, when its parent goes away, or after
--lifetime seconds (default 120), so a test that dies cannot leave it running.

Routes (any method):
  /echo, anything else  200, JSON {method, path, query, headers: [[name, value]...], body,
                        body_len}; body is the request body as UTF-8 text (errors replaced)
  /raw                  200, the request body sent back as is (application/octet-stream)
  /delay?ms=N           sleeps N ms, then as /echo
  /status/N             status N, JSON {status: N}
  /big?bytes=N          N bytes (byte i is i mod 251), Content-Length; &chunked=1 for chunked
  /headers              200 with Set-Cookie twice, X-Multi twice, a mixed-case X-Mixed-Case
  /redirect?to=PATH     302 to PATH
  /close                closes the connection without answering
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self, url, body):
        doc = {
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "body_len": len(body),
        }
        self._send(200, json.dumps(doc).encode())

    def _handle(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self._body()
        if url.path == "/close":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if url.path == "/raw":
            return self._send(200, body, "application/octet-stream")
        if url.path == "/delay":
            time.sleep(int(q.get("ms", "0")) / 1000)
            return self._echo(url, body)
        if url.path.startswith("/status/"):
            status = int(url.path.split("/")[2])
            return self._send(status, json.dumps({"status": status}).encode())
        if url.path == "/big":
            return self._big(int(q.get("bytes", "0")), q.get("chunked") == "1")
        if url.path == "/headers":
            return self._send(200, b"{}", extra=[
                ("Set-Cookie", "a=1"), ("X-Multi", "one"), ("Set-Cookie", "b=2"),
                ("X-Multi", "two"), ("X-Mixed-Case", "Value")])
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", q.get("to", "/echo"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        return self._echo(url, body)

    def _big(self, n, chunked):
        pattern = bytes(i % 251 for i in range(251 * 64))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        sent = 0
        while sent < n:
            part = pattern[: min(len(pattern), n - sent)]
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            else:
                self.wfile.write(part)
            sent += len(part)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that time out or abort on purpose are part of the tests: stay quiet.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file")
    ap.add_argument("--lifetime", type=float, default=120)
    args = ap.parse_args()

    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    line = "%d %d\n" % (port, os.getpid())
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(line)
        os.rename(tmp, args.port_file)
    sys.stdout.write(line)
    sys.stdout.flush()

    parent = os.getppid()
    deadline = time.monotonic() + args.lifetime

    def watchdog():
        while time.monotonic() < deadline and os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
