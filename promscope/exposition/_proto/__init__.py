"""Generated protobuf code for ``io.prometheus.client`` (see ``generate.sh``).

``metrics_pb2`` is gencode 5.29.0 so that every runtime pyproject allows
(``protobuf>=5.29,<8``) loads it. The 6.x runtimes accept gencode one major
version older but warn about it on import; that warning is about our build
choice, not the user's input, so it is silenced here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore",
        message=r"Protobuf gencode version .* is exactly one major version older",
        category=UserWarning,
    )
    from promscope.exposition._proto import metrics_pb2

__all__ = ["metrics_pb2"]
