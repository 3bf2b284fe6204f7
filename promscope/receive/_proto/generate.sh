#!/usr/bin/env bash
# Regenerates the *_pb2.py / *_pb2.pyi files beside this script from the .proto files here:
#   remote_write_v1.proto   prometheus.WriteRequest (remote_write 1.0)
#   remote_write_v2.proto   io.prometheus.write.v2.Request (remote_write 2.0)
#   rpc_status.proto        google.rpc.Status (the OTLP/HTTP error body)
# Each .proto names the upstream file and commit its field numbers were checked against.
#
# As for promscope/exposition/_proto/generate.sh: the protoc that writes the code decides the
# "gencode version" stamped into it, and the protobuf runtime refuses gencode newer than itself.
# protoc 29.0 (bundled in grpcio-tools 1.70.0) stamps 5.29.0, which every runtime pyproject.toml
# allows (protobuf>=5.29,<8) loads: 5.29+ as is, 6.x with a warning that
# promscope.receive._proto silences, 7.x as is. So grpcio-tools is pinned and installed into a
# throwaway virtualenv; GRPC_TOOLS_PYTHON=/path/to/python skips that when a python with
# grpcio-tools 1.70.0 is at hand.
#
# Usage: promscope/receive/_proto/generate.sh   (needs python3 and pip access, or GRPC_TOOLS_PYTHON)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
grpc_tools_version=${GRPC_TOOLS_VERSION:-1.70.0}
expected_gencode=${EXPECTED_GENCODE:-5.29.0}
protos=(remote_write_v1.proto remote_write_v2.proto rpc_status.proto)

python=${GRPC_TOOLS_PYTHON:-}
if [[ -z $python ]]; then
    venv=$(mktemp -d)
    trap 'rm -rf "$venv"' EXIT
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==${grpc_tools_version}"
    python=$venv/bin/python
fi

cd "$here"
"$python" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. "${protos[@]}"

# protoc's .pyi stubs leave generics bare; mypy --strict checks promscope/, so each stub says to skip it
# (promscope/exposition/_proto is skipped by an override in pyproject.toml instead).
for stub in *_pb2.pyi; do
    printf '# mypy: ignore-errors\n%s\n' "$(cat "$stub")" >"$stub"
done

for proto in "${protos[@]}"; do
    generated=${proto%.proto}_pb2.py
    if ! grep -q "Protobuf Python Version: ${expected_gencode}" "$generated"; then
        echo "generate.sh: $generated is not gencode ${expected_gencode}:" >&2
        grep "Protobuf Python Version" "$generated" >&2 || true
        exit 1
    fi
done
echo "generated ${protos[*]/.proto/_pb2.py} and .pyi stubs (gencode ${expected_gencode})"
