#!/usr/bin/env python3
"""crd_schemas.py - JSON schemas for kubeconform from CustomResourceDefinitions.

Usage: crd_schemas.py CRD_DIR OUT_DIR

Reads every CRD in CRD_DIR/**/*.yaml (unmodified upstream files) and writes each
served version's spec.versions[].schema.openAPIV3Schema converted the
openapi2jsonschema way:
  - x-kubernetes-int-or-string (or format int-or-string) -> anyOf integer/string
  - nullable: true -> the type also admits null
  - strict variant: additionalProperties false on every object that lists
    properties, unless it sets x-kubernetes-preserve-unknown-fields or has its
    own additionalProperties
Layout, for kubeconform's
`-schema-location 'OUT_DIR/standalone{{ .StrictSuffix }}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'`:
  OUT_DIR/standalone/<group>/<kind>_<version>.json
  OUT_DIR/standalone-strict/<group>/<kind>_<version>.json
Called by scripts/tools.sh (ensure crd-schemas).
"""
import copy
import json
import os
import sys

import yaml


def convert(node, strict):
    if isinstance(node, list):
        return [convert(v, strict) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: convert(v, strict) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string") or out.get("format") == "int-or-string":
        out.pop("type", None)
        if out.get("format") == "int-or-string":
            out.pop("format")
        # kubeconform decodes YAML numbers as numbers; a string stays a string
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        elif isinstance(t, list) and "null" not in t:
            out["type"] = t + ["null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    if (strict and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    crd_dir, out_dir = sys.argv[1:]
    files = []
    for root, _, names in os.walk(crd_dir):
        files += [os.path.join(root, n) for n in names if n.endswith((".yaml", ".yml"))]
    written = 0
    for path in sorted(files):
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            group, kind = spec["group"], spec["names"]["kind"]
            for ver in spec.get("versions", []):
                schema = ((ver.get("schema") or {}).get("openAPIV3Schema"))
                if schema is None:
                    continue
                for sub, strict in (("standalone", False), ("standalone-strict", True)):
                    d = os.path.join(out_dir, sub, group)
                    os.makedirs(d, exist_ok=True)
                    out = convert(copy.deepcopy(schema), strict)
                    out["$schema"] = "http://json-schema.org/draft-07/schema#"
                    fn = os.path.join(d, f"{kind.lower()}_{ver['name']}.json")
                    with open(fn, "w") as f:
                        json.dump(out, f, indent=1, sort_keys=True)
                written += 1
                print(f"crd_schemas.py: {group}/{kind} {ver['name']} ({os.path.basename(path)})",
                      file=sys.stderr)
    if not written:
        raise SystemExit(f"crd_schemas.py: no CRD schema found under {crd_dir}")


if __name__ == "__main__":
    main()
