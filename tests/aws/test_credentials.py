#!/usr/bin/env python3
"""sky.aws credentials as the AWS tools find them, and sky.aws option checking.

Runs `skyhost -e` in controlled environments (a temporary HOME, AWS_* variables set or not) and
checks which source was used, that secrets never appear in what is printed, and the messages for
bad options and missing credentials. Usage: test_credentials.py SKYHOST
"""
import os
import subprocess
import sys
import tempfile

SKYHOST = sys.argv[1]
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
RESOLVE = ('local c = require("providers.aws.credentials").resolve(%s) '
           'print(c.source, c.access_key_id, c.session_token or "-", c.region or "-")')
passed = failed = 0


def run(code, env_extra, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", **env_extra)  # never 169.254.169.254
    return subprocess.run([SKYHOST, "-e", code], env=env, capture_output=True, text=True, timeout=30)


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL", name, detail)


with tempfile.TemporaryDirectory() as home:
    os.makedirs(home + "/.aws")
    r = run(RESOLVE % "nil", {}, home)
    check("no credentials: error says where it looked and how to fix", r.returncode != 0
          and "no AWS credentials" in r.stderr and "aws configure" in r.stderr
          and home + "/.aws/credentials" in r.stderr, r.stderr)

    r = run(RESOLVE % "nil", dict(AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY=SECRET,
                                  AWS_SESSION_TOKEN="tok", AWS_DEFAULT_REGION="eu-west-1"), home)
    check("environment", r.stdout.split() == ["environment", "(AWS_ACCESS_KEY_ID)", "AKIDENV", "tok", "eu-west-1"],
          r.stdout + r.stderr)
    r = run(RESOLVE % "nil", dict(AWS_ACCESS_KEY_ID="AKIDENV"), home)
    check("half of the environment pair", r.returncode != 0 and "AWS_SECRET_ACCESS_KEY is not" in r.stderr, r.stderr)

    with open(home + "/.aws/credentials", "w") as f:
        f.write("[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = %s\n\n"
                "# a comment\n[work]\naws_access_key_id=AKIDWORK\naws_secret_access_key=%s\n"
                "aws_session_token = worktoken\n" % (SECRET, SECRET))
    with open(home + "/.aws/config", "w") as f:
        f.write("[default]\nregion = us-west-2\n[profile work]\nregion = ap-south-1\n"
                "[profile cfgonly]\naws_access_key_id = AKIDCFG\naws_secret_access_key = %s\n"
                "[profile nokey]\nregion = us-east-1\n" % SECRET)
    r = run(RESOLVE % "nil", {}, home)
    check("default profile, region from config", r.stdout.split()[:2] == ["profile", "'default'"]
          and r.stdout.split()[-3:] == ["AKIDDEF", "-", "us-west-2"], r.stdout + r.stderr)
    r = run(RESOLVE % "nil", dict(AWS_PROFILE="work"), home)
    check("AWS_PROFILE with a session token", r.stdout.split()[-3:] == ["AKIDWORK", "worktoken", "ap-south-1"],
          r.stdout + r.stderr)
    r = run(RESOLVE % '"cfgonly"', dict(AWS_ACCESS_KEY_ID="AKIDENV", AWS_SECRET_ACCESS_KEY=SECRET), home)
    check("a named profile wins over the environment; keys in the config file",
          "AKIDCFG" in r.stdout and home + "/.aws/config" in r.stdout, r.stdout + r.stderr)
    r = run(RESOLVE % '"nokey"', {}, home)
    check("a profile without keys", r.returncode != 0 and "has no aws_access_key_id" in r.stderr, r.stderr)
    r = run(RESOLVE % '"nosuch"', {}, home)
    check("an unknown profile", r.returncode != 0 and "profile 'nosuch' is in neither" in r.stderr, r.stderr)
    r = run('local ok, d = require("providers.aws.credentials").describe() print(ok, d)', {}, home)
    check("describe never shows the secret", SECRET not in r.stdout + r.stderr and "true" in r.stdout, r.stdout)

    bad = [
        ("sky.aws{regoin = 'x'}", "unknown option 'regoin'"),
        ("sky.aws{disk_gb = '10'}", "disk_gb"),
        ("sky.aws{image = 'ubuntu'}", "AMI id"),
        ("sky.aws{endpoint = 'localhost:4566'}", "http:// or https://"),
        ("sky.aws{public_ip = false}", "needs subnet"),
        ("sky.aws{ssh_cidr = '10.0.0.1'}", "IPv4 CIDR"),
        ("sky.aws{host_keys = 'yes'}", "host_keys must be 'console'"),
        ("sky.aws{live_prices = 1}", "live_prices"),
        ("sky.aws{region = {'us-east-1', 3}}", "item 2"),
    ]
    for code, want in bad:
        r = run(code, {}, home)
        check("bad option: " + code, r.returncode != 0 and want in r.stderr and "sky.aws" in r.stderr
              and "(command line):1" in r.stderr, r.stderr)
    r = run("local p = sky.aws{region = 'us-east-1'} print(p.name)", {}, home)
    check("sky.aws{} needs no credentials until used", r.stdout.strip() == "aws", r.stdout + r.stderr)

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
