"""`python -m broker.cli` runs the same entry point as the `jcu` console script."""

from broker.cli import main

# Guarded: a spawned worker process (connectors._processes) imports the parent's
# __main__ module, and must not run the command again.
if __name__ == "__main__":
    main()
