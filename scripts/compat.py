#!/usr/bin/env python3
"""The helpers of scripts/compat.sh (Python's standard library, and jsoncompat for `events`).

  compat.py mark-reviewed SERVICE EXCEPTIONS BASE.json HEAD.json
      Marks the operations compat/openapi-exceptions.json lists for SERVICE with
      "x-breaking-change-reviewed": true in both documents (in place), so that Optic leaves
      out those operations and only those; prints how many it marked. An entry that names
      no operation on either side is an error: an exception outlives the change it was
      written for only by mistake.

  compat.py events BASE_DIR HEAD_DIR EXCEPTIONS
      Every event schema under BASE_DIR (<service>/events/<type>.schema.json, the
      baseline's) against the same file under HEAD_DIR, both ways (jsoncompat,
      deserializer role): every event the baseline's producer sends must be valid under
      HEAD's schema, and every event HEAD's producer sends valid under the baseline's. The
      schemas leave objects open (a consumer ignores fields it does not know), but a
      producer sends only the fields its schema lists: that side is checked closed. So a
      field may be added (of any type) once the baseline's schema is open, and no field may
      be removed, retyped or narrowed. A schema HEAD no longer has fails. Prints one line per schema, "event<TAB>TYPE<TAB>RESULT",
      and exits 1 when any fails. compat/event-exceptions.json lists reviewed ones:
      [{"event": TYPE, "reason": ...}].
"""

import json
import sys
from pathlib import Path

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_list(path):
    entries = json.loads(Path(path).read_text())
    if not isinstance(entries, list):
        sys.exit(f"{path}: a JSON list of exceptions expected")
    for entry in entries:
        if not isinstance(entry, dict) or not str(entry.get("reason", "")).strip():
            sys.exit(f"{path}: every exception needs a reason: {entry!r}")
    return entries


def mark_reviewed(service, exceptions, *docs):
    loaded = [json.loads(Path(doc).read_text()) for doc in docs]
    marked = 0
    for entry in load_list(exceptions):
        if entry.get("service") != service:
            continue
        method, path = str(entry.get("method", "")).lower(), entry.get("path")
        found = False
        for document in loaded:
            operation = document.get("paths", {}).get(path, {}).get(method)
            if isinstance(operation, dict):
                operation["x-breaking-change-reviewed"] = True
                found = True
        if not found:
            sys.exit(f"{exceptions}: {service} has no {method.upper()} {path} at the baseline or HEAD")
        marked += 1
    for doc, document in zip(docs, loaded):
        Path(doc).write_text(json.dumps(document, indent=1))
    print(marked)


# Keywords whose subschema applies, unconditionally, to one fixed place of the instance
# (a named property, every array item): a constraint found under a chain of these holds
# wherever it applies in every instance the schema accepts.
FIXED_PLACE = {"properties": True, "items": False, "prefixItems": True}


# Keywords jsoncompat 0.3.1 cannot decide, or decides wrongly: a non-integral multipleOf
# (money: 0.01) is "undecided"; dependentRequired on an object open to other properties
# makes it answer "incompatible" even between two identical schemas.
SHARED_DROPPED = ("multipleOf", "dependentRequired")


def drop_shared(old, new, where=""):
    """Where one of SHARED_DROPPED sits, the same, at the same place of both schemas,
    reached from the root through properties/items only (never anyOf, not, if or a $ref),
    it is removed from both. That is sound: an instance the old schema accepts meets it
    there, and the new schema asks it of the same place, so the rest of the two schemas
    decides. Elsewhere, or where it differs, the tool's answer stands ("undecided" or
    "incompatible"), which fails."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    for keyword in SHARED_DROPPED:
        if keyword in old and old.get(keyword) == new.get(keyword):
            del old[keyword], new[keyword]
    for keyword, named in FIXED_PLACE.items():
        old_sub, new_sub = old.get(keyword), new.get(keyword)
        if named and isinstance(old_sub, dict) and isinstance(new_sub, dict):
            for name in old_sub.keys() & new_sub.keys():
                drop_shared(old_sub[name], new_sub[name], f"{where}/{keyword}/{name}")
        elif named and isinstance(old_sub, list) and isinstance(new_sub, list):
            for i, (o, n) in enumerate(zip(old_sub, new_sub)):
                drop_shared(o, n, f"{where}/{keyword}/{i}")
        elif not named:
            drop_shared(old_sub, new_sub, f"{where}/{keyword}")


def changed_patterns(old, new, where=""):
    """Where a `pattern` differs between the two schemas at the same place: jsoncompat
    0.3.1 does not compare regular expressions (a narrowed pattern passes), so a changed
    one is for a reviewer."""
    if isinstance(old, dict) and isinstance(new, dict):
        if "pattern" in old and "pattern" in new and old["pattern"] != new["pattern"]:
            yield f"{where}/pattern"
        for key in old.keys() & new.keys():
            yield from changed_patterns(old[key], new[key], f"{where}/{key}")
    elif isinstance(old, list) and isinstance(new, list):
        for i, (o, n) in enumerate(zip(old, new)):
            yield from changed_patterns(o, n, f"{where}/{i}")


def closed(schema):
    """`schema` as its producer uses it: every object that lists its properties and says
    nothing of others (reached through properties/items) gets `additionalProperties:
    false`, since a producer sends only the fields it knows. An object that types its
    other properties (the envelope's extension attributes) stays as it is."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if "properties" in schema and not {"additionalProperties", "unevaluatedProperties",
                                       "patternProperties"} & schema.keys():
        schema["additionalProperties"] = False
    for keyword, named in FIXED_PLACE.items():
        sub = schema.get(keyword)
        if named and isinstance(sub, dict):
            schema[keyword] = {name: closed(s) for name, s in sub.items()}
        elif named and isinstance(sub, list):
            schema[keyword] = [closed(s) for s in sub]
        elif not named and sub is not None:
            schema[keyword] = closed(sub)
    return schema


def accepts(sent, reader):
    """Whether `reader` accepts every event its producer `sent` (a closed schema) may
    send: True, False, or an "undecided" message."""
    import jsoncompat

    sent, reader = json.loads(json.dumps(sent)), json.loads(json.dumps(reader))
    drop_shared(sent, reader)
    try:
        return jsoncompat.check_compat(json.dumps(sent), json.dumps(reader), jsoncompat.Role.DESERIALIZER)
    except ValueError as error:
        return f"undecided ({error})"


def event_verdict(old_path, new_path):
    if not new_path.exists():
        return "FAILED: no schema at HEAD (the baseline sends this event)"
    old, new = json.loads(old_path.read_text()), json.loads(new_path.read_text())
    # jsoncompat reads an absolute $id as a remote reference it does not follow; the
    # schemas have no $ref, so the id is only a name.
    old.pop("$id", None)
    new.pop("$id", None)
    patterns = list(changed_patterns(old, new))
    if patterns:
        return f"FAILED: pattern changed at {', '.join(patterns)} (not compared by the tool: review it)"
    for sent, reader, fault in (
        (closed(old), new, "HEAD's schema refuses events the baseline sends"),
        (closed(new), old, "the baseline's schema refuses events HEAD sends (a field removed "
                           "or added while the baseline's schema is closed?)"),
    ):
        verdict = accepts(sent, reader)
        if verdict is not True:
            return f"FAILED: {verdict}" if isinstance(verdict, str) else f"FAILED: {fault}"
    return "ok"


def events(base_dir, head_dir, exceptions):
    reviewed = {entry.get("event") for entry in load_list(exceptions)}
    failed = False
    base_dir, head_dir = Path(base_dir), Path(head_dir)
    schemas = sorted(base_dir.glob("*/events/*.schema.json"))
    if not schemas:
        sys.exit(f"no event schemas under {base_dir}")
    for old_path in schemas:
        event = old_path.name.removesuffix(".schema.json")
        verdict = event_verdict(old_path, head_dir / old_path.relative_to(base_dir))
        if verdict != "ok" and event in reviewed:
            verdict = f"ok (reviewed exception; {verdict})"
        failed |= verdict.startswith("FAILED")
        print(f"event\t{event}\t{verdict}")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 6 and argv[1] == "mark-reviewed":
        mark_reviewed(argv[2], argv[3], argv[4], argv[5])
        return 0
    if len(argv) == 5 and argv[1] == "events":
        return events(argv[2], argv[3], argv[4])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
