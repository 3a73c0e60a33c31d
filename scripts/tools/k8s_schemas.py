#!/usr/bin/env python3
"""k8s_schemas.py - standalone Kubernetes JSON schemas for kubeconform.

Usage: k8s_schemas.py KUBERNETES_VALIDATE_PKG_DIR MINOR OUT_DIR   (MINOR like 1.33)

PyPI kubernetes-validate ships, per Kubernetes version, one JSON schema per type
whose $refs point into a shared `/api/_definitions.json`, which kubeconform
cannot follow. For every top-level kind (a schema carrying
x-kubernetes-group-version-kind) this writes a standalone file: the kind's
schema with the transitive closure of the definitions it uses copied under its
own `$defs` and every $ref rewritten to `#/$defs/NAME` (recursive types such as
JSONSchemaProps stay finite). Layout, for kubeconform's
`-schema-location OUT_DIR/standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json`:
  OUT_DIR/standalone/<kind>-<group>-<version>.json          (extra fields allowed)
  OUT_DIR/standalone-strict/<kind>-<group>-<version>.json   (additionalProperties false)
Called by scripts/tools.sh (ensure k8s-schemas).
"""
import json
import os
import re
import sys

REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def ref_key(ref, where):
    for p in REF_PREFIXES:
        if ref.startswith(p):
            return ref[len(p):]
    raise SystemExit(f"k8s_schemas.py: unexpected $ref {ref!r} in {where}")


def refs_in(node, out):
    if isinstance(node, dict):
        r = node.get("$ref")
        if isinstance(r, str):
            out.add(r)
        for v in node.values():
            refs_in(v, out)
    elif isinstance(node, list):
        for v in node:
            refs_in(v, out)


def rewrite(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = "#/$defs/" + ref_key(v, "a schema")
            else:
                out[k] = rewrite(v)
        return out
    if isinstance(node, list):
        return [rewrite(v) for v in node]
    return node


def convert(src_dir, dst_dir):
    with open(os.path.join(src_dir, "_definitions.json")) as f:
        defs = json.load(f)["$defs"]
    os.makedirs(dst_dir, exist_ok=True)
    count = 0
    for name in sorted(os.listdir(src_dir)):
        if not name.endswith(".json") or name.startswith("_") or name == "all.json":
            continue
        with open(os.path.join(src_dir, name)) as f:
            schema = json.load(f)
        if "x-kubernetes-group-version-kind" not in schema:
            continue  # a sub-type: kubeconform only looks up top-level kinds
        closure, todo = {}, set()
        refs_in(schema, todo)
        while todo:
            r = todo.pop()
            key = ref_key(r, name)
            if key in closure:
                continue
            if key not in defs:
                raise SystemExit(f"k8s_schemas.py: {name}: no definition {key}")
            closure[key] = defs[key]
            refs_in(defs[key], todo)
        out = rewrite(schema)
        if closure:
            out["$defs"] = {k: rewrite(closure[k]) for k in sorted(closure)}
        with open(os.path.join(dst_dir, name), "w") as f:
            json.dump(out, f, separators=(",", ":"), sort_keys=True)
        count += 1
    return count


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    pkg, minor, out = sys.argv[1:]
    if not re.fullmatch(r"\d+\.\d+", minor):
        raise SystemExit(f"k8s_schemas.py: MINOR must look like 1.33, got {minor!r}")
    base = os.path.join(pkg, "kubernetes-json-schema")
    cands = sorted(d for d in os.listdir(base) if re.fullmatch(rf"v{re.escape(minor)}\.\d+-local", d))
    if not cands:
        raise SystemExit(f"k8s_schemas.py: no Kubernetes {minor} schemas in {base}")
    ver = cands[-1]
    for suffix, sub in (("", "standalone"), ("-strict", "standalone-strict")):
        n = convert(os.path.join(base, ver + suffix), os.path.join(out, sub))
        print(f"k8s_schemas.py: {ver}{suffix}: {n} kinds -> {os.path.join(out, sub)}", file=sys.stderr)
    with open(os.path.join(out, "VERSION"), "w") as f:
        f.write(ver.replace("-local", "") + "\n")


if __name__ == "__main__":
    main()
