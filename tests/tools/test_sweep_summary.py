"""tools/analysis_tools/sweep_summary.py on work dirs laid out as mmengine writes them."""
import json

import pytest

from tests.helpers import load_tool

sweep_summary = load_tool('tools/analysis_tools/sweep_summary.py')


def fake_run(root, name, rate, evaluations, timestamps=('20250101_000000',)):
    """A work dir: the dumped config and scalars.json with training lines and evaluations
    ``{epoch: (box mAP, mask mAP)}``, spread over ``timestamps`` (a resumed run)."""
    work_dir = root / name
    work_dir.mkdir()
    (work_dir / f'{name}.py').write_text(
        "optim_wrapper = dict(type='OptimWrapper', constructor='LayerDecayOptimizerConstructor', "
        f"paramwise_cfg=dict(num_layers=12, layer_decay_rate={rate}))\n")
    epochs = sorted(evaluations)
    for i, stamp in enumerate(timestamps):
        vis = work_dir / stamp / 'vis_data'
        vis.mkdir(parents=True)
        lines = []
        for epoch in epochs[i::len(timestamps)]:
            box, mask = evaluations[epoch]
            lines.append(json.dumps(dict(lr=1e-4, loss=1.0, epoch=epoch, iter=10 * epoch,
                                         step=10 * epoch)))
            lines.append(json.dumps({'coco/bbox_mAP': box, 'coco/bbox_mAP_50': 0.9,
                                     'coco/segm_mAP': mask, 'data_time': 0.1, 'step': epoch}))
        (vis / 'scalars.json').write_text('\n'.join(lines) + '\n')
    return work_dir


def test_table_per_rate_final_and_best(tmp_path, capsys):
    a = fake_run(tmp_path, 'ld0.90', 0.9, {1: (0.30, 0.28), 2: (0.494, 0.441), 3: (0.49, 0.44)})
    b = fake_run(tmp_path, 'ld0.70', 0.7, {1: (0.40, 0.35), 2: (0.515, 0.456)},
                 timestamps=('20250101_000000', '20250102_000000'))
    assert sweep_summary.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert '| 0.70 | 51.5 | 45.6 | 2 | 2 |' in out  # sorted by rate, resumed run merged
    assert '| 0.90 | 49.0 | 44.0 | 3 | 3 |' in out  # final epoch
    assert out.index('| 0.70 |') < out.index('| 0.90 |')
    assert '| box AP | 51.5 | 49.0 |' in out and '| mask AP | 45.6 | 44.0 |' in out
    assert sweep_summary.main([str(a), '--pick', 'best']) == 0
    assert '| 0.90 | 49.4 | 44.1 | 2 | 3 |' in capsys.readouterr().out


def test_work_dir_without_evaluation_is_named(tmp_path, capsys):
    done = fake_run(tmp_path, 'done', 0.75, {1: (0.51, 0.45)})
    running = fake_run(tmp_path, 'running', 0.8, {})
    assert sweep_summary.main([str(done), str(running), str(tmp_path / 'nope')]) == 0
    captured = capsys.readouterr()
    assert '| 0.75 | 51.0 | 45.0 |' in captured.out and '0.80' not in captured.out
    assert f'{running}: no evaluation yet' in captured.err
    assert f'{tmp_path / "nope"}: no such directory' in captured.err
    assert sweep_summary.main([str(running)]) == 1


def test_run_without_layer_decay_is_refused(tmp_path):
    work_dir = fake_run(tmp_path, 'plain', 0.7, {1: (0.5, 0.4)})
    (work_dir / 'plain.py').write_text("optim_wrapper = dict(type='OptimWrapper')\n")
    with pytest.raises(sweep_summary.SweepError, match='layer_decay_rate not set'):
        sweep_summary.summarise(work_dir)
