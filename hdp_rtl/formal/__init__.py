"""Formal verification of the HDP co-processor with SymbiYosys and Yices.

Harnesses (one module per unit) state the stream, AXI4-Lite and beat-counting
properties; :mod:`.checks` lists the checks and :mod:`.run` runs them:
``python -m hdp_rtl.formal`` (see ``docs/formal.md``).
"""
