#!/usr/bin/env python3
"""sky.aws credential sources beyond keys (providers/aws/sources.lua), with botocore as an oracle.

credential_process, assume-role (role_arn + source_profile: STS AssumeRole), web identity
(AssumeRoleWithWebIdentity), SSO (a token cached by `aws sso login`), container credentials and
IMDSv2. STS is moto's server on
127.0.0.1 (AWS_ENDPOINT_URL_STS); the SSO portal, the container endpoint and the instance
metadata service are a local HTTP server that insists on the authorization token and the IMDSv2 session token. Each
source: skyhost finds the credentials botocore finds (the same keys where the source is
deterministic; keys STS really issued for the role otherwise, checked with GetCallerIdentity),
`source` says where they came from, and no secret is ever printed. Nothing but 127.0.0.1 is
dialled. Usage: test_sources.py SKYHOST (the default python3: moto and boto3).
"""
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
import botocore.session

SKYHOST = sys.argv[1]
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSOURCEKEY"
RESOLVE = ('local c = require("providers.aws.credentials").resolve(%s) '
           'print(c.access_key_id, c.session_token or "-") print(c.source)')
ROLE = "arn:aws:iam::123456789012:role/skyhost-test"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name, flush=True)
    else:
        failed += 1
        print("FAIL", name, detail, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONTAINER = {"AccessKeyId": "ASIACONTAINER", "SecretAccessKey": SECRET, "Token": "containertoken",
             "Expiration": "2099-01-01T00:00:00Z"}
IMDS = dict(Code="Success", Type="AWS-HMAC", AccessKeyId="ASIAIMDS", SecretAccessKey=SECRET, Token="imdstoken",
            Expiration="2099-01-01T00:00:00Z", LastUpdated="2026-01-01T00:00:00Z")
seen = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        seen.append(("PUT", self.path, dict(self.headers)))
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, "imds-session-token")
        self.reply(400, "")

    def do_GET(self):
        seen.append(("GET", self.path, dict(self.headers)))
        if self.path.startswith("/federation/credentials?"):
            if self.headers.get("x-amz-sso_bearer_token") != "sso-access-token":
                return self.reply(401, "")
            if "account_id=123456789012" not in self.path or "role_name=SkyhostRole" not in self.path:
                return self.reply(404, "")
            return self.reply(200, json.dumps({"roleCredentials": {
                "accessKeyId": "ASIASSO", "secretAccessKey": SECRET, "sessionToken": "ssotoken",
                "expiration": 4102444800000}}))
        if self.path == "/container/creds":
            if self.headers.get("Authorization") != "container-auth-token":
                return self.reply(401, "")
            return self.reply(200, json.dumps(CONTAINER))
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != "imds-session-token":
                return self.reply(401, "")  # IMDSv2 only, as an instance with HttpTokens=required
            role = self.path.rsplit("/", 1)[1]
            if not role:
                return self.reply(200, "noderole")
            if role == "noderole":
                return self.reply(200, json.dumps(IMDS))
        self.reply(404, "")


def run(code, env_extra, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
    env.update(env_extra)
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run([SKYHOST, "-e", code], env=env, capture_output=True, text=True, timeout=60)


def botocore_creds(env_extra, home):
    """What botocore finds in the same environment."""
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[k]
        os.environ.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")
        for k, v in env_extra.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        # botocore fixes the SSO token cache's directory from HOME when it is imported
        import botocore.credentials
        import botocore.tokens
        botocore.credentials.SSOProvider._SSO_TOKEN_CACHE_DIR = os.path.join(home, ".aws", "sso", "cache")
        botocore.tokens.SSOTokenProvider._SSO_TOKEN_CACHE_DIR = os.path.join(home, ".aws", "sso", "cache")
        c = botocore.session.Session().get_credentials()
        return c and (c.get_frozen_credentials(), c.method)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def caller(endpoint, key, token):
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                       aws_secret_access_key="x", aws_session_token=token)
    return sts.get_caller_identity()["Arn"]


def main():
    port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    local = "http://127.0.0.1:%d" % server.server_address[1]
    sts = "http://127.0.0.1:%d/" % port
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(sts + "moto-api/", timeout=1).read()
                break
            except OSError:
                if moto.poll() is not None or time.time() > deadline:
                    sys.exit("test_sources.py: moto did not start for %s" % sys.executable)
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as home:
            cases(home, local, sts)
    finally:
        server.shutdown()
        moto.terminate()
        moto.wait(10)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def cases(home, local, sts):
    os.makedirs(home + "/.aws")
    helper = os.path.join(home, "creds.sh")
    with open(helper, "w") as f:
        f.write('#!/bin/sh\necho \'{"Version": 1, "AccessKeyId": "AKIDPROCESS", "SecretAccessKey": "%s", '
                '"SessionToken": "proctoken", "Expiration": "2099-01-01T00:00:00Z"}\'\n' % SECRET)
    os.chmod(helper, 0o755)
    token_file = os.path.join(home, "web-identity-token")
    with open(token_file, "w") as f:
        f.write("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln\n")
    with open(home + "/.aws/credentials", "w") as f:
        f.write("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = %s\n" % SECRET)
    with open(home + "/.aws/config", "w") as f:
        f.write("[profile proc]\ncredential_process = %s\nregion = eu-west-1\n"
                "[profile broken]\ncredential_process = /bin/false\n"
                "[profile role]\nrole_arn = %s\nsource_profile = base\nrole_session_name = skyhost-role\n"
                "[profile nosource]\nrole_arn = %s\n"
                "[profile mfa]\nrole_arn = %s\nsource_profile = base\nmfa_serial = arn:aws:iam::123456789012:mfa/u\n"
                "[profile loop]\nrole_arn = %s\nsource_profile = loop\n"
                "[profile web]\nrole_arn = %s\nweb_identity_token_file = %s\n"
                "[profile sso]\nsso_session = corp\nsso_account_id = 123456789012\nsso_role_name = SkyhostRole\n"
                "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n"
                "[profile ssolegacy]\nsso_start_url = https://legacy.awsapps.com/start\nsso_region = us-east-1\n"
                "sso_account_id = 123456789012\nsso_role_name = SkyhostRole\n"
                "[profile ssogone]\nsso_start_url = https://expired.awsapps.com/start\nsso_region = us-east-1\n"
                "sso_account_id = 123456789012\nsso_role_name = SkyhostRole\n"
                % (helper, ROLE, ROLE, ROLE, ROLE, ROLE, token_file))
    os.makedirs(home + "/.aws/sso/cache")
    for key, expires in (("corp", "2099-01-01T00:00:00Z"), ("https://legacy.awsapps.com/start", "2099-01-01T00:00:00Z"),
                         ("https://expired.awsapps.com/start", "2020-01-01T00:00:00Z")):
        with open(home + "/.aws/sso/cache/%s.json" % hashlib.sha1(key.encode()).hexdigest(), "w") as f:
            json.dump({"startUrl": "x", "region": "us-east-1", "accessToken": "sso-access-token",
                       "expiresAt": expires}, f)

    def both(name, env, expect_source):
        r = run(RESOLVE % "nil", env, home)
        out = r.stdout.splitlines()
        b = botocore_creds(env, home)
        check(name + ": skyhost finds credentials", r.returncode == 0 and len(out) == 2, r.stdout + r.stderr)
        check(name + ": source says where (%s)" % (out[1] if len(out) == 2 else "?"),
              len(out) == 2 and expect_source in out[1], out)
        check(name + ": no secret printed", SECRET not in r.stdout + r.stderr)
        check(name + ": botocore finds credentials too (%s)" % (b and b[1]), b is not None)
        return (out[0].split("\t") if out else ["", ""]), b

    (key, tok), b = both("credential_process", {"AWS_PROFILE": "proc"}, "credential_process of profile 'proc'")
    check("credential_process: the same keys as botocore", [key, tok] == [b[0].access_key, b[0].token], (key, tok, b))
    r = run(RESOLVE % '"broken"', {}, home)
    check("a failing credential_process is a clear error", r.returncode != 0 and "credential_process of profile 'broken'"
          in r.stderr and "failed with status" in r.stderr, r.stderr)

    (key, tok), b = both("assume-role", {"AWS_PROFILE": "role", "AWS_ENDPOINT_URL_STS": sts},
                         "role %s assumed (STS AssumeRole) by profile 'role' with source profile 'base'" % ROLE)
    check("assume-role: botocore assumed the role as well", b and b[1] == "assume-role", b and b[1])
    arn = caller(sts, key, tok) if tok != "-" else ""
    check("assume-role: STS issued these keys for the role (%s)" % arn, "assumed-role/skyhost-test/skyhost-role" in arn)
    r = run(RESOLVE % '"nosource"', {"AWS_ENDPOINT_URL_STS": sts}, home)
    check("role_arn without a source is a clear error", r.returncode != 0 and "neither source_profile" in r.stderr,
          r.stderr)
    r = run(RESOLVE % '"mfa"', {"AWS_ENDPOINT_URL_STS": sts}, home)
    check("a role behind an MFA device is a clear error, not a prompt or STS's AccessDenied",
          r.returncode != 0 and "MFA device (mfa_serial)" in r.stderr and "AccessDenied" not in r.stderr, r.stderr)
    r = run(RESOLVE % '"loop"', {"AWS_ENDPOINT_URL_STS": sts}, home)
    check("a source_profile loop is a clear error", r.returncode != 0 and "chain longer than 5" in r.stderr, r.stderr)

    env = {"AWS_WEB_IDENTITY_TOKEN_FILE": token_file, "AWS_ROLE_ARN": ROLE, "AWS_ROLE_SESSION_NAME": "skyhost-web",
           "AWS_ENDPOINT_URL_STS": sts}
    (key, tok), b = both("web identity (environment)", env, "AssumeRoleWithWebIdentity) with the token in " + token_file)
    check("web identity: botocore used it as well", b and b[1] == "assume-role-with-web-identity", b and b[1])
    arn = caller(sts, key, tok) if tok != "-" else ""
    check("web identity: STS issued these keys for the role (%s)" % arn, "assumed-role/skyhost-test/skyhost-web" in arn)
    r = run(RESOLVE % '"web"', {"AWS_ENDPOINT_URL_STS": sts}, home)
    check("web identity (profile)", r.returncode == 0 and "AssumeRoleWithWebIdentity" in r.stdout, r.stdout + r.stderr)
    r = run(RESOLVE % "nil", {"AWS_WEB_IDENTITY_TOKEN_FILE": token_file}, home)
    check("a token file without AWS_ROLE_ARN is a clear error", r.returncode != 0 and "AWS_ROLE_ARN is not" in r.stderr,
          r.stderr)

    for profile in ("sso", "ssolegacy"):
        (key, tok), b = both("SSO (%s)" % profile, {"AWS_PROFILE": profile, "AWS_ENDPOINT_URL_SSO": local},
                             "SSO role SkyhostRole of account 123456789012 (profile '%s'" % profile)
        check("SSO (%s): the same keys as botocore" % profile,
              [key, tok] == [b[0].access_key, b[0].token] == ["ASIASSO", "ssotoken"], (key, tok, b))
    r = run(RESOLVE % '"ssogone"', {"AWS_ENDPOINT_URL_SSO": local}, home)
    check("an expired SSO token says to log in again", r.returncode != 0 and "has expired" in r.stderr
          and "aws sso login --profile ssogone" in r.stderr, r.stderr)

    token_path = os.path.join(home, "container-token")
    with open(token_path, "w") as f:
        f.write("container-auth-token")
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": local + "/container/creds",
           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": token_path}
    (key, tok), b = both("container", env, "container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)")
    check("container: the same keys as botocore", [key, tok] == [b[0].access_key, b[0].token] == ["ASIACONTAINER",
          "containertoken"], (key, tok, b))
    r = run(RESOLVE % "nil", dict(env, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=None), home)
    check("container without its token: a clear error", r.returncode != 0 and "HTTP 401" in r.stderr, r.stderr)
    r = run(RESOLVE % "nil", {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.1/creds"}, home)
    check("container: a plain-http address that is not local is refused, not dialled",
          r.returncode != 0 and "must be https://" in r.stderr, r.stderr)

    env = {"AWS_EC2_METADATA_DISABLED": "false", "AWS_EC2_METADATA_SERVICE_ENDPOINT": local + "/"}
    del seen[:]
    (key, tok), b = both("IMDSv2", env, "instance metadata (IMDSv2) at %s, role 'noderole'" % local)
    check("IMDSv2: the same keys as botocore", [key, tok] == [b[0].access_key, b[0].token] == ["ASIAIMDS", "imdstoken"],
          (key, tok, b))
    check("IMDSv2: a session token was asked for first", seen and seen[0][:2] == ("PUT", "/latest/api/token"), seen[:1])
    del seen[:]
    r = run(RESOLVE % "nil", {"AWS_EC2_METADATA_SERVICE_ENDPOINT": local + "/"}, home)
    check("AWS_EC2_METADATA_DISABLED=true: the service is not asked, and the error says so",
          r.returncode != 0 and not seen and "instance metadata disabled" in r.stderr, (seen, r.stderr))

    # temporary credentials close to their expiry are read again before the next API call
    counter = os.path.join(home, "process-runs")
    for name, expires in (("soon", "$(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)"), ("later", "2099-01-01T00:00:00Z")):
        script = os.path.join(home, "creds-%s.sh" % name)
        with open(script, "w") as f:
            f.write('#!/bin/sh\necho run >> %s\necho "{\\"Version\\": 1, \\"AccessKeyId\\": \\"AKID%s\\", '
                    '\\"SecretAccessKey\\": \\"%s\\", \\"Expiration\\": \\"%s\\"}"\n'
                    % (counter, name.upper(), SECRET, expires))
        os.chmod(script, 0o755)
        with open(home + "/.aws/config", "a") as f:
            f.write("[profile %s]\ncredential_process = %s\n" % (name, script))
    for name, runs in (("soon", 3), ("later", 1)):
        if os.path.exists(counter):
            os.remove(counter)
        code = ('local p = sky.aws { profile = "%s", region = "us-east-1", endpoint = "http://127.0.0.1:9/" } '
                'for _ = 1, 3 do p:_client("us-east-1") end print(p._creds.access_key_id)' % name)
        r = run(code, {}, home)
        n = len(open(counter).read().split()) if os.path.exists(counter) else 0
        check("credentials expiring within 5 minutes are read again (%s: %d reads for 3 clients)" % (name, n),
              r.returncode == 0 and n == runs and r.stdout.strip() == "AKID" + name.upper(), r.stdout + r.stderr)

    r = subprocess.run([SKYHOST, "check"], env=dict({k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                       HOME=home, AWS_PROFILE="proc", AWS_EC2_METADATA_DISABLED="true"), capture_output=True, text=True,
                       timeout=60)
    line = [l for l in r.stdout.splitlines() if l.startswith("aws ")]
    check("skyhost check names the source, not the secret", line and "credential_process of profile 'proc'" in line[0]
          and SECRET not in r.stdout and "AKIDPROCESS" not in r.stdout, r.stdout + r.stderr)


if __name__ == "__main__":
    main()
