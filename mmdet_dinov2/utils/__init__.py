"""Generic utilities: atomic file writes, what machine a timing comes from."""
from .atomic_file import atomic_open
from .machine import cpu_model, machine_info

__all__ = ['atomic_open', 'cpu_model', 'machine_info']
