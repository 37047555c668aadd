"""The three cloud APIs of the fake: RunPod REST v1, Lambda Cloud v1, DigitalOcean v2, each a
route table over one shared store of instances and SSH keys (store.py). Answers follow the
official specs in tests/data/cloud-specs/ (Prism, in front, rejects any that does not).

Each route is (method, regex on the path) -> function(store, match, body, query) -> (status, doc).
"""
import copy
import json
import os
import re
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPECS = os.path.join(HERE, "..", "..", "data", "cloud-specs")


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --- RunPod -------------------------------------------------------------------------------------

RUNPOD_STATUS = {"booting": "RUNNING", "running": "RUNNING", "deleting": "EXITED"}
NO_CAPACITY_RUNPOD = ("There are no longer any instances available with the requested specifications. "
                      "Please refresh and try again.")


def _pod(inst):
    running = inst["state"] == "running"
    return {"id": inst["id"], "name": inst["name"], "desiredStatus": RUNPOD_STATUS[inst["state"]],
            "imageName": inst["extra"]["imageName"], "image": inst["extra"]["imageName"],
            "env": inst["extra"]["env"], "ports": inst["extra"]["ports"],
            "publicIp": inst["ip"] if running else None, "portMappings": {"22": 22} if running else None,
            "gpuCount": inst["extra"]["gpuCount"], "costPerHr": 2.5, "interruptible": inst["extra"]["interruptible"]}


def runpod_create(store, m, body, q):
    if not store.capacity["runpod"]:
        return 400, {"error": NO_CAPACITY_RUNPOD, "status": 400}
    key = (body.get("env") or {}).get("PUBLIC_KEY")
    if not key or "22/tcp" not in (body.get("ports") or []):
        return 400, {"error": "an SSH pod needs env PUBLIC_KEY and ports 22/tcp", "status": 400}
    inst = store.create("runpod", body.get("name") or "pod", key, {
        "imageName": body.get("imageName", ""), "env": body.get("env", {}), "ports": body.get("ports", []),
        "gpuCount": body.get("gpuCount", 1), "interruptible": bool(body.get("interruptible"))})
    return 201, _pod(inst)


def runpod_get(store, m, body, q):
    inst = store.get("runpod", m.group(1))
    return (200, _pod(inst)) if inst else (404, None)


def runpod_list(store, m, body, q):
    return 200, [_pod(i) for i in store.list("runpod")]


def runpod_delete(store, m, body, q):
    # The spec allows 204, 400 and 401 only: deleting a pod that is already gone answers 204, as
    # an idempotent delete (a retried DELETE after a lost answer got a 404 the spec rejects).
    store.delete("runpod", m.group(1))
    return 204, None


# --- Lambda -------------------------------------------------------------------------------------

LAMBDA_STATUS = {"booting": "booting", "running": "active", "deleting": "terminating"}


def _lambda_inst(inst):
    return {"id": inst["id"], "name": inst["name"], "ip": inst["ip"] if inst["state"] == "running" else None,
            "status": LAMBDA_STATUS[inst["state"]], "ssh_key_names": [inst["extra"]["key_name"]],
            "file_system_names": []}


def _lambda_error(code, message, suggestion=None):
    return {"error": {"code": code, "message": message, "suggestion": suggestion}}


def lambda_add_key(store, m, body, q):
    if not body.get("public_key"):
        return 400, _lambda_error("global/invalid-parameters", "this fake needs public_key")
    k = store.add_key("lambda", body["name"], body["public_key"])
    return 200, {"data": {"id": k["id"], "name": k["name"], "public_key": k["public_key"]}}


def lambda_list_keys(store, m, body, q):
    return 200, {"data": [{"id": k["id"], "name": k["name"], "public_key": k["public_key"]}
                          for k in store.list_keys("lambda")]}


def lambda_delete_key(store, m, body, q):
    if store.delete_key("lambda", m.group(1)):
        return 200, {}
    return 400, _lambda_error("global/object-does-not-exist", "no such key")


def lambda_launch(store, m, body, q):
    if not store.capacity["lambda"]:
        return 400, _lambda_error("instance-operations/launch/insufficient-capacity",
                                  "Not enough capacity to fulfill launch request.",
                                  "Choose an instance type with more availability, or try again later.")
    key = store.key_by_name("lambda", body["ssh_key_names"][0])
    if not key:
        return 400, _lambda_error("global/invalid-parameters", "unknown SSH key %s" % body["ssh_key_names"][0])
    ids = [store.create("lambda", body.get("name") or "instance", key["public_key"],
                        {"key_name": key["name"]})["id"] for _ in range(body.get("quantity", 1))]
    return 200, {"data": {"instance_ids": ids}}


def lambda_get(store, m, body, q):
    inst = store.get("lambda", m.group(1))
    if not inst:
        return 404, _lambda_error("global/object-does-not-exist", "Specified instance does not exist.")
    return 200, {"data": _lambda_inst(inst)}


def lambda_list(store, m, body, q):
    return 200, {"data": [_lambda_inst(i) for i in store.list("lambda")]}


LAMBDA_TYPES = {"gpu_1x_h100_pcie": (249, "H100 (80 GB PCIe)", 26, 225), "gpu_1x_h100_sxm5": (329, "H100 (80 GB SXM5)", 26, 225),
                "gpu_1x_a10": (75, "A10 (24 GB PCIe)", 30, 200)}


def lambda_types(store, m, body, q):
    data = {}
    for name, (cents, gpu, vcpus, mem) in LAMBDA_TYPES.items():
        data[name] = {"instance_type": {"name": name, "description": "1x " + gpu, "gpu_description": gpu,
                                        "price_cents_per_hour": cents,
                                        "specs": {"vcpus": vcpus, "memory_gib": mem, "storage_gib": 512, "gpus": 1}},
                      "regions_with_capacity_available": [{"name": "us-east-1", "description": "Virginia, USA"}]}
    return 200, {"data": data}


def lambda_terminate(store, m, body, q):
    done = []
    for iid in body["instance_ids"]:
        inst = store.get("lambda", iid)
        if inst and store.delete("lambda", iid):
            done.append(_lambda_inst(store.get("lambda", iid) or inst))
    return 200, {"data": {"terminated_instances": done}}


# --- DigitalOcean -------------------------------------------------------------------------------

_DO_EXAMPLE = None


def _droplet_example():
    global _DO_EXAMPLE
    if _DO_EXAMPLE is None:
        with open(os.path.join(SPECS, "digitalocean.json")) as f:
            _DO_EXAMPLE = json.load(f)["components"]["examples"]["droplet_single"]["value"]["droplet"]
    return copy.deepcopy(_DO_EXAMPLE)


DO_STATUS = {"booting": "new", "running": "active", "deleting": "off"}


def _droplet(inst):
    d = _droplet_example()
    x = inst["extra"]
    d.update(id=int(inst["id"]), name=inst["name"], status=DO_STATUS[inst["state"]], tags=x["tags"],
             created_at=_iso(inst["created"]), size_slug=x["size"])
    d["size"]["slug"] = x["size"]
    d["region"]["slug"] = x["region"]
    v4 = [{"ip_address": inst["ip"], "netmask": "255.255.0.0", "gateway": "10.211.0.1", "type": "public"}]
    d["networks"] = {"v4": v4 if inst["state"] == "running" else [], "v6": []}
    return d


def _do_error(status, ident, message):
    return status, {"id": ident, "message": message, "request_id": "fake-%d" % int(time.time() * 1000)}


def do_add_key(store, m, body, q):
    k = store.add_key("digitalocean", body["name"], body["public_key"], numeric=True)
    return 201, {"ssh_key": {"id": int(k["id"]), "name": k["name"], "public_key": k["public_key"],
                             "fingerprint": "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"}}


def do_list_keys(store, m, body, q):
    keys = [{"id": int(k["id"]), "name": k["name"], "public_key": k["public_key"],
             "fingerprint": "3b:16:bf:e4:8b:00:8b:b8:59:8c:a9:d3:f0:19:45:fa"} for k in store.list_keys("digitalocean")]
    return 200, {"ssh_keys": keys, "links": {}, "meta": {"total": len(keys)}}


def do_delete_key(store, m, body, q):
    if store.delete_key("digitalocean", m.group(1)):
        return 204, None
    return _do_error(404, "not_found", "The resource you were accessing could not be found.")


def do_create(store, m, body, q):
    if not store.capacity["digitalocean"]:
        return _do_error(422, "unprocessable_entity", "Size is not available in this region.")
    keys = [store.get_key("digitalocean", str(k)) for k in body.get("ssh_keys", [])]
    if not keys or None in keys:
        return _do_error(422, "unprocessable_entity", "this fake needs ssh_keys of the account")
    names = body.get("names") or [body.get("name")]
    made = [store.create("digitalocean", n, keys[0]["public_key"], {"tags": body.get("tags", []), "size": body["size"],
                                                                    "region": body["region"]}, numeric=True)
            for n in names]
    links = {"actions": [{"id": 1000 + int(i["id"]), "rel": "create", "href": "https://api.digitalocean.com/v2/actions/1"}
                         for i in made]}
    if "names" in body:
        return 202, {"droplets": [_droplet(i) for i in made], "links": links}
    return 202, {"droplet": _droplet(made[0]), "links": links}


def do_get(store, m, body, q):
    inst = store.get("digitalocean", m.group(1))
    if not inst:
        return _do_error(404, "not_found", "The resource you were accessing could not be found.")
    return 200, {"droplet": _droplet(inst)}


def _tagged(store, q):
    tag = q.get("tag_name", [None])[0]
    return [i for i in store.list("digitalocean") if tag is None or tag in i["extra"]["tags"]]


def do_list(store, m, body, q):
    ds = [_droplet(i) for i in _tagged(store, q)]
    return 200, {"droplets": ds, "links": {}, "meta": {"total": len(ds)}}


def do_delete(store, m, body, q):
    if store.delete("digitalocean", m.group(1)):
        return 204, None
    return _do_error(404, "not_found", "The resource you were accessing could not be found.")


def do_sizes(store, m, body, q):
    sizes = [{"slug": slug, "memory": mem, "vcpus": vcpus, "disk": 720, "transfer": 15, "price_monthly": round(hourly * 672, 2),
              "price_hourly": hourly, "regions": ["tor1", "nyc2"], "available": True, "description": "GPU"}
             for slug, hourly, mem, vcpus in (("gpu-h100x1-80gb", 5.99, 245760, 20), ("gpu-h100x8-640gb", 47.6, 1966080, 160))]
    return 200, {"sizes": sizes, "links": {}, "meta": {"total": len(sizes)}}


def do_delete_tagged(store, m, body, q):
    if "tag_name" not in q:
        return _do_error(422, "unprocessable_entity", "tag_name is required")
    for i in _tagged(store, q):
        store.delete("digitalocean", i["id"])
    return 204, None


# --- Vast.ai ------------------------------------------------------------------------------------

VAST_STATUS = {"booting": "loading", "running": "running", "deleting": "exited"}
VAST_PLACES = ["Texas, US", "Oregon, US", "Bavaria, DE", "Quebec, CA"]


def vast_search(store, m, body, q):
    """Two rentable asks per place for every GPU and count searched; n GPUs cost n times one, so a
    live price is (0.5 + 0.1 i) * n: 1x H100 in the US is 0.50 (the catalog's 1.87)."""
    asks = []
    for gpu in body["gpu_name"]["in"]:
        for n in body["num_gpus"]["in"]:
            for i, geo in enumerate(VAST_PLACES * 2):
                ask = next(store.ids)
                asks.append({"id": ask, "ask_contract_id": ask, "gpu_name": gpu.replace("_", " "), "num_gpus": n,
                             "geolocation": geo, "dph_total": round((0.5 + 0.1 * i) * n, 3), "rentable": True,
                             "verification": "verified"})
    return 200, {"offers": asks[:int(body.get("limit", 64))]}


def _vast_inst(inst):
    running = inst["state"] == "running"
    return {"id": int(inst["id"]), "actual_status": VAST_STATUS[inst["state"]], "intended_status": "running",
            "label": inst["name"], "ssh_host": inst["ip"], "ssh_port": 22, "public_ipaddr": inst["ip"] if running else "",
            "num_gpus": 1, "onstart": inst["extra"]["onstart"]}


def vast_create(store, m, body, q):
    ask = int(m.group(1))
    if not store.capacity["vast"]:
        return 410, {"success": False, "error": "no_such_ask", "ask_id": ask,
                     "msg": "error 410/3907: no_such_ask Instance type %d is no longer available." % ask}
    key = re.search(r"echo '([^']+)' >>", body.get("onstart") or "")
    if not key:
        return 400, {"success": False, "error": "invalid_args", "ask_id": ask, "msg": "this fake needs the key in onstart"}
    inst = store.create("vast", body.get("label") or "instance", key.group(1), {"onstart": body["onstart"]}, numeric=True)
    return 200, {"success": True, "new_contract": int(inst["id"])}


def vast_get(store, m, body, q):
    inst = store.get("vast", m.group(1))
    return 200, {"instances": _vast_inst(inst) if inst else {}}


def vast_delete(store, m, body, q):
    if store.delete("vast", m.group(1)):
        return 200, {"success": True, "msg": "Instance destroyed successfully"}
    return 404, {"success": False, "error": "not_found", "msg": "Instance not found"}


def vast_list(store, m, body, q):
    insts = [_vast_inst(i) for i in store.list("vast")]
    return 200, {"success": True, "instances_found": len(insts), "total_instances": len(insts), "instances": insts,
                 "next_token": None}


# --- RunPod API v2 price list ---------------------------------------------------------------------

# id: (name, memory GB, secure price, community price, max GPUs secure, community); a price of 0 and
# max 0 where that cloud does not sell it. H100 PCIe is 2.79 (the catalog's 4.49: still dearer than
# Lambda's fake 2.49, so test_clouds.py's failover order stays); the H100 SXM is secure only, at most
# 2 per pod.
RUNPOD_GPUS = {"NVIDIA H100 PCIe": ("H100 PCIe", 80, 2.79, 1.99, 8, 2),
               "NVIDIA H100 80GB HBM3": ("H100 SXM", 80, 2.99, 0, 2, 0),
               "NVIDIA GeForce RTX 4090": ("RTX 4090", 24, 0.59, 0.34, 8, 4)}


def runpod_v2_gpus(store, m, body, q):
    gpus = []
    for gid, (name, mem, secure, community, max_secure, max_community) in RUNPOD_GPUS.items():
        gpus.append({"id": gid, "name": name, "pool": None, "manufacturer": "NVIDIA", "memory": mem,
                     "secure": max_secure > 0, "community": max_community > 0,
                     "price": {"secure": secure, "community": community},
                     "maxCount": {"secure": max_secure, "community": max_community}})
    return 200, {"gpus": gpus}


ROUTES = {
    "runpod_v2": [("GET", r"/v2/catalog/gpus", runpod_v2_gpus)],
    "runpod": [("POST", r"/pods", runpod_create), ("GET", r"/pods", runpod_list),
               ("GET", r"/pods/([^/]+)", runpod_get), ("DELETE", r"/pods/([^/]+)", runpod_delete)],
    "lambda": [("POST", r"/ssh-keys", lambda_add_key), ("GET", r"/ssh-keys", lambda_list_keys), ("DELETE", r"/ssh-keys/([^/]+)", lambda_delete_key),
               ("POST", r"/instance-operations/launch", lambda_launch), ("GET", r"/instances", lambda_list),
               ("GET", r"/instances/([^/]+)", lambda_get),
               ("POST", r"/instance-operations/terminate", lambda_terminate), ("GET", r"/instance-types", lambda_types)],
    "digitalocean": [("POST", r"/v2/account/keys", do_add_key), ("GET", r"/v2/account/keys", do_list_keys),
                     ("DELETE", r"/v2/account/keys/([^/]+)", do_delete_key),
                     ("POST", r"/v2/droplets", do_create), ("GET", r"/v2/droplets", do_list),
                     ("GET", r"/v2/sizes", do_sizes),
                     ("DELETE", r"/v2/droplets", do_delete_tagged),
                     ("GET", r"/v2/droplets/([^/]+)", do_get), ("DELETE", r"/v2/droplets/([^/]+)", do_delete)],
    "vast": [("POST", r"/api/v0/bundles", vast_search), ("PUT", r"/api/v0/asks/(\d+)", vast_create),
             ("GET", r"/api/v0/instances/(\d+)", vast_get), ("DELETE", r"/api/v0/instances/(\d+)", vast_delete),
             ("GET", r"/api/v1/instances", vast_list)],
}


def fault(cloud, status):
    """The answer of an injected `status` (429 or 5xx) in the cloud's own error format: (doc, headers)."""
    headers = [("Retry-After", "1")] if status == 429 else []
    msg = "API Rate limit exceeded." if status == 429 else "Unexpected server-side error"
    if cloud == "digitalocean":
        return {"id": "too_many_requests" if status == 429 else "server_error", "message": msg,
                "request_id": "fake-fault"}, headers
    if cloud == "lambda":
        return _lambda_error("global/unknown", msg), headers
    if cloud == "vast":
        return {"success": False, "error": "rate_limit_exceeded" if status == 429 else "server_error", "msg": msg}, headers
    return {"error": msg, "status": status}, headers


def route(cloud, method, path):
    for meth, pattern, fn in ROUTES[cloud]:
        m = re.fullmatch(pattern, path)
        if m and meth == method:
            return fn, m
    return None, None
