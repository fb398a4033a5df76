# leanlake: build, IAM and tests. PYTHON is the dev environment's interpreter (default .venv/bin/python, else python3);
# the Lambda build finds its own Python 3.12 (PATH, pyenv or uv; or LEANLAKE_BUILD_PYTHON).
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
STAGE ?= dev

.PHONY: package deploy destroy iam iam-check test lint gate

## package: dist/terraform/ and dist/cloudformation/ for STAGE (python3.12, trimmed pyarrow, policies inside)
package:
	$(PYTHON) -m leanlake.deploy package --stage $(STAGE)

## deploy: chalice deploy --stage STAGE from the build copy (python3.12, trimmed pyarrow, policies/), after creating
## the stage's SQS work queue and its -dlq; .chalice/deployed/STAGE.json comes back. DRY_RUN=1: the plan, no AWS calls
deploy:
	$(PYTHON) -m leanlake.deploy deploy --stage $(STAGE) $(if $(DRY_RUN),--dry-run)

## destroy: chalice delete --stage STAGE (from .chalice/deployed/STAGE.json), then delete its queues; asks, or YES=1
destroy:
	$(PYTHON) -m leanlake.deploy destroy --stage $(STAGE) $(if $(YES),--yes)

## iam: regenerate .chalice/policy-<stage>.json from policies/ (commit the result)
iam:
	$(PYTHON) -m leanlake.deploy iam

iam-check:
	$(PYTHON) -m leanlake.deploy iam --check

## test: the test suite
test:
	$(PYTHON) -m pytest -q

## lint: ruff on the Lambda code and the CLI, mypy and vulture (pinned in the dev extra) on what the Lambda functions run; CI runs it
lint:
	$(PYTHON) -m ruff check chalicelib app.py leanlake
	$(PYTHON) -m mypy
	$(PYTHON) -m vulture chalicelib app.py --min-confidence 80

## gate: what CI runs after the tests: package dev and prod, run the packaged handler on moto
gate:
	bash .ci/package-gate
