"""The version of resilient_routing, read by the build and by ``__version__``."""

__version__ = "0.2.0.dev0"
