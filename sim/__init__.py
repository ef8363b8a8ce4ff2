"""Simulator runners and build helpers for the cocotb testbenches."""
