// Converts Compute Engine's discovery document (../shared/specs/gcp/) into the Swagger 2.0 spec
// Prism checks sky.gcp's requests and the fake's answers with (compute-v1.swagger.json here):
// google-discovery-to-swagger (npm, installed by .ci/install-prism), plus `consumes` (without it
// Prism answers every POST with 415), trimmed to the operations skyhost calls and the definitions
// they reach, so Prism starts fast and the committed file stays small.
//   node convert.js DISCOVERY.json OUT.json   (NODE_PATH=$SKYHOST_PRISM_DIR/node_modules)
const fs = require("fs");
const converter = require("google-discovery-to-swagger");

const [src, out] = process.argv.slice(2);
const swagger = converter.convert(JSON.parse(fs.readFileSync(src, "utf8")));
const keep = {
  "/projects/{project}/zones/{zone}/instances": ["get", "post"],
  "/projects/{project}/zones/{zone}/instances/{instance}": ["get", "delete"],
  "/projects/{project}/zones/{zone}/operations/{operation}": ["get"],
  "/projects/{project}/zones/{zone}/operations/{operation}/wait": ["post"],
};
const paths = {};
for (const [p, methods] of Object.entries(keep)) {
  if (!swagger.paths[p]) throw new Error("the discovery document has no " + p);
  paths[p] = {};
  for (const [k, v] of Object.entries(swagger.paths[p])) {
    if (methods.includes(k) || k === "parameters") paths[p][k] = v;
  }
}
swagger.paths = paths;
swagger.consumes = ["application/json"];
// Definitions reachable from the kept paths (and their shared parameters).
const used = new Set();
const walk = (v) => {
  if (Array.isArray(v)) return v.forEach(walk);
  if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string" && x.startsWith("#/definitions/")) {
        const name = x.slice("#/definitions/".length);
        if (!used.has(name)) {
          used.add(name);
          walk(swagger.definitions[name]);
        }
      } else walk(x);
    }
  }
};
walk(swagger.paths);
walk(swagger.parameters);
const defs = {};
for (const name of [...used].sort()) defs[name] = swagger.definitions[name];
swagger.definitions = defs;
fs.writeFileSync(out, JSON.stringify(swagger, null, 1) + "\n");
console.log(`${Object.keys(paths).length} paths, ${used.size} definitions -> ${out}`);
