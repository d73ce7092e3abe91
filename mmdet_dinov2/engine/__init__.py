from . import atomic_backend, hooks, optimizers, precision, runner, sharding  # noqa: F401
