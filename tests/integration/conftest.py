"""Session-wide real Prometheus components for the integration tests.

``node_exporter`` starts the Debian package's ``/usr/bin/prometheus-node-exporter``
once per session on ``127.0.0.1:<free port>`` and stops it at the end. When the
binary is absent, every test using it is skipped with the reason (CI installs
it, so there they run). Everything here is marked ``integration`` by
``tests/conftest.py``; ``pytest -m 'not integration'`` leaves it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the classes live in tests/conftest.py, which pytest loads itself
    from tests.conftest import BinaryRunner, RunningBinary

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


@pytest.fixture(scope="session")
def node_exporter(run_binary_session: BinaryRunner) -> RunningBinary:
    """A live node_exporter; ``node_exporter.url("/metrics")`` is its scrape URL."""
    return run_binary_session(NODE_EXPORTER, "--web.listen-address={address}", ready_path="/metrics")
