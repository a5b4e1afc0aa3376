#!/usr/bin/env python3
"""Read a report back with Python's own parsers and print it as JSON (ASCII) on stdout.

usage: report_reader.py csv FILE   -> {"header": [...], "rows": [[...], ...]}
       report_reader.py json FILE  -> the document as json.load read it

The CSV is read with the csv module in strict mode (a malformed quote is an
error) from a file opened with newline='' as the csv documentation requires,
so quoted CR and LF survive. NaN and Infinity are rejected in JSON.
"""
import csv
import json
import sys


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, strict=True))
    return {"header": rows[0] if rows else [], "rows": rows[1:]}


def reject_constant(name):
    raise ValueError("not JSON: " + name)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=reject_constant)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("csv", "json"):
        sys.exit(__doc__)
    data = read_csv(sys.argv[2]) if sys.argv[1] == "csv" else read_json(sys.argv[2])
    json.dump(data, sys.stdout)


if __name__ == "__main__":
    main()
