from .atomic_checkpoint_hook import AtomicCheckpointHook, CheckpointSaveError
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .reseed_hook import ReseedHook

__all__ = ['AtomicCheckpointHook', 'CheckpointSaveError',
           'NonFiniteLossError', 'NonFiniteLossHook', 'ReseedHook']
