# eximpy: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONF   := conf/default.conf

.PHONY: run test setup setup-test bench bench-expand bench-spool clean

$(VENV)/.installed: pyproject.toml
	@tools/setup_system.sh build
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "eximpy: installing Python packages into $(VENV) (log: $(VENV)/pip.log)"
	@$(PY) -m pip install -q --upgrade pip > $(VENV)/pip.log 2>&1 \
	  && $(PY) -m pip install -q -e '.[test]' >> $(VENV)/pip.log 2>&1 \
	  || { cat $(VENV)/pip.log; exit 1; }
	@touch $@

setup: $(VENV)/.installed

setup-test: setup
	@tools/setup_system.sh test

run: setup
	@mkdir -p var
	@$(VENV)/bin/eximpy -C $(CONF) -DEXIMPY_VAR=$(CURDIR)/var -bV

test: setup-test
	@$(VENV)/bin/pytest

bench: bench-expand bench-spool

bench-expand: setup
	@$(PY) tools/bench_expand.py

bench-spool: setup
	@$(PY) tools/bench_spool.py

clean:
	rm -rf $(VENV) var tests/_work .pytest_cache
