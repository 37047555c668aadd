#!/usr/bin/python3
"""sky.gcp's instances.insert bodies against the Compute spec converted from Google's discovery
document (tests/data/gcp/compute-v1.swagger.json; every field a
property of its schema, of the right type, enums among the allowed values), the values skyhost
puts in them, and the mapping of Compute Engine errors to broker codes and scopes.
Usage: test_bodies.py SKYHOST ROOT
"""
import json
import re
import subprocess
import sys

SKYHOST, ROOT = sys.argv[1], sys.argv[2]
SPEC = json.load(open(ROOT + "/tests/data/gcp/compute-v1.swagger.json"))
SCHEMAS = SPEC["definitions"]
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok", name)
    else:
        failed += 1
        print("FAIL", name, detail)


def validate(value, schema, path, problems):
    """Problems of `value` under discovery `schema` (a $ref, object, array or scalar)."""
    if "$ref" in schema:
        return validate(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]], path, problems)
    t = schema.get("type")
    if t == "object":
        if not isinstance(value, dict):
            return problems.append("%s: expected an object" % path)
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                validate(v, props[k], path + "." + k, problems)
            elif "additionalProperties" in schema:
                validate(v, schema["additionalProperties"], path + "." + k, problems)
            else:
                problems.append("%s.%s: no such field in the schema" % (path, k))
    elif t == "array":
        if not isinstance(value, list):
            return problems.append("%s: expected an array" % path)
        for i, v in enumerate(value):
            validate(v, schema["items"], "%s[%d]" % (path, i), problems)
    elif t == "string":
        if not isinstance(value, str):
            problems.append("%s: expected a string (int64 is a string in JSON)" % path)
        elif "enum" in schema and value not in schema["enum"]:
            problems.append("%s: %r is not one of %s" % (path, value, schema["enum"]))
    elif t == "boolean" and not isinstance(value, bool):
        problems.append("%s: expected a boolean" % path)
    elif t == "integer" and not isinstance(value, int):
        problems.append("%s: expected an integer" % path)
    return problems


r = subprocess.run([SKYHOST, "tests/gcp/bodies.lua"], cwd=ROOT, capture_output=True, text=True, timeout=60)
if r.returncode != 0:
    sys.exit("bodies.lua failed:\n" + r.stdout + r.stderr)
out = json.loads(r.stdout)
insert = SPEC["paths"]["/projects/{project}/zones/{zone}/instances"]["post"]
check("instances.insert takes an Instance",
      [x["schema"]["$ref"] for x in insert["parameters"] if x["in"] == "body"] == ["#/definitions/Instance"])
for name in ("default", "private_spot"):
    problems = validate(out[name], {"$ref": "Instance"}, "Instance", [])
    check("%s body: valid under the spec's Instance schema" % name, not problems, problems)

d, p = out["default"], out["private_spot"]
check("machine type as a zonal partial URL", d["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-1g",
      d["machineType"])
check("label skyhost-pool = the pool's uid as a label value (lowercase, dashes)",
      d["labels"] == {"skyhost-pool": "pool-1-ab12cd"}, d["labels"])
check("ssh-keys metadata: USER:KEY COMMENT, the pool's key", d["metadata"]["items"] == [
    {"key": "ssh-keys", "value": "skyhost:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0 skyhost skyhost"}], d["metadata"])
check("the private pool's key is for the given user", p["metadata"]["items"][0]["value"].startswith("root:ssh-ed25519 "))
check("public IP by default: one ONE_TO_ONE_NAT access config",
      d["networkInterfaces"][0]["accessConfigs"] == [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}])
check("public_ip = false: no access config, the subnetwork given",
      "accessConfigs" not in p["networkInterfaces"][0]
      and p["networkInterfaces"][0]["subnetwork"] == "regions/us-central1/subnetworks/s1", p["networkInterfaces"])
check("boot disk deleted with the instance; size as a string",
      d["disks"][0]["autoDelete"] is True and d["disks"][0]["boot"] is True
      and d["disks"][0]["initializeParams"]["diskSizeGb"] == "100"
      and p["disks"][0]["initializeParams"]["diskSizeGb"] == "200", d["disks"])
check("GPUs: TERMINATE on host maintenance, no restart; on demand is STANDARD (not SPOT)",
      d["scheduling"] == {"onHostMaintenance": "TERMINATE", "automaticRestart": False}, d["scheduling"])
check("spot: SPOT, deleted when preempted",
      p["scheduling"]["provisioningModel"] == "SPOT" and p["scheduling"]["instanceTerminationAction"] == "DELETE",
      p["scheduling"])

n = out["long_names"]
check("long pool names: instance names of at most 63 characters, valid, the number kept",
      all(len(x) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", x) for x in n)
      and n[0].endswith("-7") and n[1].endswith("-12345"), n)

e = out["errors"]
check("ZONE_RESOURCE_POOL_EXHAUSTED → NoCapacity, zone", (e["exhausted"]["code"], e["exhausted"]["scope"]) ==
      ("NoCapacity", "zone") and not e["exhausted"]["retry"], e["exhausted"])
check("QUOTA_EXCEEDED → QuotaExceeded, region, how to raise it", (e["quota"]["code"], e["quota"]["scope"]) ==
      ("QuotaExceeded", "region") and "Quotas" in e["quota"]["message"], e["quota"])
check("HTTP quotaExceeded → QuotaExceeded", e["http_quota"]["code"] == "QuotaExceeded", e["http_quota"])
for k in ("forbidden", "unauthenticated"):
    check("%s → AuthFailed, provider, with the role and the API to enable" % k,
          (e[k]["code"], e[k]["scope"]) == ("AuthFailed", "provider") and "roles/compute.instanceAdmin.v1"
          in e[k]["message"] and "compute.googleapis.com" in e[k]["message"] and not e[k]["retry"], e[k])
check("429 rateLimitExceeded is retried", e["rate"]["retry"] is True and e["rate"]["code"] == "GcpError", e["rate"])
check("503 is retried", e["server"]["retry"] is True, e["server"])
check("bad project id refused", "project must be a project id" in out["bad_project"], out["bad_project"])
check("zone of the wrong type refused", "zone" in out["bad_zone"], out["bad_zone"])
check("bad endpoint refused", "endpoint must be an http" in out["bad_endpoint"], out["bad_endpoint"])
x = out["expiry"]
check("a running node powers itself off at lease expiry by default (a stopped VM stops billing)",
      x["default"] == {"ip": "192.0.2.7", "state": "running", "on_expiry": "sudo -n /sbin/poweroff || /sbin/poweroff"}, x)
check("on_expiry = CMD replaces it, \"\" leaves the node running",
      x["custom"]["on_expiry"] == "shutdown -h now" and x["none"]["on_expiry"] is None, x)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
