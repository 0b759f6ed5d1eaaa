"""Refusal detector over third-party Korean text that is overwhelmingly not refusals.

Reads, in place, the files of ../shared/data (or ``--data-dir``) named below (no labels of refusal exist for them:
every hit is printed so that it can be read by eye) and prints one JSON line with the number of
texts and of texts flagged as refusals per file, then, with ``--show``, each flagged text with
the rule and phrase that decided. A file's texts are the fields named in :data:`FILES`, each a
text of its own (SQuARe responses: the question and the response of each row). Used for the
"false alarms" table of docs/evaluation.md::

    python bench/refusal_false_alarms.py --show
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from koalign.evaluate.refusal import detect_refusal

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: file -> the text fields of each row that are read (each one a text of its own)
FILES = {
    "kosbi/valid.jsonl": ("context", "sentence"),
    "kobbq/samples_dev.jsonl": ("context", "question"),
    "square/questions_valid.jsonl": ("question",),
    "square/responses_dev.jsonl": ("question", "response"),
    "ko-redteam/prompts_dev.jsonl": ("prompt",),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--show", action="store_true", help="print every flagged text to stderr")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DATA,
        help="the third-party data folder (default: ../shared/data next to the repository)",
    )
    args = p.parse_args()
    out: dict[str, dict[str, int]] = {}
    for name, fields in FILES.items():
        path = args.data_dir / name
        if not path.is_file():
            sys.exit(f"third-party data not present: {path} (see shared/data/README.md)")
        texts = flagged = 0
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for field in fields:
                text = row.get(field)
                if not isinstance(text, str) or not text.strip():
                    continue
                texts += 1
                match = detect_refusal(text)
                if match.refusal:
                    flagged += 1
                    if args.show:
                        print(
                            f"{name} {field}: {match.rule} {match.phrase!r}: {text}",
                            file=sys.stderr,
                        )
        out[name] = {"texts": texts, "flagged": flagged}
    print(json.dumps({"bench": "refusal_false_alarms", "files": out}, ensure_ascii=False))


if __name__ == "__main__":
    main()
