"""The validated policy configuration, and parsing it from TOML or YAML text.

Parsing takes text, not a path, so this module stays free of I/O; reading files is
``edgeroute.framework.router.policy_files.load_policy_file``. Every problem raises
:class:`PolicyConfigError` naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .decision import Sensitivity

PII_DETECTORS: tuple[str, ...] = (
    "email",
    "phone",
    "payment_card",
    "iban",
    "national_id",
    "ip_address",
    "api_key",
    "private_key",
    "high_entropy",
    "user_terms",
    "user_patterns",
)
"""Every detector name :mod:`edgeroute.policies.pii` knows, in the order it runs them."""


ENTITY_KINDS: tuple[str, ...] = (
    "person",
    "street_address",
    "location",
    "date",
    "age",
    "organization",
    "id_number",
    "health",
)
"""Named-entity kinds the on-device recogniser (``edgeroute.framework.pii``) can report."""

DEFAULT_ENTITY_KINDS: tuple[str, ...] = ENTITY_KINDS[:-1]
"""Kinds a policy acts on by default: every kind but ``health``, which a policy opts into."""

DEFAULT_LINKED_ONLY: tuple[str, ...] = ("location", "organization")
"""Kinds reported only beside a finding of another kind (see :class:`EntityConfig`)."""

DEFAULT_ENTITY_THRESHOLDS: dict[str, float] = {
    "person": 0.5,
    "street_address": 0.5,
    "location": 0.5,
    "date": 0.5,
    "age": 0.5,
    "organization": 0.5,
    "id_number": 0.5,
    "health": 0.5,
}
"""Minimum span score per kind (the head's mean probability over the span's tokens)."""

DEFAULT_PHONE_REGIONS: tuple[str, ...] = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "IN", "MX", "BR", "JP", "CN", "RU", "CH", "AT", "BE",
)  # fmt: skip
"""Regions national-format phone numbers (no ``+``) are validated against, in order; ``+`` numbers are
validated for every region by their country code."""


class PolicyConfigError(ValueError):
    """A policy configuration is invalid; the message says which key and what is allowed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConfidenceConfig(_Frozen):
    """Edge-first escalation: below either threshold the query is escalated to hybrid."""

    min_top1: float = Field(
        default=0.45, ge=-1.0, le=1.0, description="cosine similarity of the best edge hit"
    )
    min_margin: float = Field(default=0.02, ge=0.0, le=2.0, description="best minus second-best edge score")


class BudgetConfig(_Frozen):
    """The cloud counts as unaffordable once ``budget_left <= reserve`` (same unit as the engine's budget)."""

    reserve: float = Field(default=0.0, ge=0.0)


class HedgingConfig(_Frozen):
    """Deadline handling. The engine hedges (edge answer at once, cloud raced against the deadline)
    when ``enabled``; deadlines shorter than ``skip_cloud_below_ms`` do not try the cloud at all.

    ``default_deadline_ms`` applies to a query that sets no deadline of its own, so an interactive
    query never waits out the cloud client's whole retry budget (10 s timeout x retries: ~27 s).
    3,000 ms: the edge answer is ready in tens of milliseconds; Gemini's embedding calls answer in a
    few hundred, and 3 s still leaves room for one retry after a 429/503 with its back-off, while a
    person waiting at a prompt gets an answer (degraded, flagged) instead of a hang. ``0`` (or
    ``None``) waits for the cloud as long as its own timeouts allow (batch jobs that want every cloud
    answer)."""

    enabled: bool = True
    skip_cloud_below_ms: float = Field(default=0.0, ge=0.0)
    default_deadline_ms: float | None = Field(default=3000.0, ge=0.0)


class UserPattern(_Frozen):
    """A named regular expression whose matches count as PII (``kind`` = ``name``)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    regex: str = Field(min_length=1)
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        if compiled.fullmatch(""):
            raise ValueError("matches the empty string, so it would flag every text; make it match something")
        return value


class EntityConfig(_Frozen):
    """Named-entity PII (names, addresses, dates, ...) recognised on the device by a model.

    ``backend``: ``"head"`` (the token-classification head on the edge model's own token states; no
    second model) or ``"presidio"`` (presidio-analyzer with spaCy pipelines, the ``presidio`` extra).
    ``kinds``: which kinds the policy acts on; others are not reported. ``thresholds``: minimum score
    per kind; a kind without one uses :data:`DEFAULT_ENTITY_THRESHOLDS`. ``linked_only``: kinds reported
    only in a text that also holds a finding of another kind (a person's name, an address, an e-mail,
    a phone, an ID, a date...): a place or a company on its own ("the Battle of Bull Run", "Nintendo
    DS", "held in London") identifies nobody, while "Maria Ivanova from Kazan" keeps both. ``()``
    reports them alone too.
    """

    enabled: bool = True
    backend: Literal["head", "presidio"] = "head"
    kinds: tuple[str, ...] = DEFAULT_ENTITY_KINDS
    thresholds: dict[str, float] = Field(default_factory=dict)
    linked_only: tuple[str, ...] = DEFAULT_LINKED_ONLY

    @field_validator("kinds", "linked_only")
    @classmethod
    def _known_kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in value if k not in ENTITY_KINDS]
        if unknown:
            raise ValueError(f"unknown entity kind(s) {unknown}; allowed: {', '.join(ENTITY_KINDS)}")
        return tuple(dict.fromkeys(value))

    @field_validator("thresholds")
    @classmethod
    def _valid_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in value if k not in ENTITY_KINDS]
        if unknown:
            raise ValueError(f"thresholds for unknown kind(s) {unknown}; allowed: {', '.join(ENTITY_KINDS)}")
        bad = {k: v for k, v in value.items() if not 0.0 < v <= 1.0}
        if bad:
            raise ValueError(f"thresholds must lie in (0, 1]; got {bad}")
        return value

    def threshold(self, kind: str) -> float:
        return self.thresholds.get(kind, DEFAULT_ENTITY_THRESHOLDS[kind])

    def active(self) -> dict[str, float]:
        """The kinds acted on, each with its threshold (empty when disabled)."""
        return {k: self.threshold(k) for k in self.kinds} if self.enabled else {}


class PiiConfig(_Frozen):
    """On-device PII and secret detection settings."""

    enabled: bool = True
    detectors: tuple[str, ...] = PII_DETECTORS
    terms: tuple[str, ...] = ()
    terms_ignore_case: bool = True
    patterns: tuple[UserPattern, ...] = ()
    entropy_threshold: float = Field(default=3.7, ge=1.0, le=8.0, description="Shannon bits per character")
    entropy_min_length: int = Field(default=24, ge=8, le=4096)
    phone_regions: tuple[str, ...] = DEFAULT_PHONE_REGIONS
    entities: EntityConfig = Field(default_factory=EntityConfig)

    @field_validator("phone_regions")
    @classmethod
    def _region_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise ValueError(f"phone regions must be ISO 3166 alpha-2 codes in capitals (US, DE); got {bad}")
        return value

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [d for d in value if d not in PII_DETECTORS]
        if unknown:
            raise ValueError(f"unknown detector(s) {unknown}; allowed: {', '.join(PII_DETECTORS)}")
        return tuple(dict.fromkeys(value))

    @field_validator("terms")
    @classmethod
    def _non_blank_terms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in value):
            raise ValueError("contains an empty term; every term must have visible characters")
        return value

    @model_validator(mode="after")
    def _unique_pattern_names(self) -> PiiConfig:
        names = [p.name for p in self.patterns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pattern names must be unique; repeated: {dupes}")
        return self


class SemanticConfig(_Frozen):
    """High-stakes detection by semantic routes (thresholds come from ``edgeroute policy fit``)."""

    enabled: bool = True
    min_margin: float = Field(default=0.0, ge=0.0, le=2.0)
    thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _in_range(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not -1.0 <= v <= 2.0}
        if bad:
            raise ValueError(f"similarity thresholds must lie in [-1, 2] (2 disables a route); got {bad}")
        return value


class PolicyConfig(_Frozen):
    """The whole routing policy. Defaults are the safe choice; see ``docs/policies.md``."""

    version: Literal[1] = 1
    cloud_ceiling: Sensitivity = "internal"
    redact_then_send: bool = False
    on_media_without_cloud: Literal["error", "text_only"] = "error"
    confidence: ConfidenceConfig = Field(default_factory=ConfidenceConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    hedging: HedgingConfig = Field(default_factory=HedgingConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = PolicyConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        args = getattr(ann, "__args__", ())
        nested = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return []
        model = nested
    return sorted(model.model_fields)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = _key_path(loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            lines.append(f"unknown key `{key}`; allowed here: {', '.join(allowed)}")
            continue
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"`{key}` = {err.get('input')!r}: {msg}")
    return "invalid policy config: " + "; ".join(lines)


def policy_config_from_mapping(data: Any) -> PolicyConfig:
    """Validate an already-parsed mapping (a top-level ``policy`` table is unwrapped)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyConfigError(
            f"a policy config must be a mapping of keys to values, got {type(data).__name__}"
        )
    if set(data) == {"policy"} and isinstance(data["policy"], dict):
        data = data["policy"]
    try:
        return PolicyConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyConfigError(_describe(exc)) from None


def parse_policy_config(text: str, fmt: Literal["toml", "yaml"]) -> PolicyConfig:
    """Parse policy text in ``fmt`` (``"toml"`` or ``"yaml"``) into a validated :class:`PolicyConfig`."""
    if fmt == "toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyConfigError(f"policy config is not valid TOML: {exc}") from None
    elif fmt == "yaml":
        import yaml  # lazy: only YAML users pay for it

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyConfigError(f"policy config is not valid YAML: {exc}") from None
    else:
        raise PolicyConfigError(f"unknown policy config format {fmt!r}; use 'toml' or 'yaml'")
    return policy_config_from_mapping(data)


__all__ = [
    "DEFAULT_ENTITY_KINDS",
    "DEFAULT_ENTITY_THRESHOLDS",
    "DEFAULT_PHONE_REGIONS",
    "ENTITY_KINDS",
    "PII_DETECTORS",
    "BudgetConfig",
    "ConfidenceConfig",
    "EntityConfig",
    "HedgingConfig",
    "PiiConfig",
    "PolicyConfig",
    "PolicyConfigError",
    "SemanticConfig",
    "UserPattern",
    "parse_policy_config",
    "policy_config_from_mapping",
]
