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
      baseline's) against the same file under HEAD_DIR: every event valid under the
      baseline's schema must stay valid under HEAD's (jsoncompat, deserializer role). A
      schema HEAD no longer has fails. Prints one line per schema, "event<TAB>TYPE<TAB>RESULT",
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


def drop_shared_multiple_of(old, new, where=""):
    """jsoncompat 0.3.1 cannot decide a non-integral multipleOf (money: 0.01). Where the
    same multipleOf sits at the same place of both schemas, reached from the root through
    properties/items only (never anyOf, not, if or a $ref), it is removed from both. That is
    sound: an instance the old schema accepts meets it there, and the new schema asks it of
    the same place, so the rest of the two schemas decides. Elsewhere, or where it differs,
    the answer is "undecided", which fails."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    if "multipleOf" in old and old.get("multipleOf") == new.get("multipleOf"):
        del old["multipleOf"], new["multipleOf"]
    for keyword, named in FIXED_PLACE.items():
        old_sub, new_sub = old.get(keyword), new.get(keyword)
        if named and isinstance(old_sub, dict) and isinstance(new_sub, dict):
            for name in old_sub.keys() & new_sub.keys():
                drop_shared_multiple_of(old_sub[name], new_sub[name], f"{where}/{keyword}/{name}")
        elif named and isinstance(old_sub, list) and isinstance(new_sub, list):
            for i, (o, n) in enumerate(zip(old_sub, new_sub)):
                drop_shared_multiple_of(o, n, f"{where}/{keyword}/{i}")
        elif not named:
            drop_shared_multiple_of(old_sub, new_sub, f"{where}/{keyword}")


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


def event_verdict(old_path, new_path):
    import jsoncompat

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
    drop_shared_multiple_of(old, new)
    try:
        compatible = jsoncompat.check_compat(json.dumps(old), json.dumps(new), jsoncompat.Role.DESERIALIZER)
    except ValueError as error:
        return f"FAILED: undecided ({error})"
    return "ok" if compatible else "FAILED: accepts less than the baseline's schema"


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
