"""The package version, alone so that every layer can name it without the public surface."""

__version__ = "0.1.0"
