# The README's two commands. Both set the machine up first (scripts/bootstrap).
.PHONY: demo test bootstrap bench clean-db

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/xpdb demo

test: bootstrap
	.venv/bin/python -m pytest

bench: bootstrap
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done

clean-db:
	-.venv/bin/xpdb db destroy --yes
	rm -rf .xpdb
