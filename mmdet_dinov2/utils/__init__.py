"""Generic reliability utilities: atomic file writes."""
from .atomic_file import atomic_open

__all__ = ['atomic_open']
