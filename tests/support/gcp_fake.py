#!/usr/bin/python3
"""A stateful loopback fake of the Compute Engine API v1 and of Google's OAuth token endpoint.

Serves on 127.0.0.1: instances.insert/get/delete/list and zoneOperations.get/wait (with or without
the /compute/v1 prefix: Prism proxy drops it), and POST /token (RFC 7523 JWT bearer, verified with
python3-jwt against --public-key; RFC 6749 refresh tokens). Compute calls need a token the
endpoint issued (else 401 in Google's error format). Every inserted instance becomes a real
OpenSSH host in a network namespace (tests/support/netns-hosts.sh, bed `skyg`, 10.209.0.0/16,
state in /run/skyhost-gcp) with the keys of its `ssh-keys` metadata authorized, and is RUNNING at
that host's address once sshd is up (an instance that asked for an external address gets the
same one as natIP: the bed has one network); a deleted one loses its host. Zones named by --exhausted
fail inserts with ZONE_RESOURCE_POOL_EXHAUSTED in the operation, as Compute Engine does.

--flaky N answers the first N Compute calls 429 (with Retry-After) and 503, alternately.
Usage (root, /usr/bin/python3): gcp_fake.py --public-key PUB.pem [--exhausted ZONE,...] [--flaky N]
                                            [--lifetime S]
prints one JSON line {"port", "token_uri", "pid"} once it listens; runs until SIGTERM, its parent's
death or the lifetime, then removes every host it made. GET /_fake/instances answers every
instance ever made ({name: {status, zone, labels, deleted, external}}) for the tests' final checks; POST
/_fake/config {"revoke_tokens": true} forgets every token issued (the next call gets 401),
{"forbid": true|false} answers every Compute call 403, {"boot_delay": S} keeps new instances
STAGING S seconds longer, {"quota_regions": [R...]} fails inserts there with QUOTA_EXCEEDED,
{"token_flaky": N} answers the next N token requests 503; it answers {"issued": tokens issued so far}.
"""
import argparse
import http.server
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import jwt as pyjwt

HERE = os.path.dirname(os.path.abspath(__file__))
NETNS = os.path.join(HERE, "netns-hosts.sh")
ENV = dict(os.environ, SKYT_PREFIX="skyg", SKYT_NET4="10.209", SKYT_NET6="fd5c:209:",
           SKYT_STATE=os.environ.get("SKYG_STATE", "/run/skyhost-gcp"), SKYT_HOST_BASE="10")
STATE = ENV["SKYT_STATE"]
lock = threading.RLock()
ids = itertools.count(4000000000000000001)
instances = {}   # (zone, name) -> instance dict (kept after delete, with "deleted": True)
operations = {}  # (zone, name) -> operation dict
tokens = set()
issued = [0]     # tokens handed out
hosts = set()    # indexes netns-hosts.sh was asked to add
free = list(range(1, 200))
args = None


def log(msg):
    print("gcp_fake: " + msg, file=sys.stderr, flush=True)


def netns(*a):
    return subprocess.run([NETNS, *a], env=ENV, capture_output=True, text=True, timeout=60)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())


def base(zone):
    return "https://www.googleapis.com/compute/v1/projects/%s/zones/%s" % (args.project, zone)


def operation(zone, kind, target, error=None):
    name = "operation-%d" % next(ids)
    op = {"kind": "compute#operation", "id": str(next(ids)), "name": name, "zone": base(zone),
          "operationType": kind, "targetLink": target, "status": "RUNNING", "progress": 0,
          "insertTime": now(), "startTime": now(), "selfLink": base(zone) + "/operations/" + name}
    operations[(zone, name)] = op
    return op


def finish(op, error=None):
    with lock:
        op.update(status="DONE", progress=100, endTime=now())
        if error:
            op["error"] = {"errors": [{"code": error[0], "message": error[1]}]}
            op["httpErrorStatusCode"], op["httpErrorMessage"] = error[2], error[3]


def authorize(items):
    path = os.path.join(STATE, "authorized_keys")
    os.makedirs(STATE, exist_ok=True)
    have = open(path).read() if os.path.exists(path) else ""
    with open(path, "a") as f:
        for item in items:
            if item.get("key") != "ssh-keys":
                continue
            for line in item.get("value", "").splitlines():
                user, _, key = line.partition(":")
                if key.strip() and key.split()[1] not in have:
                    f.write(key.strip() + "\n")


bed_lock = threading.Lock()  # serializes netns-hosts.sh add (boot)


def boot(inst, op):
    """Makes the instance's host; RUNNING at its address once sshd answers."""
    with lock:
        index = free.pop(0)
        hosts.add(index)
        inst["status"] = "STAGING"
    authorize(inst.get("metadata", {}).get("items", []))
    time.sleep(args.boot_delay)
    # One host at a time: netns-hosts.sh's first `add` makes the bed (bridge, client key), and
    # two at once both try to, one failing ("File exists"), which read as an instance lost.
    with bed_lock:
        r = netns("add", str(index))
    with lock:
        if r.returncode != 0 or inst.get("deleted"):
            log("cannot make host %d for %s: %s" % (index, inst["name"], r.stderr.strip()))
            netns("remove", str(index))
            inst["status"] = "TERMINATED"
            return
        inst["_host"] = index
        nic = inst["networkInterfaces"][0]
        nic["networkIP"] = "10.209.0.%d" % (10 + index)
        if "accessConfigs" in nic:  # the bed has one network: the "external" address is the same
            nic["accessConfigs"][0]["natIP"] = nic["networkIP"]
        inst["status"] = "RUNNING"
        inst["lastStartTimestamp"] = now()
    log("up %s 10.209.0.%d h%d" % (inst["name"], 10 + index, index))


def delete(inst, op):
    with lock:
        inst["status"] = "STOPPING"
        index = inst.pop("_host", None)
    if index is not None:
        netns("remove", str(index))
        log("down %s h%d" % (inst["name"], index))
    with lock:
        inst["deleted"] = True
        inst["status"] = "TERMINATED"
    finish(op)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, reason, message, headers=()):
        names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}
        self.reply(status, {"error": {"code": status, "message": message, "status": names.get(status, "UNKNOWN"),
                                      "errors": [{"message": message, "domain": "global", "reason": reason}]}},
                   headers)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def token(self):
        form = dict(urllib.parse.parse_qsl(self.body().decode()))
        grant = form.get("grant_type")
        with lock:
            flaky = args.token_flaky > 0
            args.token_flaky -= 1 if flaky else 0
        if flaky:
            log("flaky: token endpoint 503")
            return self.reply(503, {"error": "temporarily_unavailable", "error_description": "try again"})
        try:
            if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                claims = pyjwt.decode(form.get("assertion", ""), args.public_key, algorithms=["RS256"],
                                      audience="http://127.0.0.1:%d/token" % self.server.server_port)
                if claims.get("scope") != "https://www.googleapis.com/auth/compute":
                    raise ValueError("scope %r" % claims.get("scope"))
            elif grant == "refresh_token":
                if not form.get("refresh_token") or not form.get("client_secret"):
                    raise ValueError("refresh_token and client_secret are required")
            else:
                raise ValueError("grant_type %r" % grant)
        except Exception as e:
            log("token refused: %s" % e)
            return self.reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        tok = "ya29.fake-%d" % next(ids)
        with lock:
            tokens.add(tok)
            issued[0] += 1
        self.reply(200, {"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if method == "POST" and path == "/token":
            return self.token()
        if method == "POST" and path == "/_fake/config":
            conf = json.loads(self.body() or b"{}")
            with lock:
                if conf.get("revoke_tokens"):
                    tokens.clear()
                args.forbid = bool(conf.get("forbid", args.forbid))
                args.boot_delay = float(conf.get("boot_delay", args.boot_delay))
                args.quota = set(conf.get("quota_regions", args.quota))
                args.token_flaky = int(conf.get("token_flaky", args.token_flaky))
                return self.reply(200, {"issued": issued[0], "forbid": args.forbid})
        if method == "GET" and path == "/_fake/instances":
            with lock:
                return self.reply(200, {i["name"]: dict({k: i.get(k) for k in ("status", "zone", "labels", "deleted")},
                                                        external="accessConfigs" in i["networkInterfaces"][0])
                                        for i in instances.values()})
        path = path[len("/compute/v1"):] if path.startswith("/compute/v1/") else path
        m = re.fullmatch(r"/projects/([^/]+)/zones/([^/]+)/(instances|operations)(?:/([^/]+))?(/wait)?", path)
        if not m:
            return self.error(404, "notFound", "The requested URL %s was not found." % path)
        auth = self.headers.get("Authorization", "")
        with lock:
            known = auth.startswith("Bearer ") and auth[7:] in tokens
        if not known:
            return self.error(401, "authError", "Request had invalid authentication credentials.")
        with lock:
            flaky = args.flaky > 0
            args.flaky -= 1 if flaky else 0
        if flaky:  # throttled, then unavailable: the client must retry both
            self.body()
            status = 429 if args.flaky % 2 else 503
            log("flaky: %d for %s %s" % (status, method, path))
            if status == 429:
                return self.error(429, "rateLimitExceeded", "Rate Limit Exceeded", [("Retry-After", "1")])
            return self.error(503, "backendError", "Backend Error")
        project, zone, kind, name, wait = m.groups()
        if project != args.project or args.forbid:
            return self.error(403, "forbidden", "Required 'compute.instances.list' permission for "
                              "'projects/%s'" % project)
        if kind == "operations":
            op = operations.get((zone, name))
            if not op:
                return self.error(404, "notFound", "The resource 'operation %s' was not found" % name)
            if wait:
                self.body()
                deadline = time.time() + 5
                while op["status"] != "DONE" and time.time() < deadline:
                    time.sleep(0.05)
            with lock:
                return self.reply(200, dict(op))
        if method == "POST" and name is None:
            return self.insert(zone, json.loads(self.body() or b"{}"))
        if method == "GET" and name is None:
            return self.list(zone, urllib.parse.parse_qs(url.query).get("filter", [""])[0])
        with lock:
            inst = instances.get((zone, name))
            if not inst or inst.get("deleted"):
                return self.error(404, "notFound", "The resource 'projects/%s/zones/%s/instances/%s' was not found"
                                  % (project, zone, name))
            if method == "GET":
                return self.reply(200, public(inst))
            if method == "DELETE":
                if inst["status"] == "STOPPING":
                    return self.error(400, "resourceNotReady", "The resource '%s' is not ready" % name)
                op = operation(zone, "delete", inst["selfLink"])
                threading.Thread(target=delete, args=(inst, op), daemon=True).start()
                return self.reply(200, dict(op))
        self.error(404, "notFound", "no such method")

    def insert(self, zone, body):
        name = body.get("name", "")
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            return self.error(400, "invalid", "Invalid value for field 'resource.name': '%s'." % name)
        with lock:
            if (zone, name) in instances and not instances[(zone, name)].get("deleted"):
                return self.error(409, "alreadyExists", "The resource '%s' already exists" % name)
            inst = {"kind": "compute#instance", "id": str(next(ids)), "name": name, "zone": base(zone),
                    "machineType": base(zone) + "/machineTypes/" + body.get("machineType", "").rsplit("/", 1)[-1],
                    "status": "PROVISIONING", "creationTimestamp": now(), "labels": body.get("labels", {}),
                    "metadata": body.get("metadata", {}), "scheduling": body.get("scheduling", {}),
                    "networkInterfaces": [{"kind": "compute#networkInterface", "name": "nic0",
                                           "network": "https://www.googleapis.com/compute/v1/projects/%s/global/"
                                           "networks/default" % args.project}],
                    "selfLink": base(zone) + "/instances/" + name}
            asked = (body.get("networkInterfaces") or [{}])[0]
            if asked.get("accessConfigs"):
                inst["networkInterfaces"][0]["accessConfigs"] = [
                    {"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT", "name": "External NAT"}]
            op = operation(zone, "insert", inst["selfLink"])
            if zone in args.exhausted:
                finish(op, ("ZONE_RESOURCE_POOL_EXHAUSTED", "The zone '%s' does not have enough resources "
                            "available to fulfill the request. Try a different zone, or try again later." %
                            base(zone), 503, "SERVICE UNAVAILABLE"))
                return self.reply(200, dict(op))
            if zone.rsplit("-", 1)[0] in args.quota:
                finish(op, ("QUOTA_EXCEEDED", "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region %s."
                            % zone.rsplit("-", 1)[0], 403, "FORBIDDEN"))
                return self.reply(200, dict(op))
            instances[(zone, name)] = inst

        def run():
            boot(inst, op)
            finish(op)
        threading.Thread(target=run, daemon=True).start()
        self.reply(200, dict(op))

    def list(self, zone, flt):
        want = re.fullmatch(r"\s*labels\.([a-z0-9_-]+)\s*=\s*\"?([a-z0-9_-]+)\"?\s*", flt) if flt else None
        if flt and not want:
            return self.error(400, "invalid", "Invalid value for field 'filter': '%s'." % flt)
        with lock:
            items = [public(i) for (z, _), i in instances.items() if z == zone and not i.get("deleted")
                     and (not want or i["labels"].get(want.group(1)) == want.group(2))]
        body = {"kind": "compute#instanceList", "id": "projects/%s/zones/%s/instances" % (args.project, zone),
                "selfLink": base(zone) + "/instances"}
        if items:
            body["items"] = items
        self.reply(200, body)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")


def public(inst):
    return {k: v for k, v in inst.items() if not k.startswith("_") and k != "deleted"}


def main():
    global args
    ap = argparse.ArgumentParser()
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--project", default="skyhost-test")
    ap.add_argument("--exhausted", default="")
    ap.add_argument("--flaky", type=int, default=0, help="answer the first N Compute calls 429/503")
    ap.add_argument("--lifetime", type=float, default=600)
    args = ap.parse_args()
    args.public_key = open(args.public_key).read()
    args.exhausted = set(z for z in args.exhausted.split(",") if z)
    args.forbid = False
    args.boot_delay = 0.0
    args.quota = set()
    args.token_flaky = 0
    if os.geteuid() != 0:
        sys.exit("gcp_fake.py: must run as root (network namespaces)")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(json.dumps({"port": server.server_port, "token_uri": "http://127.0.0.1:%d/token" % server.server_port,
                      "pid": os.getpid()}), flush=True)
    parent, until = os.getppid(), time.time() + args.lifetime
    try:
        while not stop.is_set() and time.time() < until and os.getppid() == parent:
            stop.wait(0.2)
    finally:
        server.shutdown()
        with lock:
            made = sorted(hosts)
        for index in made:
            netns("remove", str(index))
        netns("down")


if __name__ == "__main__":
    main()
