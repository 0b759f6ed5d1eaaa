"""Rendering report blocks to Markdown and to one self-contained HTML page.

A block is a tuple: ``("h", title)``, ``("p", text)``, ``("pre", text)``, ``("img", name)``
(a PNG from the images mapping) or ``("table", headers, rows)``. HTML escapes every value and
embeds images as base64 data URIs, so the page needs no other file.
"""

from __future__ import annotations

import base64
import html
from typing import Any

Block = tuple[Any, ...]


def to_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown: ``##`` headings, paragraphs, ``text`` code fences, image links to the
    PNG file names, and pipe tables (``|`` escaped, newlines as ``<br>``)."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(f"{block[1]}\n")
        elif kind == "pre":
            out.append("```text\n" + block[1] + "\n```\n")
        elif kind == "img":
            out.append(f"![{block[1]}]({block[1]})\n")
        elif kind == "table":
            cell = lambda x: str(x).replace("|", "\\|").replace("\n", "<br>")  # noqa: E731
            lines = ["| " + " | ".join(cell(h) for h in block[1]) + " |",
                     "|" + "---|" * len(block[1])]  # fmt: skip
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in block[2]]
            out.append("\n".join(lines) + "\n")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,'Noto Sans KR',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:.3em .6em;vertical-align:top;text-align:left}
th{background:#f3f5f7}pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap}img{max-width:100%}td{white-space:pre-wrap}"""


def to_html(title: str, blocks: list[Block], images: dict[str, bytes]) -> str:
    """One self-contained HTML page titled ``title``: every value escaped, each ``img`` block's PNG
    (looked up in ``images`` by name) embedded as a base64 data URI.

    Raises:
        KeyError: an ``img`` block names a file ``images`` does not hold.
    """
    esc = html.escape
    parts = [f"<!doctype html><html lang='ko'><head><meta charset='utf-8'><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>"]  # fmt: skip
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h2>{esc(block[1])}</h2>")
        elif kind == "p":
            parts.append(f"<p>{esc(block[1])}</p>")
        elif kind == "pre":
            parts.append(f"<pre>{esc(block[1])}</pre>")
        elif kind == "img":
            data = base64.b64encode(images[block[1]]).decode("ascii")
            parts.append(f"<img alt='{esc(block[1])}' src='data:image/png;base64,{data}'>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)
