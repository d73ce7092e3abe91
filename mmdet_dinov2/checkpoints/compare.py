"""What a state dict would do to a model: which tensors load, which do not, which are broken
(mmengine's ``strict=False`` loads a checkpoint of another model size with a log line, to 0 AP)."""
import dataclasses
from collections import Counter

import torch

_SHOWN = 6  # names listed per kind of problem


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model (or holds NaN/inf), refused before loading."""


@dataclasses.dataclass
class LoadReport:
    """The differences between a model's state dict (``total`` tensors) and a checkpoint's:
    ``loaded`` (names that match in name and shape), ``missing`` / ``unexpected`` (names only the
    model / the checkpoint has), ``mismatched`` (name -> (checkpoint shape, model shape)),
    ``non_finite`` (name -> number of NaN/inf values in a loaded tensor) and ``wrong_dtype`` (name
    -> (checkpoint dtype, model dtype) of an integer or boolean tensor under a float parameter name:
    a quantised or relabelled file; float16 and bfloat16 are cast on loading and not listed)."""
    total: int
    loaded: list
    missing: list
    unexpected: list
    mismatched: dict
    non_finite: dict
    wrong_dtype: dict

    @property
    def complete(self):
        return not (self.missing or self.unexpected or self.mismatched or self.broken)

    @property
    def broken(self):
        """Tensors that fit by name and shape but hold values no model should load."""
        return bool(self.non_finite or self.wrong_dtype)

    def summary(self):
        return (f'{len(self.loaded)} of the model\'s {self.total} tensors '
                f'({len(self.missing)} missing, {len(self.unexpected)} unexpected); '
                f'{len(self.mismatched)} of another shape, {len(self.non_finite)} with NaN/inf'
                + (f', {len(self.wrong_dtype)} of integers/booleans' if self.wrong_dtype else ''))

    def problems(self, broken_only=False):
        """One line per kind of problem, naming the first tensors of each (``broken_only``: the
        kinds of :attr:`broken`)."""
        kinds = [([f'{n} ({count} values)' for n, count in self.non_finite.items()],
                  'tensors hold NaN or inf', ', '),
                 ([f'{n} ({str(c).removeprefix("torch.")}, model '
                   f'{str(m).removeprefix("torch.")})' for n, (c, m) in self.wrong_dtype.items()],
                  'tensors hold integers or booleans where the model has floats', ', ')]
        if not broken_only:
            kinds = [([f'{n} {tuple(ckpt)} vs model {tuple(model)}'
                       for n, (ckpt, model) in self.mismatched.items()],
                      'tensors have another shape', '; '),
                     (self.missing, f'of the model\'s tensors are missing ({_parts(self.missing)})',
                      ', '),
                     (self.unexpected, f'tensors are not in the model ({_parts(self.unexpected)})',
                      ', ')] + kinds
        return [f'{len(names)} {what}: {sep.join(names[:_SHOWN])}'
                + (f' and {len(names) - _SHOWN} more' if len(names) > _SHOWN else '')
                for names, what, sep in kinds if names]

    def broken_advice(self):
        """What to do about :attr:`broken` tensors."""
        return ' '.join(advice for found, advice in (
            (self.non_finite, 'NaN/inf: the file is damaged or was saved after training diverged: '
                              'download it again or use an earlier checkpoint.'),
            (self.wrong_dtype, 'Integers/booleans: the file was quantised or its dtypes '
                               'relabelled: use a float32, float16 or bfloat16 file.')) if found)

    def error(self, source, advice):
        """A :class:`CheckpointMismatchError` for ``source`` listing :meth:`problems`."""
        return CheckpointMismatchError(f'{source} does not fit the model: {self.summary()}.\n  - '
                                       + '\n  - '.join(self.problems()) + f'\n{advice}')


def compare_state_dict(model_state, state_dict):
    """Compare ``state_dict`` (from a file) with ``model_state`` (``model.state_dict()``) in a
    :class:`LoadReport`."""
    loaded, mismatched, non_finite, wrong_dtype = [], {}, {}, {}
    for name, value in state_dict.items():
        if name not in model_state:
            continue
        model = model_state[name]
        ckpt_shape = tuple(value.shape) if torch.is_tensor(value) else None
        if ckpt_shape != tuple(model.shape):
            mismatched[name] = (ckpt_shape, tuple(model.shape))
        elif model.is_floating_point() and not value.is_floating_point():
            wrong_dtype[name] = (value.dtype, model.dtype)
        else:
            loaded.append(name)
            if value.is_floating_point() and (bad := int((~torch.isfinite(value)).sum())):
                non_finite[name] = bad
    return LoadReport(total=len(model_state), loaded=loaded,
                      missing=[name for name in model_state if name not in state_dict],
                      unexpected=[name for name in state_dict if name not in model_state],
                      mismatched=mismatched, non_finite=non_finite, wrong_dtype=wrong_dtype)


def _parts(names):
    """The top-level modules the names belong to, e.g. 'roi_head.bbox_head: 4'."""
    counts = Counter('.'.join(name.split('.')[:2]) for name in names)
    return ', '.join(f'{part}: {count}' for part, count in sorted(counts.items()))
