"""The catalogue of diagnostic codes, gathered from the modules that emit them.

Every module that emits diagnostics declares ``CODES: dict[str, Code]``;
:func:`all_codes` merges them and refuses a code declared twice. Codes are
stable: a code, once released, keeps its meaning.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from promscope.model import Severity

__all__ = ["Code", "all_codes"]

_MODULES = (
    "promscope.exposition._decode",
    "promscope.exposition.text",
    "promscope.exposition.openmetrics",
    "promscope.exposition.protobuf",
    "promscope.exposition.semantics",
    "promscope.check.lint",
    "promscope.check.cardinality",
    "promscope.receive.remote_write",
    "promscope.receive.otlp",
    "promscope.receive.statsd",
    "promscope.receive.groups",
)


@dataclass(frozen=True, slots=True)
class Code:
    """A diagnostic code: its default severity and a one-line summary."""

    severity: Severity
    summary: str


def all_codes() -> dict[str, Code]:
    """Every code promscope can emit, by code."""
    merged: dict[str, Code] = {}
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        codes: dict[str, Code] = module.CODES
        for code, info in codes.items():
            if code in merged:
                raise RuntimeError(f"diagnostic code {code} declared twice (again in {module_name})")
            merged[code] = info
    return dict(sorted(merged.items()))
