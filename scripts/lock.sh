#!/usr/bin/env bash
# `make lock`: regenerates the hash-pinned lock files from pyproject.toml, for CPython 3.11 on linux x86_64
# (what CI, developers and the image run). Every file gets a sha256 per distribution, so `pip install
# --require-hashes` refuses anything that was swapped or not pinned.
#   requirements-bootstrap.lock  pip and setuptools, installed first into .venv and the image
#   requirements.lock            runtime dependencies (compose/Dockerfile)
#   requirements-dev.lock        runtime + the test and bench extras (make install, CI, make audit)
# Raise PIP_VERSION / SETUPTOOLS_VERSION here; setuptools must stay >= 78.1.1 (PYSEC-2025-49 /
# CVE-2025-47273, path traversal in PackageIndex; older ones also CVE-2024-6345 and CVE-2022-40897).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_VERSION=26.3
SETUPTOOLS_VERSION=84.2.1
# The resolver itself, pinned by hash as well (the manylinux x86_64 wheel and the sdist).
UV_REQUIREMENT="uv==0.13.9 \
 --hash=sha256:d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19 \
 --hash=sha256:dd6f4f93ddf8a668c73f0945f3638444b2140a4e15a3912067493fc6335543e4"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
echo "$UV_REQUIREMENT" >"$tmp/uv.txt"
"$tmp/venv/bin/python" -m pip install --quiet --require-hashes -r "$tmp/uv.txt"
uv=$tmp/venv/bin/uv

# pip and setuptools: their own lock, and a constraint on the others, so pip-audit's dependency on pip
# cannot pull in a different pip than the one installed first.
printf 'pip==%s\nsetuptools==%s\n' "$PIP_VERSION" "$SETUPTOOLS_VERSION" >"$tmp/bootstrap.txt"
compile() {
  "$uv" pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "make lock" "$@"
}
compile - -o requirements-bootstrap.lock <"$tmp/bootstrap.txt"
compile pyproject.toml -c requirements-bootstrap.lock -o requirements.lock
compile pyproject.toml --extra test --extra bench -c requirements-bootstrap.lock -o requirements-dev.lock
echo "lock: wrote requirements-bootstrap.lock, requirements.lock, requirements-dev.lock"
