# The two commands of the README. Each bootstraps what it needs (scripts/bootstrap.sh).
.PHONY: demo test lint bootstrap clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/python -m ethox_asyncio demo

test: bootstrap
	scripts/test.sh

lint: bootstrap
	.venv/bin/ruff check ethox_asyncio tests bench examples
	.venv/bin/mypy

clean:
	rm -rf .venv build *.egg-info .pytest_cache .mypy_cache .ruff_cache
