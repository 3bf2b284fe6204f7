"""Observation: the one value every door produces."""

from __future__ import annotations

import dataclasses

import pytest

from promscope.model import Diagnostic, Severity
from promscope.observation import Changes, Observation, ObservationKind, Outcome, Transport


def make(outcome: Outcome = Outcome.ACCEPTED, *diagnostics: Diagnostic) -> Observation:
    return Observation(
        kind=ObservationKind.PUSHGATEWAY,
        source="job=batch",
        time=1_700_000_000.0,
        outcome=outcome,
        transport=Transport("http", sender="127.0.0.1:5000", method="PUT", grouping_key=(("job", "batch"),)),
        diagnostics=diagnostics,
    )


def test_transport_extra_defaults_to_an_empty_read_only_mapping() -> None:
    transport = Transport("udp")
    assert dict(transport.extra) == {}
    with pytest.raises(TypeError):
        transport.extra["x"] = "y"  # type: ignore[index]


def test_observations_are_frozen_values() -> None:
    observation = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        observation.source = "other"  # type: ignore[misc]
    assert observation == make()


@pytest.mark.parametrize(
    ("outcome", "accepted"),
    [(Outcome.ACCEPTED, True), (Outcome.PARTIAL, True), (Outcome.REJECTED, False), (Outcome.FAILED, False)],
)
def test_accepted_covers_partial_pushes(outcome: Outcome, accepted: bool) -> None:
    assert make(outcome).accepted is accepted


def test_errors_are_the_error_diagnostics() -> None:
    error = Diagnostic("PS-201", Severity.ERROR, 3, 7, "expected '='")
    warning = Diagnostic("SEM-012", Severity.WARNING, 4, 0, "not canonical")
    assert make(Outcome.REJECTED, error, warning).errors() == (error,)


def test_changes_know_when_nothing_changed() -> None:
    assert Changes().empty
    assert not Changes(series_added=1).empty
    assert not Changes(families_removed=("foo",)).empty
