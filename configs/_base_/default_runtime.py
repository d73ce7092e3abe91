# The runtime of every config here: mmdet's, plus this project's package, hooks and safety switches.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['mmdet_dinov2'], allow_failed_imports=False)

# AtomicCheckpointHook: mmengine's CheckpointHook whose saves survive a kill or a full disk (the
# previous checkpoint and the last_checkpoint pointer stay valid). NonFiniteLossHook stops at the
# first NaN/inf loss term, naming it and the last good checkpoint; ReseedHook makes --resume
# repeat an uninterrupted run exactly. All three are default hooks: a config that inherits this one
# and sets custom_hooks (a list, which replaces the inherited list as a whole) keeps them, and
# default_hooks, a dict, merges key by key. Each runs at its class's priority, as custom hooks did.
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    non_finite_loss=dict(type='NonFiniteLossHook'),
    reseed=dict(type='ReseedHook'))
custom_hooks = []

# SafeLoadRunner (mmdet_dinov2.engine.runner): checkpoints are read weights-only, and a file whose
# pickle needs more (code could run) is refused unless trust_checkpoint is True (the tools'
# --trust-checkpoint sets it): only for files you trust. It checks what it loads (shapes, missing
# parts, NaN): load_from must fit the model unless partial_load is True (fine-tuning onto other
# classes; what does not fit is then listed). It locks the work dir while training.
runner_type = 'SafeLoadRunner'
trust_checkpoint = False
partial_load = False
