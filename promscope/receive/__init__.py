"""Push listeners on the caller's asyncio loop: Pushgateway API, StatsD/DogStatsD, remote_write, OTLP.

Every receiver turns what arrives into :class:`~promscope.observation.Observation`
values and hands them to an :data:`~promscope.observation.ObservationSink`.

* :mod:`promscope.receive.http`: the HTTP/1.1 server the HTTP receivers share
  (routes, limits, body decoding, auth, TLS).
* :mod:`promscope.receive.log`: :class:`PushLog`, a bounded log of observations with
  per-sender and per-source statistics.
* :mod:`promscope.receive.server`: :class:`ReceiverServer`, which runs several receivers,
  one HTTP server per address, with a shared ``/metrics``.

Submodules load on first use, so ``import promscope.receive`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Auth",
    "HttpLimits",
    "HttpServer",
    "PushLog",
    "ReceiverServer",
    "RefusedRequest",
    "Request",
    "Response",
    "Route",
    "ServerTLS",
]

_LAZY = {
    "Auth": "promscope.receive.http",
    "HttpLimits": "promscope.receive.http",
    "HttpServer": "promscope.receive.http",
    "RefusedRequest": "promscope.receive.http",
    "Request": "promscope.receive.http",
    "Response": "promscope.receive.http",
    "Route": "promscope.receive.http",
    "ServerTLS": "promscope.receive.http",
    "PushLog": "promscope.receive.log",
    "ReceiverServer": "promscope.receive.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'promscope.receive' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
