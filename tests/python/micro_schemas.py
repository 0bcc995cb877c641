"""Validates Services API responses against the official JSON schemas.

Usage: micro_schemas.py SCHEMA_DIR RESPONSE.json...

Each response is validated against the schema its `type` names
(`io.nats.micro.v1.ping_response` -> SCHEMA_DIR/ping_response.json), with
formats checked (`started` must be an RFC 3339 date-time). Prints one line per
response; exits 1 when any is invalid.
"""

import json
import sys
from pathlib import Path

import jsonschema

PREFIX = "io.nats.micro.v1."


def main() -> int:
    schema_dir = Path(sys.argv[1])
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    # Without its optional dependency, date-time would pass unchecked.
    if "date-time" not in checker.checkers:
        print("jsonschema cannot check date-time: install rfc3339-validator")
        return 2
    failed = False
    for file in sys.argv[2:]:
        response = json.loads(Path(file).read_text())
        kind = response.get("type", "")
        if not kind.startswith(PREFIX):
            print(f"{file}: unknown type {kind!r}")
            failed = True
            continue
        schema = json.loads((schema_dir / f"{kind[len(PREFIX):]}.json").read_text())
        validator = jsonschema.Draft7Validator(schema, format_checker=checker)
        errors = sorted(validator.iter_errors(response), key=lambda e: list(e.path))
        for error in errors:
            path = "/".join(str(p) for p in error.path)
            print(f"{file}: invalid at /{path}: {error.message}")
        if errors:
            failed = True
        else:
            print(f"{file}: valid {kind}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
