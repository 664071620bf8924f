"""jcu-broker: need-to-share information exchange for the EU Joint Cyber Unit.

The public surface lives in the submodules; nothing here does work at import time.
"""

__version__ = "0.1.0"
