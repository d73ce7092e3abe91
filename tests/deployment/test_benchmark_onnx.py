"""benchmark_onnx's profile summary leaves the warm-up runs out."""
import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from tests.helpers import load_tool

benchmark_onnx = load_tool('tools/deployment/benchmark_onnx.py')


def _kernel(op, ts, dur):
    return dict(cat='Node', name=f'{op}_node_kernel_time', ts=ts, dur=dur, args=dict(op_name=op))


def test_profile_leaves_out_the_warm_up_runs(tmp_path):
    # three runs at ts 0, 100, 200: the first one's kernels are slow, as ONNX Runtime's warm-ups are
    events = [dict(name='model_run', ts=t, dur=50) for t in (0, 100, 200)]
    events += [_kernel('Gather', 10, 9_000_000), _kernel('Gather', 110, 300_000),
               _kernel('Gather', 210, 500_000), _kernel('Conv', 220, 1_000_000)]
    path = tmp_path / 'profile.json'
    path.write_text(json.dumps(events))
    per_op = benchmark_onnx.onnx_profile(path, skip=1)
    assert per_op == {'Conv': 0.5, 'Gather': 0.4, 'other': 0}  # seconds per timed run
    assert not path.exists()  # the profile file is removed once read


def test_onnx_runtime_marks_each_run(tmp_path):
    """The summary finds the runs by ONNX Runtime's ``model_run`` events: one per ``run``."""
    graph = helper.make_graph(
        [helper.make_node('Add', ['x', 'x'], ['y'])], 'add',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / 'ort')
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=['CPUExecutionProvider'])
    for _ in range(3):
        session.run(None, {'x': np.ones(4, np.float32)})
    path = session.end_profiling()
    events = json.loads(open(path).read())
    assert sum(e.get('name') == 'model_run' for e in events) == 3
    assert set(benchmark_onnx.onnx_profile(path, skip=2)) == {'Add', 'other'}
    onnx.checker.check_model(model)
