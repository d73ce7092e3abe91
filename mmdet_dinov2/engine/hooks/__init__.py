"""Training hooks for crash-safe checkpoints, exact resumption, NaN stops and checkpoint trust."""
from .atomic_checkpoint_hook import AtomicCheckpointHook, CheckpointSaveError
from .checkpoint_trust_hook import CheckpointTrustHook
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .reseed_hook import ReseedHook

__all__ = ['AtomicCheckpointHook', 'CheckpointSaveError', 'CheckpointTrustHook',
           'NonFiniteLossError', 'NonFiniteLossHook', 'ReseedHook']
