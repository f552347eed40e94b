"""export.half_weights: float16 storage, float32 inference, the same predictions, half the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from training.emotion.export import half_weights


def dense_model(path: Path, rng: np.random.Generator) -> None:
    w = numpy_helper.from_array(rng.normal(size=(64, 7)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(7,)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["logits"])],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 7])],
        [w, b],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_half_weights_keeps_the_contract_and_halves_the_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "m.onnx"
    dense_model(path, rng)
    x = rng.normal(size=(256, 64)).astype(np.float32)
    before, size = run(path, x), path.stat().st_size

    half_weights(path)

    m = onnx.load(str(path))
    assert {i.data_type for i in m.graph.initializer} == {TensorProto.FLOAT16}
    assert m.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    after = run(path, x)
    assert after.dtype == np.float32
    assert (after.argmax(1) == before.argmax(1)).mean() >= 0.99
    assert np.abs(after - before).max() < 0.05
    assert path.stat().st_size < 0.6 * size
    assert not list(tmp_path.glob("*.tmp"))
