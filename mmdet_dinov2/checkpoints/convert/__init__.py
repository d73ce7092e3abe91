"""Upstream checkpoint layouts -> this project's parameter names: one pure module per family
(state dict in, state dict and notes out), testable without files."""
