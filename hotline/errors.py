"""The common base of the errors a user can act on: a setting, a file, an argument.

Each package's own error (a broken menu, an unreadable WAV, a speech model that is not
installed) derives from ``UserFacingError``, so the ``hotline`` command recognises them
all with one ``isinstance`` and prints one line, without importing every package (the
packages depend on ``hotline``, never the other way round).
"""

from __future__ import annotations


class UserFacingError(Exception):
    """Bad input or settings: printed as one line, exit status 2 (``hotline.cli``)."""
