"""What a state dict would do to a model: which tensors load, which do not, and which are broken.

mmengine's ``load_state_dict(strict=False)`` skips a tensor whose shape differs with a log line
and leaves missing parameters at their random initial values, so a checkpoint of another model
size "loads" and evaluates to 0 AP with exit status 0. :func:`compare_state_dict` counts every
kind of mismatch, and :class:`LoadReport` turns them into one error that names the tensors.
"""
import dataclasses

import torch

__all__ = ['CheckpointMismatchError', 'LoadReport', 'compare_state_dict', 'non_finite_tensors']

_SHOWN = 6  # names listed per kind of problem


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model (or holds NaN/inf), refused before loading."""


def non_finite_tensors(state_dict):
    """Names of floating-point tensors holding NaN or inf, with the count of such values."""
    found = {}
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point() and value.numel():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                found[name] = bad
    return found


@dataclasses.dataclass
class LoadReport:
    """The differences between a model's state dict and a checkpoint's.

    Attributes:
        total (int): tensors of the model.
        loaded (list[str]): names that match in name and shape.
        missing (list[str]): the model's names the checkpoint lacks.
        unexpected (list[str]): the checkpoint's names the model lacks.
        mismatched (dict[str, tuple]): name -> (checkpoint shape, model shape).
        non_finite (dict[str, int]): name -> number of NaN/inf values in the checkpoint's tensor.
    """
    total: int
    loaded: list
    missing: list
    unexpected: list
    mismatched: dict
    non_finite: dict

    @property
    def complete(self):
        return not (self.missing or self.unexpected or self.mismatched or self.non_finite)

    def summary(self):
        return (f'{len(self.loaded)} of the model\'s {self.total} tensors '
                f'({len(self.missing)} missing, {len(self.unexpected)} unexpected); '
                f'{len(self.mismatched)} of another shape, {len(self.non_finite)} with NaN/inf')

    def problems(self):
        """One line per kind of problem, naming the first tensors of each."""
        lines = []
        if self.mismatched:
            shown = [f'{name} {tuple(ckpt)} vs model {tuple(model)}'
                     for name, (ckpt, model) in list(self.mismatched.items())[:_SHOWN]]
            lines.append(f'{len(self.mismatched)} tensors have another shape: '
                         f'{"; ".join(shown)}{_more(self.mismatched)}')
        if self.missing:
            lines.append(f'{len(self.missing)} of the model\'s tensors are missing '
                         f'({_parts(self.missing)}): {", ".join(self.missing[:_SHOWN])}'
                         f'{_more(self.missing)}')
        if self.unexpected:
            lines.append(f'{len(self.unexpected)} tensors are not in the model '
                         f'({_parts(self.unexpected)}): {", ".join(self.unexpected[:_SHOWN])}'
                         f'{_more(self.unexpected)}')
        if self.non_finite:
            shown = [f'{name} ({count} values)'
                     for name, count in list(self.non_finite.items())[:_SHOWN]]
            lines.append(f'{len(self.non_finite)} tensors hold NaN or inf: {", ".join(shown)}'
                         f'{_more(self.non_finite)}')
        return lines

    def error(self, source, advice):
        """A :class:`CheckpointMismatchError` for ``source`` listing :meth:`problems`."""
        return CheckpointMismatchError(
            f'{source} does not fit the model: {self.summary()}.\n  - '
            + '\n  - '.join(self.problems()) + f'\n{advice}')


def compare_state_dict(model_state, state_dict):
    """Compare ``state_dict`` (from a file) with ``model_state`` (``model.state_dict()``).

    Args:
        model_state (Mapping[str, Tensor]): what the model holds.
        state_dict (Mapping[str, Tensor]): what would be loaded into it.

    Returns:
        LoadReport
    """
    loaded, mismatched = [], {}
    for name, value in state_dict.items():
        if name not in model_state:
            continue
        ckpt_shape = tuple(value.shape) if torch.is_tensor(value) else None
        if ckpt_shape != tuple(model_state[name].shape):
            mismatched[name] = (ckpt_shape, tuple(model_state[name].shape))
        else:
            loaded.append(name)
    missing = [name for name in model_state if name not in state_dict]
    unexpected = [name for name in state_dict if name not in model_state]
    relevant = {name: state_dict[name] for name in loaded}
    return LoadReport(total=len(model_state), loaded=loaded, missing=missing,
                      unexpected=unexpected, mismatched=mismatched,
                      non_finite=non_finite_tensors(relevant))


def _parts(names):
    """The top-level modules the names belong to, e.g. 'roi_head.bbox_head: 4'."""
    counts = {}
    for name in names:
        part = '.'.join(name.split('.')[:2])
        counts[part] = counts.get(part, 0) + 1
    return ', '.join(f'{part}: {count}' for part, count in sorted(counts.items()))


def _more(items):
    extra = len(items) - _SHOWN
    return f' and {extra} more' if extra > 0 else ''
