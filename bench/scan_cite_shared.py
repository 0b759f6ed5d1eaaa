"""Run the citation checker over the Korean texts of ../shared/data and list what it finds.

The texts (third-party, not written by us; see ../shared/data/README.md) are questions,
statements and contexts that contain almost no real citations, so every finding is a
candidate false detection to inspect. Read from the project root:

    python bench/scan_cite_shared.py [--data ../shared/data] [--json]

Datasets and fields read (the statute corpus is not read): square/questions_valid.jsonl
(question), square/responses_dev.jsonl (question, response), kosbi/valid.jsonl (context,
sentence), kobbq/samples_dev.jsonl (context, question), multijail/ko_dev.jsonl (prompt),
ko-redteam/prompts_dev.jsonl (prompt), refusal/refusal_train.jsonl (text). A text that occurs
twice is checked once.

A *detection* is a verdict about something specific: a citation of a provision (an article),
a registry phone number (current or retired), or any finding whose verdict is in the default
rejection set (an institution named as today's body after its rename among them). Mentions of
a law by name only (``공직선거법 위반 혐의``), former institution names in a past or neutral
context (``institution_historical`` / ``institution_mentioned``) and phone numbers the registry
does not know (the private mobile numbers in privacy prompts) are counted and listed
separately. Exit status 2 when the data folder is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FIELDS = {
    "square/questions_valid.jsonl": ("question",),
    "square/responses_dev.jsonl": ("question", "response"),
    "kosbi/valid.jsonl": ("context", "sentence"),
    "kobbq/samples_dev.jsonl": ("context", "question"),
    "multijail/ko_dev.jsonl": ("prompt",),
    "ko-redteam/prompts_dev.jsonl": ("prompt",),
    "refusal/refusal_train.jsonl": ("text",),
}
ROOT = Path(__file__).resolve().parents[1]


def texts(data: Path) -> list[tuple[str, str, str]]:
    """(dataset, row id, text) for every distinct text of the datasets above."""
    seen: set[str] = set()
    out = []
    for name, keys in FIELDS.items():
        with (data / name).open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                rid = str(row.get("id") or row.get("sample_id"))
                for key in keys:
                    text = row.get(key)
                    if isinstance(text, str) and text not in seen:
                        seen.add(text)
                        out.append((name, rid, text))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--locale", default="ko")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    missing = [n for n in FIELDS if not (args.data / n).is_file()]
    if missing:
        sys.stderr.write(
            f"third-party data not present: {args.data / missing[0]} (see shared/data/README.md)\n"
        )
        return 2

    from koalign.cite import DEFAULT_REJECT, index_for
    from koalign.locale import load_locale

    index = index_for(load_locale(args.locale))
    rows = texts(args.data)
    detections, mentions, institutions, unknown_numbers = [], [], [], []
    for name, rid, text in rows:
        report = index.check(text)
        for f in report.findings():
            d = {"dataset": name, "id": rid, "verdict": f.verdict, **f.to_dict()}
            d["context"] = text[max(0, f.span[0] - 30) : f.span[1] + 30]
            if f.verdict in DEFAULT_REJECT:
                detections.append(d)
            elif f.verdict.startswith("institution_"):
                institutions.append(d)
            elif f.verdict == "contact_unknown":
                unknown_numbers.append(d)
            elif getattr(f, "article", "x") is None:
                mentions.append(d)
            else:
                detections.append(d)
    result = {
        "texts": len(rows),
        "detections": len(detections),
        "law_mentions_by_name": len(mentions),
        "institution_mentions": len(institutions),
        "unknown_numbers": len(unknown_numbers),
        "detection_list": detections,
        "mentions_by_law": _by(mentions, "law"),
        "institution_list": [(d["dataset"], d["id"], d["name"], d["status"]) for d in institutions],
        "unknown_number_list": [(d["dataset"], d["id"], d["number"]) for d in unknown_numbers],
    }
    if args.json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
        return 0
    print(f"{result['texts']} texts; {result['detections']} detections")
    for d in detections:
        what = d.get("text") or d.get("number") or d.get("name")
        print(f"  {d['dataset']} {d['id']}: {d['verdict']} {what!r} ... {d['context']!r}")
    print(f"{len(mentions)} mentions of a law by name only: {result['mentions_by_law']}")
    print(f"{len(institutions)} former institution names in a past or neutral context:")
    for ds, rid, inst, status in result["institution_list"]:
        print(f"  {ds} {rid}: {inst} ({status})")
    print(f"{len(unknown_numbers)} numbers the registry does not know:")
    for ds, rid, number in result["unknown_number_list"]:
        print(f"  {ds} {rid}: {number}")
    return 0


def _by(rows: list[dict], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    sys.exit(main())
