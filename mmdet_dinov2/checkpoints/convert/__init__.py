"""Upstream checkpoint layouts -> this project's parameter names: one pure module per family
(state dict in, state dict and notes out), testable without files."""
import re
from collections import Counter

import torch


def convert_keys(state_dict, renames=(), fusions=(), drop=()):
    """``state_dict`` in the file's order, each key ``re.subn``-ed by ``renames`` (regex, new,
    kind), ``drop`` left out, and the parts of each of ``fusions`` (regex of the first part, the
    parts' templates, None for zeros, the stacked key's template, kind) concatenated in the first
    part's place; and a Counter of the keys changed per kind (and per dropped key)."""
    fused = {key: (m.expand(target), [part and m.expand(part) for part in parts], kind)
             for key in state_dict for pattern, parts, target, kind in fusions
             if (m := re.match(pattern, key))}
    skipped = {name for _, names, _ in fused.values() for name in names if name}
    converted, counts = {}, Counter()
    for key, value in state_dict.items():
        if key in fused:
            target, names, kind = fused[key]
            converted[target] = torch.cat([state_dict[name] if name else torch.zeros_like(value)
                                           for name in names])
            counts[kind] += 1
        elif key in drop:
            counts[key] += 1
        elif key not in skipped:
            for pattern, new, kind in renames:
                key, n = re.subn(pattern, new, key)
                counts[kind] += n
            converted[key] = value
    return converted, counts


def notes_for(counts, lines):
    """The line (``{n}``: the count) of each kind in ``lines`` that ``counts`` counted."""
    return [line.format(n=counts[kind]) for kind, line in lines.items() if counts[kind]]
