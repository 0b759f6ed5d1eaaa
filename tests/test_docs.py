"""The documentation points only at files that exist (or that koalign itself writes)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Markdown files koalign writes into run, export, training and evaluation folders.
WRITTEN_BY_KOALIGN = {"README.md", "report.md"}
MD_NAME = re.compile(r"[\w./-]*\w\.md\b")


def test_every_markdown_file_the_docs_name_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for doc in docs:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for name in MD_NAME.findall(line):
                if name.startswith("http") or Path(name).name in WRITTEN_BY_KOALIGN:
                    continue
                places = (doc.parent / name, ROOT / name, ROOT / "docs" / name)
                if not any(p.is_file() for p in places):
                    missing.append(f"{doc.relative_to(ROOT)}:{n}: {name}")
    assert missing == []
