"""bulk: move data in and out of the Pivotal API in bulk, safely and at the rate limit."""

__version__ = "0.1.0"
