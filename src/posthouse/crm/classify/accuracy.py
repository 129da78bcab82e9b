"""Accuracy of the reply sorter on a labelled set:
`python3 -m posthouse.crm.classify.accuracy tests/data/replies [-v]`.

The set is DIR/labels.json: {"<kind>/<name>.eml": {"kind", "hard", "reason",
"recipients": [{"address", "status", "hard", "reason"}], "original_message_id"}}.
Prints the kind accuracy per labelled kind, and for bounces the accuracy of the
reason, of hard/soft, and of the recipients (addresses and status codes)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

from . import classify


def evaluate(directory: str, subset: str | None = None) -> dict:
    with open(os.path.join(directory, "labels.json"), encoding="utf-8") as f:
        labels = json.load(f)
    if subset:
        labels = {k: v for k, v in labels.items() if v.get("subset") == subset}
    per_kind = defaultdict(lambda: [0, 0])
    counts = defaultdict(lambda: [0, 0])       # name -> [right, total]
    misses = []
    for path, want in sorted(labels.items()):
        with open(os.path.join(directory, path), "rb") as f:
            got = classify(f.read())
        kind_ok = got.kind == want["kind"]
        per_kind[want["kind"]][1] += 1
        per_kind[want["kind"]][0] += kind_ok
        wrong = [] if kind_ok else [f"kind {got.kind} (want {want['kind']})"]
        if "original_message_id" in want:
            ok = got.original_message_id == want["original_message_id"]
            counts["original_message_id"][0] += ok
            counts["original_message_id"][1] += 1
            if not ok:
                wrong.append(f"original_message_id {got.original_message_id} (want {want['original_message_id']})")
        if want["kind"] in ("bounce", "complaint"):
            got_r = [(r.address, r.status) for r in got.recipients]
            want_r = [(r["address"], r["status"]) for r in want["recipients"]]
            ok = [a for a, _ in got_r] == [a for a, _ in want_r]
            counts[f"{want['kind']} recipients"][0] += ok
            counts[f"{want['kind']} recipients"][1] += 1
            if not ok:
                wrong.append(f"recipients {[a for a, _ in got_r]} (want {[a for a, _ in want_r]})")
        if want["kind"] == "bounce":
            for key in ("reason", "hard"):
                ok = getattr(got, key) == want[key]
                counts[f"bounce {key}"][0] += ok
                counts[f"bounce {key}"][1] += 1
                if not ok:
                    wrong.append(f"{key} {getattr(got, key)} (want {want[key]})")
            ok = got_r == want_r
            counts["bounce status codes"][0] += ok
            counts["bounce status codes"][1] += 1
            if not ok and [a for a, _ in got_r] == [a for a, _ in want_r]:
                wrong.append(f"statuses {[s for _, s in got_r]} (want {[s for _, s in want_r]})")
        if wrong:
            misses.append((path, wrong))
    return {"per_kind": dict(per_kind), "counts": dict(counts), "misses": misses}


def _pct(right: int, total: int) -> str:
    return f"{right}/{total} = {100.0 * right / total:.1f}%" if total else "0/0"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m posthouse.crm.classify.accuracy", description=__doc__.splitlines()[0])
    p.add_argument("directory", help="the labelled set (with labels.json)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every message classified wrong, and how")
    p.add_argument("--subset", help="only the messages labelled with this subset (e.g. heldout)")
    args = p.parse_args(argv)
    result = evaluate(args.directory, args.subset)
    total_right = sum(r for r, _ in result["per_kind"].values())
    total = sum(t for _, t in result["per_kind"].values())
    print(f"kind, all messages: {_pct(total_right, total)}")
    for kind, (right, n) in sorted(result["per_kind"].items()):
        print(f"  kind {kind:<12} {_pct(right, n)}")
    for name, (right, n) in sorted(result["counts"].items()):
        print(f"{name}: {_pct(right, n)}")
    if args.verbose or result["misses"]:
        for path, wrong in result["misses"]:
            print(f"  wrong: {path}: {'; '.join(wrong)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:     # `| head`
        sys.stderr.close()
        sys.exit(0)
