"""Ignoring diagnostics and overriding their severity, by code and metric glob.

An ignore is written ``CODE[:METRIC-GLOB]``: ``LINT-001`` ignores every "no
help text", ``LINT-*:go_*`` every lint finding about a ``go_…`` family. Both
parts are shell globs (:func:`fnmatch.fnmatchcase`); the metric part may itself
contain colons (recording-rule names do), only the first colon separates.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from promscope.model import Diagnostic, Severity

__all__ = ["Ignore", "SeverityOverrides", "code_is_known", "is_code_pattern", "known_codes"]

_CODE = re.compile(r"^[A-Z]{2,5}-[0-9]{3}$")
_CODE_GLOB = re.compile(r"^[A-Z0-9*?\[\]!-]+$")
_GLOB_CHARS = frozenset("*?[")


def is_code_pattern(text: str) -> bool:
    """True for a code (``LINT-001``) or a code glob (``LINT-*``, ``*``)."""
    if _CODE.match(text):
        return True
    return bool(_CODE_GLOB.match(text)) and any(c in _GLOB_CHARS for c in text)


def _is_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def known_codes() -> frozenset[str]:
    """Every code declared by the modules that import (a module that fails is left out)."""
    from promscope import codes

    found: set[str] = set()
    for module_name in codes._MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found.update(getattr(module, "CODES", {}))
    return frozenset(found)


def code_is_known(code: str, known: Collection[str]) -> bool:
    """Whether ``code`` can be checked and is in ``known``; a glob, or a family
    (``XX-``) no loaded module declares, is given the benefit of the doubt."""
    if _is_glob(code):
        return True
    if code in known:
        return True
    family = code.split("-", 1)[0] + "-"
    return not any(k.startswith(family) for k in known)


@dataclass(frozen=True, slots=True)
class Ignore:
    """Drop diagnostics whose code matches ``code`` and, when given, whose metric matches ``metric``."""

    code: str
    metric: str | None = None

    @classmethod
    def parse(cls, text: str, known: Collection[str] | None = None) -> Ignore:
        """Read ``CODE[:METRIC-GLOB]``; raises :class:`ValueError` saying what is wrong.

        With ``known``, a plain code (no glob) must be one of them.
        """
        raw = text.strip()
        code, sep, metric = raw.partition(":")
        code = code.strip().upper()
        metric = metric.strip()
        if not code:
            raise ValueError(f"ignore {text!r} has no code (expected CODE or CODE:METRIC-GLOB)")
        if not is_code_pattern(code):
            raise ValueError(f"ignore {text!r}: {code!r} is not a diagnostic code like LINT-001 or LINT-*")
        if known is not None and not code_is_known(code, known):
            raise ValueError(f"ignore {text!r}: unknown code {code}")
        if sep and not metric:
            raise ValueError(f"ignore {text!r} has an empty metric glob after ':'")
        return cls(code, metric or None)

    def matches(self, diagnostic: Diagnostic) -> bool:
        if not fnmatchcase(diagnostic.code, self.code):
            return False
        if self.metric is None:
            return True
        return diagnostic.metric is not None and fnmatchcase(diagnostic.metric, self.metric)

    def matches_code_metric(self, code: str, metric: str | None) -> bool:
        if not fnmatchcase(code, self.code):
            return False
        return self.metric is None or (metric is not None and fnmatchcase(metric, self.metric))

    def __str__(self) -> str:
        return self.code if self.metric is None else f"{self.code}:{self.metric}"


class SeverityOverrides:
    """Severity per code: an exact code wins over a glob, globs apply in the order given."""

    __slots__ = ("_exact", "_globs", "_resolved")

    def __init__(self, overrides: Mapping[str, Severity] | Iterable[tuple[str, Severity]] = ()) -> None:
        items = overrides.items() if isinstance(overrides, Mapping) else overrides
        self._exact: dict[str, Severity] = {}
        self._globs: list[tuple[str, Severity]] = []
        for code, severity in items:
            if _is_glob(code):
                self._globs.append((code, severity))
            else:
                self._exact[code] = severity
        self._resolved: dict[str, Severity | None] = {}
        """What :meth:`get` answered per code, so globs are matched once per code."""

    def __bool__(self) -> bool:
        return bool(self._exact or self._globs)

    def get(self, code: str) -> Severity | None:
        try:
            return self._resolved[code]
        except KeyError:
            pass
        found = self._exact.get(code)
        if found is None:
            found = next((severity for pattern, severity in self._globs if fnmatchcase(code, pattern)), None)
        self._resolved[code] = found
        return found

    def apply(self, diagnostic: Diagnostic) -> Diagnostic:
        severity = self.get(diagnostic.code)
        if severity is None or severity is diagnostic.severity:
            return diagnostic
        return Diagnostic(
            diagnostic.code,
            severity,
            diagnostic.line,
            diagnostic.column,
            diagnostic.message,
            diagnostic.metric,
        )
