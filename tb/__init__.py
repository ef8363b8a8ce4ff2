"""cocotb testbenches of the generated Verilog (run through pytest and sim/runner.py)."""
