from . import atomic_backend, hooks, optimizers, runner  # noqa: F401
