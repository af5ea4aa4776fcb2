"""bulk: move data in and out of the Pivotal API in bulk, safely and at the rate limit."""

from bulk._version import __version__

__all__ = ["__version__"]
