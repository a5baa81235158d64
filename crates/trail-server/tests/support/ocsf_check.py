"""Validates OCSF records (JSON Lines on stdin) against the OCSF schema of the version
each record names in metadata.version, as packaged by the pinned `ocsf-json-schema`
(PyPI; `bash .ci/run` installs it): every class's JSON Schema, with its required
attributes, the required attributes of its objects, and no attribute the class does
not define. Prints `ok N` or one line per problem and exits 1."""

import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

schemas = {}
problems = []
count = 0
for n, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    record = json.loads(line)
    version = record.get("metadata", {}).get("version")
    if version not in schemas:
        schemas[version] = get_ocsf_schema(version)
    schema = schemas[version]
    classes = {c["uid"]: name for name, c in schema["classes"].items()}
    name = classes.get(record.get("class_uid"))
    if name is None:
        problems.append(f"line {n}: class_uid {record.get('class_uid')} is not an OCSF {version} class")
        continue
    class_schema = OcsfJsonSchemaEmbedded(schema).get_class_schema(name)
    validator = jsonschema.Draft202012Validator(class_schema)
    for e in validator.iter_errors(record):
        problems.append(f"line {n} ({name}): {'/'.join(map(str, e.absolute_path))}: {e.message}")
    count += 1
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"ok {count}")
