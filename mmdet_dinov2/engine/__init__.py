from . import atomic_backend, hooks, optimizers, runner, sharding  # noqa: F401
