#!/usr/bin/env python3
"""Tiny JSON reader for the guest scripts (no jq in the guest).

  j.py FILE PATH       print the value at PATH (a.b[0].c; strings raw, others as JSON)
  j.py FILE PATH -l    print each element of a list on its own line
  j.py actions FILE    print the plan's actions, comma-separated
"""
import json
import re
import sys


def get(doc, path):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            doc = doc[i] if isinstance(doc, list) and i < len(doc) else None
        else:
            doc = doc.get(part) if isinstance(doc, dict) else None
        if doc is None:
            return None
    return doc


def show(v):
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def main():
    if sys.argv[1] == "actions":
        d = json.load(open(sys.argv[2]))
        print(",".join(s["action"] for s in d.get("plan", [])))
        return
    d = json.load(open(sys.argv[1]))
    v = get(d, sys.argv[2]) if sys.argv[2] != "." else d
    if len(sys.argv) > 3 and sys.argv[3] == "-l":
        for x in v or []:
            print(show(x))
    else:
        print(show(v))


if __name__ == "__main__":
    main()
