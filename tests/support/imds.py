#!/usr/bin/env python3
"""The instance metadata service (IMDSv2) of one local-cloud instance, as much of it as a spot
node's worker reads (docs/aws.md): run by tests/support/local_cloud.py inside the instance's
network namespace on 169.254.169.254:80.

  PUT /latest/api/token          needs X-aws-ec2-metadata-token-ttl-seconds (1-21600): a token
  GET /latest/meta-data/instance-id
  GET /latest/meta-data/spot/instance-action
                                 404 until a test writes NOTICES/<instance id> (the JSON AWS
                                 serves, {"action": ..., "time": ...}), then that file
Every GET needs a token this server issued (X-aws-ec2-metadata-token), else 401. Each request
is appended to NOTICES/<instance id>.log ("METHOD PATH STATUS"), so a test can tell whether a
worker asked at all.

Usage: imds.py INSTANCE_ID NOTICES_DIR [ADDRESS [PORT]]
"""
import http.server
import os
import secrets
import sys

INSTANCE, NOTICES = sys.argv[1], sys.argv[2]
ADDRESS = sys.argv[3] if len(sys.argv) > 3 else "169.254.169.254"
PORT = int(sys.argv[4]) if len(sys.argv) > 4 else 80
TOKENS = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        with open(os.path.join(NOTICES, INSTANCE + ".log"), "a") as f:
            f.write("%s %s %d\n" % (self.command, self.path, status))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path != "/latest/api/token":
            return self.answer(404)
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.answer(400)
        token = secrets.token_urlsafe(24)
        TOKENS.add(token)
        self.answer(200, token.encode())

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") not in TOKENS:
            return self.answer(401)
        if self.path == "/latest/meta-data/instance-id":
            return self.answer(200, INSTANCE.encode())
        if self.path != "/latest/meta-data/spot/instance-action":
            return self.answer(404)
        try:
            with open(os.path.join(NOTICES, INSTANCE), "rb") as f:
                body = f.read()
        except FileNotFoundError:
            return self.answer(404)
        self.answer(200, body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer((ADDRESS, PORT), Handler).serve_forever()
