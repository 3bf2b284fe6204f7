"""Generated protobuf code for the remote_write and OTLP receivers (see ``generate.sh``).

* ``remote_write_v1_pb2``: remote_write 1.0 ``WriteRequest``;
* ``remote_write_v2_pb2``: remote_write 2.0 ``io.prometheus.write.v2.Request``;
* ``rpc_status_pb2``: ``google.rpc.Status``, the OTLP/HTTP error body.

Each module is gencode 5.29.0 so that every runtime pyproject allows
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
    from promscope.receive._proto import remote_write_v1_pb2, remote_write_v2_pb2, rpc_status_pb2

__all__ = ["remote_write_v1_pb2", "remote_write_v2_pb2", "rpc_status_pb2"]
