#!/usr/bin/python3
"""GCP credentials and token exchange, with Debian's python3-google-auth and python3-jwt as oracles.

- The service-account assertion skyhost signs (C++ RS256, providers/gcp/auth.lua) verifies with
  PyJWT under the key's public half, and its header and claims equal those google-auth makes for
  the same key and time (compared decoded: the JSON texts differ in spacing and key order).
- skyhost's token request to a loopback token endpoint carries the same form fields as
  google-auth's own request to that endpoint (service account and authorized user), and the
  endpoint verifies the assertion's signature.
- Where credentials are found (explicit path, GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file)
  and the messages for missing or broken ones; the private key never appears in output.
Usage: test_auth.py SKYHOST
"""
import datetime
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from unittest import mock

import jwt as pyjwt
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
import google.auth.transport.requests

SKYHOST = sys.argv[1]
NOW = 1767225600  # 2026-01-01T00:00:00Z
SCOPE = "https://www.googleapis.com/auth/compute"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL", name, detail)


class Token(http.server.BaseHTTPRequestHandler):
    """A token endpoint: records each form, verifies assertions, answers with a token."""
    seen = []
    public_pem = None
    refuse = False

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
        Token.seen.append((self.headers.get("Content-Type"), form))
        ok = not Token.refuse
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:
                pyjwt.decode(form["assertion"], Token.public_pem, algorithms=["RS256"],
                             audience="http://127.0.0.1:%d/token" % self.server.server_port,
                             options={"verify_exp": False, "verify_iat": False})
            except Exception as e:  # a bad signature or claim: refused as Google does
                print("token endpoint refused:", e)
                ok = False
        if ok:
            body, status = {"access_token": "ya29.test", "expires_in": 3599, "token_type": "Bearer"}, 200
        else:
            body, status = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def run(code, env_extra, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=home, **env_extra)
    return subprocess.run([SKYHOST, "-e", code], env=env, capture_output=True, text=True, timeout=60)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Token)
threading.Thread(target=server.serve_forever, daemon=True).start()
token_uri = "http://127.0.0.1:%d/token" % server.server_port

with tempfile.TemporaryDirectory() as home:
    key_pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                             capture_output=True, text=True, check=True).stdout
    Token.public_pem = subprocess.run(["openssl", "pkey", "-pubout"], input=key_pem, capture_output=True,
                                      text=True, check=True).stdout
    info = {"type": "service_account", "project_id": "skyhost-test", "private_key_id": "0123456789abcdef",
            "private_key": key_pem, "client_email": "skyhost-test@skyhost-test.iam.gserviceaccount.com",
            "client_id": "1234", "token_uri": token_uri}
    sa_path = home + "/sa.json"
    with open(sa_path, "w") as f:
        json.dump(info, f)

    # 1. The assertion: PyJWT verifies it; header and claims equal google-auth's.
    r = run('local a = require "providers.gcp.auth" '
            'print(a.assertion(a.resolve(%r), %d))' % (sa_path, NOW), {}, home)
    ours = r.stdout.strip()
    check("assertion made", r.returncode == 0 and ours.count(".") == 2, r.stderr)
    creds = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    with mock.patch("google.auth._helpers.utcnow", return_value=datetime.datetime.utcfromtimestamp(NOW)):
        theirs = creds._make_authorization_grant_assertion().decode()
    try:
        claims = pyjwt.decode(ours, Token.public_pem, algorithms=["RS256"], audience=token_uri,
                              options={"verify_exp": False, "verify_iat": False})
        check("PyJWT verifies our RS256 signature", True)
    except Exception as e:
        claims = None
        check("PyJWT verifies our RS256 signature", False, repr(e))
    ref_claims = pyjwt.decode(theirs, options={"verify_signature": False})
    check("claims equal google-auth's", claims == ref_claims, "%s != %s" % (claims, ref_claims))
    check("header equals google-auth's", pyjwt.get_unverified_header(ours) == pyjwt.get_unverified_header(theirs),
          "%s != %s" % (pyjwt.get_unverified_header(ours), pyjwt.get_unverified_header(theirs)))
    tampered = ours[:-4] + ("AAAA" if not ours.endswith("AAAA") else "BBBB")
    try:
        pyjwt.decode(tampered, Token.public_pem, algorithms=["RS256"], audience=token_uri,
                     options={"verify_exp": False, "verify_iat": False})
        check("a tampered signature is rejected (the oracle is awake)", False)
    except pyjwt.InvalidSignatureError:
        check("a tampered signature is rejected (the oracle is awake)", True)
    # Both signatures are deterministic PKCS#1 v1.5: equal bytes signed give equal signatures,
    # so sign google-auth's signing input with our C++ and compare the bytes.
    signing_input = theirs.rsplit(".", 1)[0]
    with open(sa_path + ".pem", "w") as f:
        f.write(key_pem)
    r = run('local a = require "providers.gcp.auth" local c = require "skyhost.crypto" '
            'local f = io.open(%r) local pem = f:read("a") f:close() '
            'print(a.b64url(assert(c.sign_rs256(pem, %r))))' % (sa_path + ".pem", signing_input), {}, home)
    # (google-auth 1.5 keeps base64 padding in its JWTs; RFC 7515 §2 drops it: compare unpadded)
    check("same bytes, same signature as google-auth", r.stdout.strip() == theirs.rsplit(".", 1)[1].rstrip("="),
          r.stdout + r.stderr)

    # 2. The token request, ours against google-auth's.
    code = 'local a = require "providers.gcp.auth" print(a.source(a.resolve()):token())'
    Token.seen.clear()
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": sa_path}, home)
    check("service account: token from the endpoint", r.stdout.strip() == "ya29.test", r.stdout + r.stderr)
    creds.refresh(google.auth.transport.requests.Request())
    (ct1, f1), (ct2, f2) = Token.seen[0], Token.seen[1]
    check("service account: same form fields as google-auth", sorted(f1) == sorted(f2)
          and f1["grant_type"] == f2["grant_type"], "%s vs %s" % (f1, f2))
    check("service account: form content type", ct1 == "application/x-www-form-urlencoded", ct1)

    user = {"type": "authorized_user", "client_id": "cid.apps.googleusercontent.com", "client_secret": "csecret",
            "refresh_token": "1//refresh", "token_uri": token_uri}
    os.makedirs(home + "/.config/gcloud")
    with open(home + "/.config/gcloud/application_default_credentials.json", "w") as f:
        json.dump(user, f)
    Token.seen.clear()
    r = run(code, {}, home)
    check("authorized user (gcloud ADC file): token", r.stdout.strip() == "ya29.test", r.stdout + r.stderr)
    user_credentials.Credentials(None, refresh_token=user["refresh_token"], token_uri=token_uri,
                                 client_id=user["client_id"], client_secret=user["client_secret"]) \
        .refresh(google.auth.transport.requests.Request())
    check("authorized user: same form as google-auth", Token.seen[0][1] == Token.seen[1][1],
          "%s vs %s" % (Token.seen[0][1], Token.seen[1][1]))

    r = run('local a = require "providers.gcp.auth" print(a.resolve().source)',
            {"GOOGLE_APPLICATION_CREDENTIALS": sa_path}, home)
    check("GOOGLE_APPLICATION_CREDENTIALS wins over the ADC file", "GOOGLE_APPLICATION_CREDENTIALS" in r.stdout,
          r.stdout + r.stderr)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=home, GOOGLE_APPLICATION_CREDENTIALS=sa_path)
    r = subprocess.run([SKYHOST, "check"], env=env, capture_output=True, text=True, timeout=60)
    line = [x for x in r.stdout.splitlines() if x.startswith("gcp ")]
    check("skyhost check: gcp ready, the key file and its type, no secret",
          line and "ready" in line[0] and sa_path in line[0] and "(service_account)" in line[0]
          and "PRIVATE KEY" not in r.stdout, r.stdout + r.stderr)

    # 3. Failures: refused, missing, broken; no secret printed.
    Token.refuse = True
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": sa_path}, home)
    Token.refuse = False
    check("refused credentials: AuthFailed with the reason and the fix", r.returncode != 0
          and "refused the credentials" in r.stderr and "invalid_grant" in r.stderr
          and "GOOGLE_APPLICATION_CREDENTIALS" in r.stderr, r.stderr)
    check("the private key is never printed", "PRIVATE KEY" not in r.stderr + r.stdout and "MII" not in r.stderr)
    os.remove(home + "/.config/gcloud/application_default_credentials.json")
    r = run(code, {}, home)
    check("no credentials: says where it looked and how to fix", r.returncode != 0
          and "no Google credentials" in r.stderr and "application_default_credentials.json" in r.stderr
          and "gcloud auth application-default login" in r.stderr, r.stderr)
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": home + "/missing.json"}, home)
    check("GOOGLE_APPLICATION_CREDENTIALS to a missing file", r.returncode != 0 and "cannot be read" in r.stderr,
          r.stderr)
    with open(home + "/bad.json", "w") as f:
        json.dump({"type": "service_account", "client_email": "x@y"}, f)
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": home + "/bad.json"}, home)
    check("a key without private_key", r.returncode != 0 and "has no private_key" in r.stderr, r.stderr)
    with open(home + "/bad.json", "w") as f:
        json.dump(dict(info, private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), f)
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": home + "/bad.json"}, home)
    check("an unreadable private key", r.returncode != 0 and "cannot sign with the private key" in r.stderr
          and "not a readable PEM private key" in r.stderr, r.stderr)
    with open(home + "/bad.json", "w") as f:
        json.dump({"type": "external_account"}, f)
    r = run(code, {"GOOGLE_APPLICATION_CREDENTIALS": home + "/bad.json"}, home)
    check("an unsupported credentials type", r.returncode != 0 and "'external_account'" in r.stderr, r.stderr)

server.shutdown()
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
