# The two commands a fresh machine needs: `make demo` and `make test`.
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
COLLECTIONS := $(ROOT)/.build/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_PYTHON_INTERPRETER := $(VENV)/bin/python

.PHONY: demo demo-clean test venv stack stop link k8s k8s-stop bench-k8s unit typecheck sanity integration bench

venv:
	@scripts/venv.sh >/dev/null

link: venv
	@mkdir -p $(COLLECTIONS)/ansible_collections/immutable
	@ln -sfn $(ROOT) $(COLLECTIONS)/ansible_collections/immutable/deploy

stack: venv
	scripts/stack.sh start

stop: k8s-stop
	scripts/stack.sh stop

# A real single-node Kubernetes (tests/k8s/README.md); unless KUBECONFIG points at a cluster
# that answers, the binaries are built from Debian's source package once and cached.
k8s: stack
	tests/k8s/cluster.sh start

k8s-stop:
	tests/k8s/cluster.sh stop

demo: stack link
	$(VENV)/bin/ansible-playbook -i localhost, -c local playbooks/demo.yml

unit: link
	$(VENV)/bin/pytest -q tests/unit

typecheck: link
	scripts/typecheck.sh

sanity: venv
	scripts/sanity.sh

integration: stack link k8s
	$(VENV)/bin/pytest -q -n 3 --dist loadfile tests/integration

test:
	scripts/test.sh

bench: stack link
	$(VENV)/bin/python benchmarks/image_pipeline.py
	$(VENV)/bin/python benchmarks/zero_downtime.py
	$(VENV)/bin/python benchmarks/canary_exposure.py

bench-k8s: k8s link
	$(VENV)/bin/python benchmarks/k8s_switch.py

demo-clean: link
	$(VENV)/bin/ansible-playbook -i localhost, -c local playbooks/demo.yml -e demo_cleanup=true
