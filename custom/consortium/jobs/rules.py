"""The rules a job config's values are checked by: small checks that raise ConfigurationError
naming the file, the field and the value, and :class:`Spec`, one component's arguments.

A check is ``check(value, where, ctx)``; ``where`` is the field's location in the file (e.g.
``workflows[0].args.num_rounds``), ``ctx`` the file, the consortium's sites and the component ids
of the file. Numbers are finite ints or floats; a bool is neither a number nor an integer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import NoReturn

from consortium.provisioning.project import ConfigurationError
from consortium.training_settings import is_integer, is_number

Check = Callable[[object, str, "Context"], None]
SHA256 = re.compile(r"[0-9a-f]{64}")


def show(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:117]}..."


@dataclass(frozen=True)
class Context:
    """Where the checks are: ``path`` (the file), ``sites`` (None: unknown), ``ids`` (the file's
    component ids)."""

    path: Path
    sites: tuple[str, ...] | None
    ids: frozenset[str] = frozenset()

    def with_ids(self, ids: frozenset[str]) -> Context:
        return replace(self, ids=ids)

    def error(self, text: str) -> NoReturn:
        raise ConfigurationError(f"{self.path}: {text}")

    def fail(self, where: str, value, rule: str) -> NoReturn:
        self.error(f"field {where} = {show(value)} {rule}")


def rule(test: Callable[[object], bool], why: str) -> Check:
    """A check from a test and the rule a refused value breaks ("must be ...")."""
    def check(value, where: str, ctx: Context) -> None:
        if not test(value):
            ctx.fail(where, value, why)
    return check


def integer(lo: int, hi: int) -> Check:
    return rule(lambda v: is_integer(v) and lo <= v <= hi, f"must be an integer in [{lo}, {hi}]")


def positive(hi: float) -> Check:
    return rule(lambda v: is_number(v) and 0 < v <= hi, f"must be a number in (0, {hi}]")


def non_negative(hi: float) -> Check:
    return rule(lambda v: is_number(v) and 0 <= v <= hi, f"must be a number in [0, {hi}]")


def one_of(values: Collection) -> Check:
    return rule(lambda v: not isinstance(v, bool) and isinstance(v, str | int) and v in values,
                f"must be one of {sorted(values)}")


def optional(check: Check) -> Check:
    def maybe(value, where: str, ctx: Context) -> None:
        if value is not None:
            check(value, where, ctx)
    return maybe


def null(why: str) -> Check:
    return rule(lambda v: v is None, f"must be null: {why}")


boolean = rule(lambda v: isinstance(v, bool), "must be true or false")
text = rule(lambda v: isinstance(v, str) and bool(v.strip()), "must be a non-empty string")
sha256 = rule(lambda v: isinstance(v, str) and SHA256.fullmatch(v) is not None, "must be 64 lower-case hex digits")
relative_path = rule(lambda v: isinstance(v, str) and bool(v) and "\\" not in v and not PurePosixPath(v).is_absolute()
                     and ".." not in PurePosixPath(v).parts, "must be a relative path that stays inside its folder")
file_name = rule(lambda v: isinstance(v, str) and v not in ("", ".", "..") and not set(v) & set("/\\"),
                 "must be a file name (no folder)")


def reference(value, where: str, ctx: Context) -> None:
    """The id of a component of the same file."""
    if not (isinstance(value, str) and value in ctx.ids):
        ctx.fail(where, value, f"must be the id of a component in this file {sorted(ctx.ids)}")


def site_count(value, where: str, ctx: Context) -> None:
    """A number of sites: an integer >= 1, at most the consortium's."""
    hi = len(ctx.sites) if ctx.sites is not None else None
    if not (is_integer(value) and value >= 1 and (hi is None or value <= hi)):
        ctx.fail(where, value, "must be a positive integer" + (f" at most the consortium's {hi} sites" if hi else ""))


def site(value, where: str, ctx: Context) -> None:
    if not (isinstance(value, str) and value):
        ctx.fail(where, value, "must be a site name")
    if ctx.sites is not None and value not in ctx.sites:
        ctx.fail(where, value, f"is not a site of this consortium {sorted(ctx.sites)}")


def list_of(check: Check, min_len: int = 0) -> Check:
    def each(value, where: str, ctx: Context) -> None:
        if not isinstance(value, list) or len(value) < min_len:
            ctx.fail(where, value, f"must be a list of at least {min_len} entr{'y' if min_len == 1 else 'ies'}")
        for i, v in enumerate(value):
            check(v, f"{where}[{i}]", ctx)
    return each


def strings(value, where: str, ctx: Context) -> None:
    list_of(text)(value, where, ctx)


def site_map(check: Check) -> Check:
    """An object mapping sites of the consortium to values."""
    def each(value, where: str, ctx: Context) -> None:
        if not isinstance(value, dict):
            ctx.fail(where, value, "must map site names to values")
        for k, v in value.items():
            if not k:
                ctx.error(f"field {where} has an empty site name")
            if ctx.sites is not None and k not in ctx.sites:
                ctx.error(f"field {where} names {k!r}, which is not a site of this consortium {sorted(ctx.sites)}")
            check(v, f"{where}[{k!r}]", ctx)
    return each


def object_of(node, where: str, ctx: Context, keys: Sequence[str], required: Sequence[str] = ()) -> dict:
    """``node`` as an object with only ``keys`` and every ``required`` key."""
    if not isinstance(node, dict):
        ctx.fail(where, node, f"must be a JSON object with {list(keys)}")
    for k in node:
        if k not in keys:
            ctx.fail(f"{where}.{k}", node[k], f"is not a field here (known: {list(keys)})")
    for k in required:
        if k not in node:
            ctx.error(f"field {where} lacks {k!r}")
    return node


def check_entries(value, where: str, ctx: Context) -> list[dict]:
    """A list of JSON objects."""
    if not isinstance(value, list):
        ctx.fail(where, value, "must be a list of JSON objects")
    for i, v in enumerate(value):
        if not isinstance(v, dict):
            ctx.fail(f"{where}[{i}]", v, "must be a JSON object")
    return value


def entries_of(config: dict, key: str, ctx: Context) -> list[dict]:
    return check_entries(config.get(key, []), key, ctx)


Combined = Callable[[dict, str, Context], None]


@dataclass(frozen=True)
class Spec:
    """One component's arguments: ``args`` (name: check), the ones it ``requires``, and
    ``combined`` checks of how they go together (run once each value passed its own). ``closed``:
    an argument without a check is refused (False: left alone, for FLARE's own sections)."""

    name: str
    args: Mapping[str, Check]
    requires: frozenset[str] = frozenset()
    combined: tuple[Combined, ...] = field(default=())
    closed: bool = True

    def check(self, args: dict, where: str, ctx: Context) -> None:
        for k, v in args.items():
            if k not in self.args and self.closed:
                ctx.fail(f"{where}.{k}", v, f"is not an argument of {self.name} (it takes {sorted(self.args)}); "
                                            "the component would fail to build at the site or the server")
        missing = sorted(self.requires - set(args))
        if missing:
            ctx.error(f"field {where} lacks {missing}, which {self.name} needs")
        for k, v in args.items():
            if k in self.args:
                self.args[k](v, f"{where}.{k}", ctx)
        for c in self.combined:
            c(args, where, ctx)

    def __call__(self, value, where: str, ctx: Context) -> None:
        """As a check of a nested object."""
        if not isinstance(value, dict):
            ctx.fail(where, value, f"must be a JSON object of {self.name}'s settings")
        self.check(value, where, ctx)


def typed(build: Callable[[dict], object], label: str, keys: Collection[str] | None = None) -> Combined:
    """A combined check: ``build`` (a typed config) from the args (only ``keys`` when given);
    its ValueError or TypeError is refused with the field named."""
    def check(args: dict, where: str, ctx: Context) -> None:
        chosen = {k: v for k, v in args.items() if keys is None or k in keys}
        try:
            build(chosen)
        except (ValueError, TypeError) as e:
            ctx.error(f"field {where}: {label}: {e}")
    return check
