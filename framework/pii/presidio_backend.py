"""Named entities from Microsoft Presidio (presidio-analyzer + spaCy pipelines), an optional backend.

Install with ``pip install 'edgeroute[presidio]'`` plus one spaCy pipeline per language you scan (for
example ``en_core_web_sm``, ``es_core_news_sm``). Pipelines are loaded from installed packages only:
nothing is downloaded at run time. Each text is analysed in the language :func:`_guess_language`
picks among the configured ones, because an English pipeline run on Spanish flags most lines.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigurationError

_INSTALL = (
    "the presidio backend needs presidio-analyzer and spaCy pipelines: pip install 'edgeroute[presidio]', then "
    "install a pipeline package per language (e.g. en_core_web_sm, es_core_news_sm) from a source you trust"
)

# Presidio entity types -> edgeroute kinds (unlisted types are dropped).
KIND_OF: dict[str, str] = {
    "PERSON": "person",
    "LOCATION": "location",
    "GPE": "location",
    "DATE_TIME": "date",
    "NRP": "organization",
    "ORGANIZATION": "organization",
    "ORG": "organization",
    "MEDICAL_LICENSE": "id_number",
    "US_DRIVER_LICENSE": "id_number",
    "US_PASSPORT": "id_number",
    "UK_NHS": "id_number",
    "ES_NIF": "id_number",
    "IT_FISCAL_CODE": "id_number",
}

_SPANISH = re.compile(r"(?i)\b(?:el|la|los|las|del|que|con|años|paciente|nacid[oa])\b|[ñ¿¡]")


def _guess_language(text: str, languages: tuple[str, ...]) -> str:
    if "es" in languages and len(_SPANISH.findall(text)) >= 2:
        return "es"
    return languages[0]


class PresidioBackend:
    """Presidio's AnalyzerEngine over the spaCy pipelines named in ``models`` (language -> package)."""

    name = "presidio"

    def __init__(self, models: dict[str, str] | None = None) -> None:
        try:
            from presidio_analyzer import AnalyzerEngine
            from presidio_analyzer.nlp_engine import NlpEngineProvider
        except ImportError as exc:
            raise ConfigurationError(_INSTALL) from exc
        models = models or {"en": "en_core_web_sm", "es": "es_core_news_sm"}
        import importlib.util

        missing = [m for m in models.values() if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigurationError(f"spaCy pipeline(s) {missing} are not installed; {_INSTALL}")
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": k, "model_name": v} for k, v in models.items()],
            }
        )
        self.languages = tuple(models)
        self._engine: Any = AnalyzerEngine(
            nlp_engine=provider.create_engine(), supported_languages=list(models)
        )

    def entities(self, text: str, thresholds: dict[str, float]) -> list[tuple[str, int, int, float]]:
        lang = _guess_language(text, self.languages)
        out = []
        for r in self._engine.analyze(text=text, language=lang):
            kind = KIND_OF.get(r.entity_type)
            if kind is not None and kind in thresholds and r.score >= thresholds[kind]:
                out.append((kind, int(r.start), int(r.end), float(r.score)))
        return out


__all__ = ["KIND_OF", "PresidioBackend"]
