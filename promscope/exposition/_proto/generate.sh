#!/usr/bin/env bash
# Regenerates metrics_pb2.py and metrics_pb2.pyi from metrics.proto.
#
# The protoc that writes the code decides the "gencode version" stamped into
# metrics_pb2.py, and the protobuf runtime refuses gencode newer than itself.
# protoc 29.0 (bundled in grpcio-tools 1.70.0) stamps 5.29.0, which every
# runtime pyproject.toml allows (protobuf>=5.29,<8) accepts: 5.29+ as is, 6.x
# with a warning that promscope.exposition._proto silences, 7.x as is. A newer
# grpcio-tools would raise the runtime floor to its own version, so it is
# pinned here and installed into a throwaway virtualenv.
#
# Usage: promscope/exposition/_proto/generate.sh   (needs python3 and pip access)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
grpc_tools_version=${GRPC_TOOLS_VERSION:-1.70.0}
expected_gencode=${EXPECTED_GENCODE:-5.29.0}

venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==${grpc_tools_version}"

cd "$here"
"$venv/bin/python" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. metrics.proto

if ! grep -q "Protobuf Python Version: ${expected_gencode}" metrics_pb2.py; then
    echo "generate.sh: metrics_pb2.py is not gencode ${expected_gencode}:" >&2
    grep "Protobuf Python Version" metrics_pb2.py >&2 || true
    exit 1
fi
echo "generated metrics_pb2.py and metrics_pb2.pyi (gencode ${expected_gencode})"
