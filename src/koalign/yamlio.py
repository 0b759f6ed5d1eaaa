"""The one YAML reader for every file koalign loads: run, train and eval configs and locale packs.

YAML files are untrusted input (configs and locale packs are shared between teams), so
:func:`load_yaml` bounds what a document may cost before any Python object is built from it:

* **size**: at most ``max_bytes`` (default 1 MiB; the largest shipped locale file is ~150 KB);
  a file is measured with ``stat`` before it is read;
* **aliases**: anchors and aliases (``&slots`` / ``*slots``, ``<<: *base``) are allowed, as the
  bundled taxonomy uses them, but all aliases of a document together may repeat at most
  ``max_alias_nodes`` nodes (default 10,000). A "billion laughs" document is refused after
  parsing its few hundred bytes, before anything is expanded or copied;
* **depth**: at most ``max_depth`` levels of nesting (default 100); recursive aliases are refused;
* **duplicate keys**: one error naming every duplicated key and both of its lines (PyYAML
  would keep the last one);
* **one dialect**: YAML 1.1 as PyYAML reads it (``safe_load``: no Python tags), except that
  floats follow YAML 1.2, so ``1e-3``, ``5E-6`` and ``1.5e3`` are floats everywhere (YAML 1.1
  reads them as strings).

Errors are :class:`~koalign.errors.ConfigError` by default (``error=LocaleError`` for locale
files) with ``where`` set to ``file:line`` (1-based) and a hint saying how to fix the file.

``--set a.b=VALUE`` overrides go through :func:`parse_override`, :func:`set_dotted` and
:func:`apply_overrides`, so a value on the command line is read in the same dialect as a file.

Typical use::

    data = load_yaml(Path("run.yaml")) or {}          # ConfigError naming run.yaml:LINE
    apply_overrides(data, ["attack.rounds=2"])        # same dialect as the file
    pack = load_yaml(raw_bytes, where="taxonomy.yaml", error=LocaleError)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from koalign.errors import ConfigError, KoalignError
from koalign.jsonio import legacy_hint

#: Largest YAML file (bytes) read by default: 1 MiB.
MAX_BYTES = 1 << 20
#: Most nodes that all aliases of one document may repeat, in total.
MAX_ALIAS_NODES = 10_000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 100

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"

_Base: type[yaml.SafeLoader]
try:  # libyaml parses ~10x faster; the pure-Python loader behaves the same
    _Base = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """PyYAML's safe loader with YAML 1.2 floats (``1e-3`` is a float, not a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(
    source: str | bytes | Path,
    *,
    where: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    max_depth: int = MAX_DEPTH,
    error: type[KoalignError] = ConfigError,
) -> Any:
    """Parse one YAML document from a file or a string, within bounds.

    Args:
        source: a :class:`~pathlib.Path` is read as a file; ``str`` and ``bytes`` are the YAML
            text itself (bytes must be UTF-8; a leading BOM is dropped).
        where: the name used in error messages (default: the path, or ``<yaml>`` for text),
            e.g. ``"configs/run.yaml"`` or ``"--set attack.rounds"``.
        max_bytes: largest accepted document, in bytes of UTF-8.
        max_alias_nodes: most nodes all aliases together may repeat (0 forbids any alias use).
        max_depth: deepest accepted nesting of mappings and sequences.
        error: the :class:`~koalign.errors.KoalignError` subclass raised, e.g.
            :class:`~koalign.errors.LocaleError` for locale files.

    Returns:
        Plain data: ``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` (and
        ``datetime.date`` for unquoted dates, as ``yaml.safe_load``); ``None`` for an empty
        document.

    Raises:
        ``error`` (default :class:`~koalign.errors.ConfigError`) with ``where`` =
        ``"<where>:<line>"`` for a file that is missing, too large, not UTF-8, not valid YAML,
        holds more than one document, repeats a key, nests too deep or expands aliases past
        ``max_alias_nodes``; the hint says how to fix it.
    """
    text, name = _read(source, where, max_bytes, error)
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, name, error) from None
        except yaml.YAMLError as exc:
            raise error(f"not valid YAML: {exc}", where=name) from None
        if node is None:
            return None
        _check_tree(node, loader, name, max_alias_nodes, max_depth, error)
        try:
            return loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise _syntax_error(exc, name, error) from None
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            raise error(f"cannot read a value: {exc}", where=name) from None
    finally:
        loader.dispose()


def _read(
    source: str | bytes | Path, where: str | None, max_bytes: int, error: type[KoalignError]
) -> tuple[str, str]:
    """The document's text and its name for messages; size and encoding checked."""
    if isinstance(source, Path):
        name = where or str(source)
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise error("file not found", where=name, hint="check the path") from None
        except OSError as exc:
            raise error(f"cannot read the file: {exc.strerror}", where=name) from None
        if not source.is_file():
            raise error("not a file", where=name, hint="give the path of a YAML file")
        if size > max_bytes:
            raise _too_large(size, max_bytes, name, error)
        try:
            with source.open("rb") as fh:
                raw = fh.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"cannot read the file: {exc.strerror}", where=name) from None
    else:
        name = where or "<yaml>"
        raw = source.encode("utf-8") if isinstance(source, str) else source
    if len(raw) > max_bytes:
        raise _too_large(len(raw), max_bytes, name, error)
    if isinstance(source, str):
        return source, name
    try:
        return raw.decode("utf-8-sig"), name
    except UnicodeDecodeError as exc:
        given = source if isinstance(source, Path) else (name.split(":", 1)[0] or "FILE")
        raise error(
            f"not UTF-8 text (byte {exc.start})", where=name, hint=legacy_hint(given)
        ) from None


def _too_large(size: int, limit: int, name: str, error: type[KoalignError]) -> KoalignError:
    return error(
        f"YAML document of {size:,} bytes is larger than the limit of {limit:,} bytes",
        where=name,
        hint="configs and locale files are small; split the file or check that it is the right one",
    )


def _syntax_error(exc: yaml.MarkedYAMLError, name: str, error: type[KoalignError]) -> KoalignError:
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "not valid YAML: " + ("; ".join(parts) if parts else str(exc))
    if "maximum nesting depth" in message:
        return error(message, where=where, hint="nest mappings and lists less deeply")
    return error(message, where=where, hint="fix the YAML syntax at that line")


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_graph(
    root: Node,
    loader: _Loader,
    name: str,
    max_alias_nodes: int,
    max_depth: int,
    error: type[KoalignError],
) -> None:
    """Walk the composed node graph once (each distinct node once, iteratively).

    Aliases make the graph a DAG whose nodes are shared; its expanded size is computed bottom-up
    without expanding anything, so a billion-laughs document costs as much as its text.
    """
    size: dict[int, int] = {}  # id(node) -> nodes in its expanded subtree
    height: dict[int, int] = {}  # id(node) -> levels of nesting at and below it
    refs: dict[int, int] = {}  # id(node) -> how many parents point at it
    nodes: dict[int, Node] = {}
    on_path: set[int] = set()
    duplicates: list[tuple[int, str]] = []
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        nid = id(node)
        if finished:
            kids = _children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            nested = isinstance(node, SequenceNode | MappingNode)
            height[nid] = int(nested) + max((height[id(k)] for k in kids), default=0)
            on_path.discard(nid)
            continue
        if nid in on_path:
            raise error(
                "an alias refers to a node that contains it (a recursive structure)",
                where=f"{name}:{node.start_mark.line + 1}",
                hint="remove the alias from inside its own anchor",
            )
        if nid in size:
            continue
        nodes[nid] = node
        on_path.add(nid)
        stack.append((node, True))
        if isinstance(node, MappingNode):
            duplicates += _duplicate_keys(node, loader)
        for kid in reversed(_children(node)):
            refs[id(kid)] = refs.get(id(kid), 0) + 1
            stack.append((kid, False))

    _refuse_duplicates(duplicates, name, error)
    repeated = size[id(root)] - len(size)
    if repeated > max_alias_nodes:
        # Name the anchor whose aliases repeat the most (its extra uses times its size).
        worst = max(
            (i for i in refs if refs[i] > 1), key=lambda i: (refs[i] - 1) * size[i], default=None
        )
        line = f":{nodes[worst].start_mark.line + 1}" if worst is not None else ""
        raise error(
            f"aliases expand the document by {repeated:,} nodes (limit {max_alias_nodes:,}): "
            "refused as a possible alias bomb",
            where=f"{name}{line}",
            hint="write the repeated values out, or reuse fewer and smaller anchors",
        )
    if height[id(root)] > max_depth:
        node = root
        for _ in range(max_depth):
            kids = _children(node)
            node = max(kids, key=lambda k: height[id(k)])
        raise error(
            f"nesting is {height[id(root)]} levels deep (limit {max_depth})",
            where=f"{name}:{node.start_mark.line + 1}",
            hint="nest mappings and lists less deeply",
        )


def _check_tree(
    root: Node,
    loader: _Loader,
    name: str,
    max_alias_nodes: int,
    max_depth: int,
    error: type[KoalignError],
) -> None:
    """Check duplicate keys and nesting in one walk while the nodes form a tree; at the first
    node reached twice (an alias) or nested too deep, hand over to :func:`_check_graph`, which
    also measures what aliases expand to and words the errors."""
    seen: set[int] = set()
    duplicates: list[tuple[int, str]] = []
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ScalarNode):
            continue
        nid = id(node)
        depth += 1
        if nid in seen or depth > max_depth:
            _check_graph(root, loader, name, max_alias_nodes, max_depth, error)
            return
        seen.add(nid)
        if isinstance(node, MappingNode):
            duplicates += _duplicate_keys(node, loader)
            for key, value in node.value:
                stack.append((key, depth))
                stack.append((value, depth))
        else:
            stack.extend((kid, depth) for kid in node.value)
    _refuse_duplicates(duplicates, name, error)


def _refuse_duplicates(
    duplicates: list[tuple[int, str]], name: str, error: type[KoalignError]
) -> None:
    """One error naming every duplicate key of the document, in line order (at the first)."""
    if duplicates:
        duplicates.sort()
        raise error(
            "; ".join(text for _, text in duplicates),
            where=f"{name}:{duplicates[0][0]}",
            hint="remove or rename one of each pair",
        )


def _duplicate_keys(node: MappingNode, loader: _Loader) -> list[tuple[int, str]]:
    """``(line, message)`` for each scalar key a mapping names again (``<<`` merges may
    override)."""
    out: list[tuple[int, str]] = []
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        if key_node.tag == _STR_TAG:
            key: Any = key_node.value  # what construction gives, without constructing
        else:
            try:
                key = loader.construct_object(key_node, deep=True)
                hash(key)
            except (yaml.YAMLError, TypeError, ValueError):
                continue  # construction reports it with its line later
        line = key_node.start_mark.line + 1
        if key in seen:
            out.append(
                (
                    line,
                    f"duplicate key {key!r}: first at line {seen[key]}, again at line {line} "
                    "(YAML readers keep only one of them)",
                )
            )
            continue
        seen[key] = line
    return out


# ----------------------------------------------------------------------------- --set overrides
def parse_override(text: str, *, error: type[KoalignError] = ConfigError) -> tuple[str, Any]:
    """Split one ``--set`` override ``a.b.c=VALUE`` into ``("a.b.c", value)``.

    The value is read by :func:`load_yaml` (same dialect as the files: ``2`` is an int,
    ``1e-3`` a float, ``[a, b]`` a list, an empty value ``""``); a value that is not valid YAML
    (an unquoted Jinja template, a regular expression with ``: ``) is kept as the text itself.

    Raises:
        ``error`` (default :class:`~koalign.errors.ConfigError`) when ``=`` or the key is
        missing.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        what = "has no '='" if not sep else "has no key before '='"
        raise error(f"override {text!r} {what}", where="--set", hint="write KEY=VALUE, e.g. a.b=2")
    if not raw.strip():
        return key, ""
    try:
        return key, load_yaml(raw, where=f"--set {key}", error=error)
    except KoalignError:
        return key, raw


def set_dotted(
    data: dict[str, Any], key: str, value: Any, *, error: type[KoalignError] = ConfigError
) -> None:
    """Set ``data["a"]["b"]["c"] = value`` for ``key = "a.b.c"``, creating mappings on the way.

    A missing key, ``null`` or the word ``none`` on the way (e.g. ``peft: none``) becomes a new
    mapping; any other value on the way is an error, never silently replaced.

    Raises:
        ``error`` naming the key when a part is empty or a value on the way is not a mapping.
    """
    parts = key.split(".")
    if not all(parts):
        raise error(f"bad key {key!r}", where="--set", hint="use dotted keys like a.b.c")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if not isinstance(child, dict):
            if child is not None and child != "none":
                where = ".".join(parts[: i + 1])
                raise error(
                    f"cannot set {key!r}: {where} is {child!r}, not a mapping", where="--set"
                )
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_overrides(
    data: dict[str, Any], overrides: list[str] | None, *, error: type[KoalignError] = ConfigError
) -> dict[str, Any]:
    """Apply ``--set`` overrides in order (later ones win) to ``data`` in place; return it."""
    for text in overrides or []:
        key, value = parse_override(text, error=error)
        set_dotted(data, key, value, error=error)
    return data
