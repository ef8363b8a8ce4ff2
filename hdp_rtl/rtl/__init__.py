"""Amaranth RTL of the HDP co-processor units."""
