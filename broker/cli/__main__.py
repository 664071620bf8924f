"""`python -m broker.cli` runs the same entry point as the `jcu` console script."""

from broker.cli import main

main()
