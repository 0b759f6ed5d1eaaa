"""Rendering the locale pack's Jinja2 prompt templates into chat messages, in a sandbox.

A template ``prompts/<role>.j2`` defines ``{% block system %}`` (optional) and
``{% block user %}``. Rendering is strict: an undefined variable is an error, never an empty
string, so a broken template fails before the first model call.

Locale packs are shared between teams, so a template is untrusted code. It runs in jinja2's
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` (no underscore attributes, no mutation
of lists and dicts, ``str.format`` sandboxed) with these further bounds (see docs/security.md):

* **plain data only**: the values a template sees are converted to ``dict``/``list``/``str``/
  ``int``/``float``/``bool``/``None`` first (pydantic models become dicts of their fields and
  public properties; dates become ISO strings), so no object whose methods reach the process
  is ever in reach; the only globals are a bounded ``range``, ``dict`` and ``namespace``
  (no ``lipsum``, ``cycler``, ``joiner``); ``include``/``import``/``extends`` have no loader;
* **size**: every string or list a ``*``, ``+``, ``%``, ``~``, call or filter produces, and each
  rendered message, is at most :data:`MAX_CHARS` characters; integer arguments above it, ``**``
  results above :data:`MAX_INT_BITS` bits and format widths of 7+ digits are refused before
  they are computed; ``*``, ``+``, ``-``, ``/``, ``//`` and ``%`` on integers are refused when
  an operand or the result is past :data:`MAX_INT_BITS` bits (so no squaring or doubling loop
  grows a number whose arithmetic takes minutes);
* **work**: at most :data:`MAX_STEPS` loop iterations, calls and filters per rendering, and
  ``range`` yields at most :data:`MAX_RANGE` numbers.

Anything else a template tries ends in :class:`~koalign.errors.LocaleError` naming
``prompts/<role>.j2`` and the template line.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from pydantic import BaseModel

from koalign.errors import LocaleError, did_you_mean
from koalign.locale import Locale
from koalign.types import Message

#: Longest string or list (characters or items) a template expression, call or filter may
#: produce, and longest rendered message.
MAX_CHARS = 1_000_000
#: Loop iterations plus calls and filters allowed in one rendering.
MAX_STEPS = 200_000
#: Characters (or items) all strings and lists built by one rendering may add up to.
MAX_TOTAL_CHARS = 10 * MAX_CHARS
#: Most numbers one ``range(...)`` call may yield.
MAX_RANGE = 10_000
#: Largest integer (in bits; about 1,233 decimal digits) an arithmetic operator may take or
#: give: ``*``, ``+``, ``-``, ``/``, ``//``, ``%`` and ``**``.
MAX_INT_BITS = 4096
_SANDBOX_HINT = "locale templates may only format the values they are given; see docs/security.md"
_BUILTIN_METHOD: Any = type({}.get)
_LONG_NUMBER = re.compile(r"\d{7,}")


class _Budget:
    """Work left for the rendering in progress."""

    __slots__ = ("chars", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.chars = MAX_TOTAL_CHARS

    def spend(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise SecurityError(
                f"the template did more than {MAX_STEPS:,} loop iterations, calls and filters"
            )

    def build(self, n: int) -> None:
        self.chars -= n
        if self.chars < 0:
            raise SecurityError(
                f"the template built more than {MAX_TOTAL_CHARS:,} characters in all"
            )


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "koalign_prompt_budget", default=None
)


def _spend(n: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(n)


def _check_size(value: Any, what: str) -> Any:
    """``value`` unchanged, or SecurityError when it is a string/list longer than MAX_CHARS or
    when the rendering has built more than MAX_TOTAL_CHARS characters and items in all."""
    if isinstance(value, str | list | tuple | dict):
        if len(value) > MAX_CHARS:
            raise SecurityError(
                f"{what} produced {len(value):,} characters or items (limit {MAX_CHARS:,})"
            )
        budget = _BUDGET.get()
        if budget is not None:
            budget.build(len(value))
    return value


def _fail_if_undefined(values: Iterable[Any]) -> None:
    """Raise an undefined value's own error (e.g. the sandbox's) instead of passing it on."""
    for value in values:
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()


def _check_args(args: Iterable[Any], what: str) -> None:
    """Refuse integers above MAX_CHARS (repeat counts, widths) before they are used."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_CHARS:
            raise SecurityError(f"{what} was given the number {arg}, above the limit {MAX_CHARS:,}")
        if isinstance(arg, tuple | list) and len(arg) <= 64:
            _check_args(arg, what)


def _check_int_bits(what: str, *values: Any) -> None:
    """Refuse an integer operand or result longer than MAX_INT_BITS bits (the number itself is
    never printed: its decimal form is as large as the problem)."""
    for value in values:
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise SecurityError(
                f"{what}: an integer of {value.bit_length():,} bits is above the limit of "
                f"{MAX_INT_BITS:,} bits"
            )


def _check_format(fmt: Any, what: str) -> None:
    if isinstance(fmt, str) and _LONG_NUMBER.search(fmt):
        raise SecurityError(f"{what}: a format with a 7-digit width or precision is refused")


def _replace_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    n = (len(s) + 1) if not old else s.count(old)
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * max(0, len(new) - len(old))


def _join_size(sep: Any, items: list[Any]) -> int:
    sep_len = len(sep) if isinstance(sep, str) else 0
    return sum(len(x) if isinstance(x, str) else 32 for x in items) + sep_len * len(items)


def _precheck(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, is_filter: bool
) -> tuple[Any, ...]:
    """Checks of the amplifying string operations before they run.

    ``args`` starts with the string a method is bound to, or with a filter's input. A join's
    iterable is materialised (and returned in ``args``) so that its size is known first.
    """
    what = f"'{name}'"
    _check_args(args, what)
    _check_args(kwargs.values(), what)
    if name == "replace" and len(args) >= 3:
        if _replace_size(*args[:4]) > MAX_CHARS:
            raise SecurityError(f"{what} would produce more than {MAX_CHARS:,} characters")
    elif name == "join" and len(args) >= (1 if is_filter else 2):
        at, sep = (
            (0, args[1] if len(args) > 1 else kwargs.get("d", "")) if is_filter else (1, args[0])
        )
        items = list(args[at])
        _spend(len(items))
        if _join_size(sep, items) > MAX_CHARS:
            raise SecurityError(f"{what} would produce more than {MAX_CHARS:,} characters")
        args = (*args[:at], items, *args[at + 1 :])
    elif name == "expandtabs" and args and isinstance(args[0], str):
        size = args[1] if len(args) > 1 else kwargs.get("tabsize", 8)
        if isinstance(size, int) and args[0].count("\t") * size > MAX_CHARS:
            raise SecurityError(f"{what} would produce more than {MAX_CHARS:,} characters")
    elif name == "indent" and args and isinstance(args[0], str):
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        width = len(width) if isinstance(width, str) else width
        if isinstance(width, int) and (args[0].count("\n") + 1) * width > MAX_CHARS:
            raise SecurityError(f"{what} would produce more than {MAX_CHARS:,} characters")
    elif name in ("format", "format_map") and args:
        _check_format(args[0], what)
    return args


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments checked before and its result size checked after."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0

    lenient = name in ("default", "d")  # made to take undefined values

    @functools.wraps(func)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _spend()
        if not lenient:
            _fail_if_undefined(args[skip:])
        head, rest = args[:skip], _precheck(name, args[skip:], kwargs, is_filter=True)
        return _check_size(func(*head, *rest, **kwargs), f"filter '{name}'")

    return bounded


def _range(*args: int) -> Iterator[int]:
    """``range`` for templates: at most MAX_RANGE numbers, each counted against the budget."""
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:  # more numbers than a machine word counts
        size = MAX_RANGE + 1
    if size > MAX_RANGE:
        raise SecurityError(f"range of more than {MAX_RANGE:,} numbers")
    return _counted(numbers)


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    for item in items:
        _spend()
        yield item


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with every loop iterable and every ``~`` result bounded."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node = copy.copy(node)
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None
        ).set_lineno(node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_str(")
        super().visit_Concat(node, frame)
        self.write(")")


class _NoLoader(jinja2.BaseLoader):
    """Templates cannot include, import or extend anything."""

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        raise jinja2.TemplateNotFound(
            template, "locale templates cannot include, import or extend other templates"
        )


class _Undefined(jinja2.StrictUndefined):
    """StrictUndefined whose message for a missing field of a mapping names the fields it has
    (and the closest one), built only when the error is raised."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint or not isinstance(obj, dict) or not isinstance(name, str):
            return super()._undefined_message
        keys = [k for k in obj if isinstance(k, str)]
        shown = ", ".join(keys[:20]) + (", ..." if len(keys) > 20 else "")
        return (
            f"no field '{name}'{did_you_mean(name, keys)} in a mapping with the fields "
            f"{shown or '(none)'}"
        )


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with koalign's size and work bounds (see the module docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "-", "/", "//", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=_Undefined,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        self.loader = _NoLoader()
        self.globals.clear()
        self.globals.update(range=_range, dict=dict, namespace=jinja2.runtime.Namespace)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b`` on a dict prefers the key ``b`` (so a field named ``items`` is the field);
        ``a.b`` on an undefined ``a`` fails as ``a`` itself does."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        _fail_if_undefined((obj,))
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``a[b]``; on an undefined ``a`` fails as ``a`` itself does."""
        _fail_if_undefined((obj,))
        return super().getitem(obj, argument)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any):
        _spend()
        what = f"'{operator}'"
        _check_int_bits(what, left, right)
        if operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and max(abs(left), 1).bit_length() * right > MAX_INT_BITS
            ):
                raise SecurityError(f"{what}: {left} ** {right} is too large")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > MAX_CHARS
                ):
                    raise SecurityError(
                        f"{what}: repeating {len(seq):,} characters or items {n:,} times "
                        f"exceeds the limit of {MAX_CHARS:,}"
                    )
        elif operator == "%" and isinstance(left, str):
            _check_format(left, what)
            _check_args(right if isinstance(right, tuple) else (right,), what)
        result = super().call_binop(context, operator, left, right)
        _check_int_bits(what, result)
        return _check_size(result, what)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any):
        """Every call of the template: counted, its arguments and result size checked."""
        _spend()
        if type(__obj) is _BUILTIN_METHOD and type(getattr(__obj, "__self__", None)) is dict:
            # dict.get/keys/items/values: read-only (the sandbox never hands out a mutator)
            # and never larger than the dict; the hot path of templates over policy views.
            kwargs.pop("_loop_vars", None)
            kwargs.pop("_block_vars", None)
            return __obj(*args, **kwargs)
        target = getattr(__obj, "__wrapped__", __obj)
        name = getattr(target, "__name__", "")
        owner = getattr(target, "__self__", None)
        _fail_if_undefined(args)
        if __obj is _range:
            pass  # checks its own arguments
        elif isinstance(owner, str) and name:
            args = _precheck(name, (owner, *args), kwargs, is_filter=False)[1:]
        else:
            _check_args(args, f"'{name}'")
            _check_args(kwargs.values(), f"'{name}'")
        result = super().call(__context, __obj, *args, **kwargs)
        return _check_size(result, f"call of '{name or type(__obj).__name__}'")

    def bounded_iter(self, iterable: Any) -> Iterator[Any]:
        """A loop's iterable, each item counted against the budget (a sized one at once)."""
        if type(iterable) in (list, tuple, dict, str):
            _spend(len(iterable))
            return iterable
        return _counted(iterable)

    def bounded_str(self, value: Any) -> Any:
        """The result of ``~``, refused past MAX_CHARS."""
        return _check_size(value, "'~'")


_ENV = _PromptEnvironment()


def template_names(loc: Locale) -> list[str]:
    """The roles that have a template in ``loc`` (``prompts/<role>.j2``), sorted."""
    return sorted(loc.prompts)


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> tuple[jinja2.Template, dict[str, frozenset[str]]]:
    """The compiled template and, for each of its blocks, the names the block reads (loop
    variables included: a name the context does not hold is ignored when building a cache
    key), from one parse of ``text``."""
    tree = _ENV.parse(text)
    out: dict[str, frozenset[str]] = {}
    for block in tree.find_all(nodes.Block):
        names = {n.name for n in block.find_all(nodes.Name) if n.ctx == "load"}
        if any(True for _ in block.find_all(nodes.Call)) and "self" in names:
            names.add("\0dynamic")  # calls another block: never cached
        out[block.name] = frozenset(names)
    return _ENV.from_string(tree), out


def _compile(text: str) -> jinja2.Template:
    return _parsed(text)[0]


def _block_names(text: str) -> dict[str, frozenset[str]]:
    return _parsed(text)[1]


#: The blocks that become chat messages, in this order; any other block is text they include.
_MESSAGE_BLOCKS = ("system", "user")

_BLOCK_CACHE: dict[tuple[Any, ...], str] = {}
_BLOCK_CACHE_SIZE = 4096
#: A block that reads a string longer than this (a record's prompt or answer) is rendered every
#: time: its key would be unique to one record, and keeping it would evict the blocks shared by
#: every record of a category.
_KEY_TEXT_MAX = 200


def _block_key(
    text: str, block: str, names: frozenset[str], raw: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """A cache key for a block whose values are all short strings, numbers or frozen values, at
    least one of them frozen; ``None`` when the block must be rendered."""
    if "\0dynamic" in names:
        return None
    parts: list[Any] = [id(_compile(text)), block]
    for name in sorted(names):
        if name not in raw:
            continue
        value = raw[name]
        if type(value) in _SCALARS:
            if type(value) is str and len(value) > _KEY_TEXT_MAX:
                return None  # a record's own text: a key used once, that only fills the cache
            parts.append((name, value))
            continue
        hit = _FROZEN.get(id(value)) or _PLAIN_CACHE.get(id(value))
        if hit is None or hit[0] is not value:
            return None  # a value that may change between renderings: render the block
        parts.append((name, "frozen", id(value)))
    # only blocks built from a frozen value are worth keeping (a block of strings alone, such
    # as the user's prompt, is cheap to render and would only fill the cache)
    return tuple(parts) if any(len(p) == 3 for p in parts[2:]) else None


def _template(loc: Locale, role: str) -> jinja2.Template:
    text = loc.prompts.get(role)
    if text is None:
        raise LocaleError(
            f"the locale has no prompt template for role '{role}'{did_you_mean(role, loc.prompts)}",
            where=f"{loc.path}/prompts",
            hint=f"add prompts/{role}.j2 (templates: {', '.join(sorted(loc.prompts)) or 'none'})",
        )
    try:
        return _compile(text)
    except jinja2.TemplateSyntaxError as exc:
        raise LocaleError(
            f"template syntax error: {exc.message}",
            where=f"prompts/{role}.j2:{exc.lineno}",
            hint="see docs/locale-format.md",
        ) from None


# ----------------------------------------------------------------------------- plain data
_PLAIN_CACHE: dict[int, tuple[BaseModel, Any]] = {}
_PLAIN_CACHE_SIZE = 8192


_SCALARS = frozenset({str, int, float, bool, type(None)})


class _NotPlain(TypeError):
    """A value that is not plain data; ``path`` is filled in on the way out."""

    def __init__(self, kind: str, path: list[str]) -> None:
        self.kind = kind
        self.path = path
        super().__init__(kind)


def plain(value: Any, *, where: str = "value") -> Any:
    """``value`` as plain data: what a template may see.

    ``str``/``int``/``float``/``bool``/``None`` stay; a ``dict`` or ``list`` that already holds
    only plain data is returned as is (templates cannot mutate it: the sandbox is immutable);
    other mappings become ``dict`` (keys ``str`` or ``int``), tuples and sets become ``list``; a
    pydantic model becomes a dict of its fields and public properties (frozen models are
    converted once and cached); an ``Enum`` becomes its value; dates and times their ISO text;
    paths their text.

    Raises:
        TypeError: for anything else (a function, a client, a module ...), naming the value's
            path under ``where``.
    """
    try:
        return _plain(value)
    except _NotPlain as exc:
        path = where + "".join(reversed(exc.path))
        raise TypeError(
            f"prompt value {path} is a {exc.kind}, not plain data "
            "(templates get dicts, lists, strings, numbers, booleans and None only)"
        ) from None


def freeze(value: Any) -> Any:
    """Register ``value`` (a dict or list that will never be mutated again, e.g. a resolved
    policy kept for a whole run) as plain data checked once: later renderings reuse the check,
    and a block that depends only on such values and on strings is rendered once and reused
    (see :func:`render_chat`). Returns ``value``."""
    key = id(value)
    hit = _FROZEN.get(key)
    if hit is None or hit[0] is not value:
        if len(_FROZEN) >= _PLAIN_CACHE_SIZE:
            _FROZEN.clear()
        _FROZEN[key] = (value, plain(value, where="frozen value"))
    return value


_FROZEN: dict[int, tuple[Any, Any]] = {}


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict or kind is list:
        hit = _FROZEN.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
    if kind is dict:
        out = None
        for key, item in value.items():
            new = item if type(item) in _SCALARS else _nested(item, f".{key}")
            new_key = key if type(key) is str else _plain_key(key)
            if out is None and (new is not item or new_key is not key):
                out = {}
                for k, v in value.items():  # copy what came before unchanged
                    if k is key:
                        break
                    out[k] = v
            if out is not None:
                out[new_key] = new
        return value if out is None else out
    if kind is list:
        changed = None
        for i, item in enumerate(value):
            new = item if type(item) in _SCALARS else _nested(item, f"[{i}]")
            if new is not item:
                if changed is None:
                    changed = list(value)
                changed[i] = new
        return value if changed is None else changed
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, BaseModel):
        return _plain_model(value)
    if isinstance(value, Mapping):
        return {_plain_key(k): _nested(v, f".{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nested(v, f"[{i}]") for i, v in enumerate(value)]
    if isinstance(value, set | frozenset):
        items = [_nested(v, "[]") for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    raise _NotPlain(kind.__name__, [])


def _nested(value: Any, step: str) -> Any:
    try:
        return _plain(value)
    except _NotPlain as exc:
        exc.path.append(step)
        raise


def _plain_key(key: Any) -> str | int:
    if isinstance(key, Enum):
        key = key.value
    if isinstance(key, str):
        return str(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return int(key)
    raise _NotPlain(f"{type(key).__name__} key", [])


def _plain_model(model: BaseModel) -> dict[str, Any]:
    frozen = bool(model.model_config.get("frozen"))
    if frozen:
        hit = _PLAIN_CACHE.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
    out = {name: _nested(getattr(model, name), f".{name}") for name in type(model).model_fields}
    for name in _properties(type(model)):
        if name not in out:
            try:
                out[name] = _plain(getattr(model, name))
            except Exception:  # a property that fails or returns non-data is left out
                continue
    if frozen:
        if len(_PLAIN_CACHE) >= _PLAIN_CACHE_SIZE:
            _PLAIN_CACHE.clear()
        _PLAIN_CACHE[id(model)] = (model, out)
    return out


@functools.cache
def _properties(cls: type) -> tuple[str, ...]:
    names = []
    for klass in cls.__mro__:
        if klass in (BaseModel, object):
            continue
        for name, attr in vars(klass).items():
            if isinstance(attr, property) and not name.startswith("_") and name not in names:
                names.append(name)
    return tuple(names)


# ----------------------------------------------------------------------------- rendering
def _rendered(
    shared: tuple[Any, ...], name: str, block: Any, context: Any, *, strip: bool = False
) -> str:
    """One block's text in ``context`` (stripped of surrounding whitespace with ``strip``), from
    the block cache when every value it reads is frozen or a short scalar (``shared``: the
    template, its ``where``, its text, the names its blocks read, the raw values). The cache
    keeps the text as returned, so every rendering of a shared block returns the same string
    object (one copy of a long system prompt, whatever the number of requests holding it). A
    module function: a function kept in the context's blocks that held the context would tie
    every rendering into a reference cycle, with the record's texts in it.

    Raises:
        LocaleError: the block rendered more than :data:`MAX_CHARS` characters.
    """
    template, where, text, reads, raw = shared
    key = _block_key(text, name, reads.get(name, frozenset({"\0dynamic"})), raw)
    if key is not None:
        key += (strip,)
        hit = _BLOCK_CACHE.get(key)
        if hit is not None:
            return hit
    pieces: list[str] = []
    size = 0
    gen = block(context)
    for piece in gen:
        size += len(piece)
        if size > MAX_CHARS:
            frame = getattr(gen, "gi_frame", None)
            line = template.get_corresponding_lineno(frame.f_lineno) if frame else None
            raise LocaleError(
                f"template refused by the sandbox: block '{name}' rendered more than "
                f"{MAX_CHARS:,} characters",
                where=f"{where}:{line}" if line else where,
                hint=_SANDBOX_HINT,
            )
        pieces.append(piece)
    out = "".join(pieces)
    if strip:
        out = out.strip()
    if key is not None:
        if len(_BLOCK_CACHE) >= _BLOCK_CACHE_SIZE:
            _BLOCK_CACHE.clear()
        _BLOCK_CACHE[key] = out
    return out


def _included(shared: tuple[Any, ...], name: str, block: Any, context: Any) -> Iterator[str]:
    """An included block, as jinja calls it from the block that includes it."""
    yield _rendered(shared, name, block, context)


def render_chat(loc: Locale, role: str, **context: Any) -> tuple[Message, ...]:
    """Render ``prompts/<role>.j2`` of ``loc`` into chat messages, in the sandbox.

    Args:
        loc: the locale pack; the template also sees it, as plain data, as ``locale``.
        role: the template's name (``prompts/<role>.j2``).
        context: the template's values; converted with :func:`plain` first.

    Returns:
        ``(system, user)`` messages, or ``(user,)`` when the system block is absent or renders
        empty; each content stripped of surrounding whitespace.

    Raises:
        LocaleError: ``where`` = ``prompts/<role>.j2[:line]`` when the template is missing, has
            no user block, has a syntax error, uses a value it was not given, breaks a sandbox
            rule (underscore attributes, mutation, size or work bounds) or fails in any other
            way while rendering.
        TypeError: when a caller passes a value that is not plain data (a koalign bug).
    """
    template = _template(loc, role)
    where = f"prompts/{role}.j2"
    if "user" not in template.blocks:
        raise LocaleError(
            "template has no {% block user %}", where=where, hint="see docs/locale-format.md"
        )
    values = {"locale": plain(loc, where="locale")}
    values.update({k: plain(v, where=k) for k, v in context.items()})
    raw = {"locale": loc, **context}
    text = loc.prompts[role]
    reads = _block_names(text)
    ctx = template.new_context(values)
    token = _BUDGET.set(_Budget())
    parts: dict[str, str] = {}

    # a block other than system and user is text the two include (nested in them, or with
    # ``{{ self.name() }}``): rendered where it is included, and only once while the frozen values
    # it reads stay the same (e.g. a policy's statutes and contacts, shared by every record of a
    # category)
    shared = (template, where, text, reads, raw)
    for name, block in template.blocks.items():
        if name not in _MESSAGE_BLOCKS:
            ctx.blocks[name] = [functools.partial(_included, shared, name, block)]
    try:
        for name in _MESSAGE_BLOCKS:
            if name in template.blocks:
                parts[name] = _rendered(shared, name, template.blocks[name], ctx, strip=True)
    except jinja2.UndefinedError as exc:
        raise _render_error(template, where, exc, "undefined") from None
    except (SecurityError, jinja2.TemplateNotFound) as exc:
        raise _render_error(template, where, exc, "sandbox") from None
    except Exception as exc:  # TypeError, ZeroDivisionError, RecursionError, MemoryError ...
        raise _render_error(template, where, exc, "other") from None
    finally:
        _BUDGET.reset(token)
    messages = []
    if parts.get("system"):
        messages.append(Message(role="system", content=parts["system"]))
    messages.append(Message(role="user", content=parts["user"]))
    return tuple(messages)


def _render_error(
    template: jinja2.Template, where: str, exc: BaseException, kind: str
) -> LocaleError:
    line = _template_line(template, exc)
    at = f"{where}:{line}" if line else where
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if kind == "undefined" and "unsafe" not in text:
        return LocaleError(
            f"template needs a value it was not given: {text}",
            where=at,
            hint="use only the values the template is given, or `x | default(...)` for one that "
            "may be absent (see docs/locale-format.md)",
        )
    if kind in ("sandbox", "undefined"):
        return LocaleError(
            f"template refused by the sandbox: {text}",
            where=at,
            hint=_SANDBOX_HINT,
        )
    return LocaleError(f"template failed while rendering: {type(exc).__name__}: {text}", where=at)


def _template_line(template: jinja2.Template, exc: BaseException) -> int | None:
    """The template line of the innermost frame of ``exc`` that runs compiled template code."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>" and frame.lineno is not None:
            line = template.get_corresponding_lineno(frame.lineno)
    return line
