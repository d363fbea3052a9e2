"""The round record: what the server records about one round, and the one contract between the
aggregator that makes it and everything that reads it (the progress file ``progress.jsonl`` that
``consortium job submit`` follows and the report reads, the model registries, the metrics exporter).

:class:`RoundSummary` is what the round's arithmetic knows (made by
:func:`~consortium.aggregation.round_summary.summarise_round`): who contributed, who was rejected
and why, who withheld its result and why, what was missing, mean training loss and pooled score.
``rejected`` holds every result that was not combined, with the server's reason; ``withheld`` those
of them the site itself held back, with the reason the site gave in its result's refusal header.

:class:`RoundRecord` adds what only the FLARE side knows: the round's start (``started_at``), each
site's response time (``site_seconds``), training loss (``site_train_loss``), update bytes
(``site_update_bytes``) and HE time (``site_he_seconds``), the server's time to read
(``load_seconds``) and to check and combine (``combine_seconds``) the results, the quarantined
sites and the incident controls applied before the round.

One writer, :meth:`RoundRecord.to_dict` (one JSON line of ``progress.jsonl`` with
:meth:`~RoundRecord.to_json_line`; the keys in this order, as the FLARE aggregator has always
written them), and one reader, :meth:`RoundRecord.from_dict`, which fails closed: a missing,
unknown or ill-typed field is a ValueError naming the field. Pure: no FLARE import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class RoundSummary:
    round: int
    sites: int
    mean_train_loss: float
    pooled_score: float
    metric: str = "accuracy"
    contributors: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # site -> reason
    incomplete: dict[str, list[str]] = field(default_factory=dict)  # site -> reporting fields it lacked
    max_train_seconds: float | None = None  # the slowest site's local training time
    local_steps: dict[str, int] = field(default_factory=dict)
    finished_at: float | None = None  # wall-clock time the round's update was made
    site_norms: dict[str, float] = field(default_factory=dict)  # L2 norm of each accepted update
    site_cosines: dict[str, float] = field(default_factory=dict)  # cosine to the previous global update
    alerts: dict[str, str] = field(default_factory=dict)  # site -> why its update is an outlier
    epsilon: dict[str, float] = field(default_factory=dict)  # site -> its privacy loss for this job so far (DP)
    withheld: dict[str, str] = field(default_factory=dict)  # site -> the reason it gave for sending no update

    def to_dict(self) -> dict:
        return asdict(self)

    def with_withheld(self, withheld: Mapping[str, str]) -> RoundSummary:
        """This record with ``withheld`` (site -> the reason the site gave) added."""
        return replace(self, withheld=dict(sorted({**self.withheld, **withheld}.items()))) if withheld else self

    def line(self, total_sites: int | None = None) -> str:
        of = f"/{total_sites}" if total_sites else ""
        text = (f"round {self.round:3d}  sites {self.sites}{of}  mean loss {self.mean_train_loss:.4f}  "
                f"pooled {self.metric} {self.pooled_score:.3f}")
        rejected = {s: r for s, r in self.rejected.items() if s not in self.withheld}
        if rejected:
            text += "  rejected: " + "; ".join(f"{s} ({r})" for s, r in sorted(rejected.items()))
        if self.withheld:  # the site's own words (its reason is also in ``rejected``)
            text += "  withheld: " + "; ".join(f"{s} ({r})" for s, r in sorted(self.withheld.items()))
        if self.incomplete:
            text += "  incomplete: " + ", ".join(sorted(self.incomplete))
        if self.alerts:
            text += "  ALERT: " + "; ".join(f"{s}: {r}" for s, r in sorted(self.alerts.items()))
        return text


@dataclass(frozen=True)
class RoundRecord(RoundSummary):
    started_at: float | None = None  # wall-clock time the workflow broadcast the round
    site_seconds: dict[str, float] = field(default_factory=dict)  # site -> seconds from the start to its result
    site_train_loss: dict[str, float] = field(default_factory=dict)  # of the combined sites
    site_update_bytes: dict[str, int] = field(default_factory=dict)  # array (or ciphertext) bytes received
    site_he_seconds: dict[str, float] = field(default_factory=dict)  # the sites' own HE time
    combine_seconds: float | None = None  # the server's time to check and combine the results
    load_seconds: float | None = None  # the server's time to read them (under HE: deserialise ciphertexts)
    quarantined: dict[str, str] = field(default_factory=dict)  # site -> the quarantine's line
    incidents: list[str] = field(default_factory=list)  # incident controls applied before the round

    def to_json_line(self) -> str:
        """One line of ``progress.jsonl`` (without its newline)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "round record") -> RoundRecord:
        """The one reader: ValueError naming ``where`` and the field when ``data`` does not follow the contract."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known), key=str)
        if unknown:
            raise ValueError(f"{where}: unknown field {unknown[0]!r}")
        for name, f in known.items():
            if name in data:
                _TYPES[f.type](data[name], f"{where}: field {name!r}")
            elif f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"{where}: field {name!r} missing")
        return cls(**data)

    @classmethod
    def from_json_line(cls, line: str, where: str = "round record") -> RoundRecord:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from None
        return cls.from_dict(data, where)


def _fail(what: str, want: str, value) -> None:
    raise ValueError(f"{what} must be {want}, got {value!r:.80}")


def _int(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(what, "an integer", value)


def _number(value, what: str) -> None:  # NaN included: a round without a reported loss has a NaN mean
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(what, "a number", value)


def _str(value, what: str) -> None:
    if not isinstance(value, str):
        _fail(what, "a string", value)


def _optional(check):
    return lambda value, what: None if value is None else check(value, what)


def _list(check):
    def checked(value, what: str) -> None:
        if not isinstance(value, list):
            _fail(what, "a list", value)
        for i, v in enumerate(value):
            check(v, f"{what} at [{i}]")
    return checked


def _by_site(check):
    def checked(value, what: str) -> None:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(what, "an object keyed by site", value)
        for k, v in value.items():
            check(v, f"{what} at {k!r}")
    return checked


_TYPES = {  # a field's annotation -> its check
    "int": _int, "float": _number, "str": _str, "float | None": _optional(_number), "list[str]": _list(_str),
    "dict[str, str]": _by_site(_str), "dict[str, int]": _by_site(_int), "dict[str, float]": _by_site(_number),
    "dict[str, list[str]]": _by_site(_list(_str)),
}
