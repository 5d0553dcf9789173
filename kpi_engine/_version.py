"""The engine's version: one place, read by packaging and at import (no metadata parsing at start-up)."""

__version__ = "0.1.0"
