# eximpy: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONF   := conf/default.conf

.PHONY: run test setup setup-test bench bench-expand bench-spool bench-receive bench-deliver bench-daemon clean

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

# Deliveries run as you (or, started as root, as the eximpy user).
RUN_USER := $(shell [ "$$(id -u)" = 0 ] && echo eximpy || id -un)
RUN_ARGS := -C $(CURDIR)/$(CONF) -DEXIMPY_VAR=$(CURDIR)/var -DEXIMPY_USER=$(RUN_USER)

run: setup
	@mkdir -p var/mail/$(RUN_USER) var/mail/postmaster
	@if [ "$$(id -u)" = 0 ]; then chown -R eximpy:eximpy var; fi
	@$(VENV)/bin/eximpy $(RUN_ARGS) -bV | head -n 8
	@echo
	@echo "eximpy is listening on 127.0.0.1:2525 (Ctrl-C stops it). Send it a mail:"
	@echo "    swaks --server 127.0.0.1:2525 --to $(RUN_USER)@localhost"
	@echo "It lands in $(CURDIR)/var/mail/$(RUN_USER)/new/; the logs are in $(CURDIR)/var/log/."
	@echo "Queue: $(VENV)/bin/eximpy $(RUN_ARGS) -bp"
	@exec $(VENV)/bin/eximpy $(RUN_ARGS) -bdf -q1m

test: setup-test
	@$(VENV)/bin/pytest

bench: bench-expand bench-spool bench-receive bench-deliver bench-daemon

bench-expand: setup
	@$(PY) tools/bench_expand.py

bench-spool: setup
	@$(PY) tools/bench_spool.py

# eximpy's daemon next to real Exim's, both queue_only, on loopback (root).
bench-receive: setup-test
	@$(PY) tools/bench_receive.py

# Maildir delivery of a queue of 10,000 messages: eximpy vs exim -qf.
bench-deliver: setup-test
	@$(PY) tests/delivery/bench_deliver.py 10000

# Memory per process kind and connections/s, eximpy vs Exim (root).
bench-daemon: setup-test
	@$(PY) tools/bench_daemon.py

clean:
	rm -rf $(VENV) var tests/_work .pytest_cache
