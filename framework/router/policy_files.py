"""Reading policy files and the shipped policy data sets: the I/O half of ``edgeroute.policies``."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ...policies.config import PolicyConfig, PolicyConfigError, parse_policy_config
from ..errors import ConfigurationError, InputError

_FORMATS = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}


def _data_file(name: str) -> Path:
    return Path(str(resources.files("edgeroute.policies").joinpath("data", name)))


def default_policy_path() -> Path:
    """The documented default policy (``policies/data/default_policy.toml``); copy it to start your own."""
    return _data_file("default_policy.toml")


def default_high_stakes_path() -> Path:
    """The shipped labelled high-stakes vs normal queries (``policies/data/high_stakes.jsonl``)."""
    return _data_file("high_stakes.jsonl")


def load_policy_file(path: str | Path) -> PolicyConfig:
    """Load a TOML (``.toml``) or YAML (``.yaml``/``.yml``) policy file into a validated config.

    Raises :class:`ConfigurationError` naming the file and the problem (missing file, unknown
    extension, syntax error, unknown key, bad value and what is allowed).
    """
    p = Path(path)
    fmt = _FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ConfigurationError(
            f"policy file {p}: unknown extension {p.suffix or '(none)'!r}; name it .toml, .yaml or .yml"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"policy file {p} does not exist; start from {default_policy_path()}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"policy file {p} cannot be read: {exc}") from None
    try:
        return parse_policy_config(text, "toml" if fmt == "toml" else "yaml")
    except PolicyConfigError as exc:
        raise ConfigurationError(f"policy file {p}: {exc}") from None


def load_high_stakes_set(path: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Texts and labels (a route name or ``"normal"``) from a JSONL set of ``{"text", "label"}`` lines.

    ``path`` defaults to :func:`default_high_stakes_path`. Embed the texts on-device, then pass the
    vectors and labels to :func:`edgeroute.policies.semantic.fit_thresholds`.
    """
    p = Path(path) if path is not None else default_high_stakes_path()
    if not p.is_file():
        raise InputError(f"labelled high-stakes set {p} does not exist; omit the path to use the shipped one")
    texts: list[str] = []
    labels: list[str] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{p}:{n}: not valid JSON ({exc})") from None
        text, label = (row.get("text"), row.get("label")) if isinstance(row, dict) else (None, None)
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label:
            raise InputError(
                f'{p}:{n}: each line must be {{"text": "<query>", "label": "<route or normal>"}}'
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise InputError(f"labelled high-stakes set {p} has no rows")
    return texts, labels


__all__ = ["default_high_stakes_path", "default_policy_path", "load_high_stakes_set", "load_policy_file"]
