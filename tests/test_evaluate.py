"""Evaluation helpers: accuracy, agreement, params/MACs from the ONNX graph, size, data loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeship.converters.evaluate import (
    accuracy,
    agreement,
    agreement_of,
    count_onnx,
    load_labelled,
    model_size,
    model_stats,
    predict,
)
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError, ModelError


def _graph(path: Path, nodes, inputs, outputs, weights) -> Path:  # type: ignore[no-untyped-def]
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _float(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_digits_cnn_params_and_macs_match_its_layers(digits_onnx: Path, digits_torch_model) -> None:
    # conv 1->8 3x3 on 8x8, conv 8->16 3x3 on 4x4, linear 64->10
    expected_macs = 8 * 8 * 8 * (1 * 9) + 4 * 4 * 16 * (8 * 9) + 10 * 64
    cost = count_onnx(digits_onnx)
    assert cost.macs == expected_macs == 23680
    assert cost.macs_by_op == {"Conv": 8 * 8 * 8 * 9 + 4 * 4 * 16 * 72, "Gemm": 640}
    assert cost.params == sum(p.numel() for p in digits_torch_model.parameters())
    assert cost.nonzero_params == cost.params
    assert cost.flops == 2 * cost.macs
    assert cost.uncounted == []


def test_macs_count_the_batch_of_one_sample(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    path = _graph(tmp_path / "mm.onnx", [helper.make_node("MatMul", ["x", "W"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
                  {"W": _float(16, 4)})
    assert count_onnx(path).macs == 16 * 4
    assert count_onnx(path, {"x": (8, 16)}).macs == 8 * 16 * 4


def test_gemm_with_transposed_a_and_conv_transpose_are_counted(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ConvTranspose", ["x", "Wt"], ["up"], strides=[2, 2]),  # 3x4x4 -> 5x8x8
        helper.make_node("Flatten", ["up"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["flat_t"]),
        helper.make_node("Gemm", ["flat_t", "W"], ["y"], transA=1),
    ]
    path = _graph(tmp_path / "ct.onnx", nodes,
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])],
                  {"Wt": _float(3, 5, 2, 2), "W": _float(5 * 8 * 8, 7)})
    cost = count_onnx(path)
    assert cost.macs_by_op == {"ConvTranspose": 3 * 4 * 4 * 5 * 2 * 2, "Gemm": 1 * 7 * 320}


def test_unmodelled_compute_ops_are_reported_not_hidden(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    path = _graph(tmp_path / "einsum.onnx",
                  [helper.make_node("Einsum", ["x", "W"], ["y"], equation="bi,ij->bj")],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                  {"W": _float(8, 2)})
    cost = count_onnx(path)
    assert cost.macs == 0
    assert cost.uncounted == ["y (Einsum)"]


def test_macs_that_need_a_dynamic_dimension_nobody_gave_are_unknown(token_onnx: Path) -> None:
    cost = count_onnx(token_onnx)
    assert cost.macs is None and cost.flops is None and cost.params == 100 * 4
    assert cost.uncounted == ["input 'ids' dimension 1 (give it with --input-shape)",
                              "input 'mask' dimension 1 (give it with --input-shape)"]
    assert count_onnx(token_onnx, {"ids": (1, 5), "mask": (1, 5)}).params == 100 * 4
    # 'mask' shares the sequence dimension 'S' with 'ids': sizing one sizes both
    assert count_onnx(token_onnx, {"ids": (1, 5)}).macs is not None


def test_a_corrupt_onnx_file_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        count_onnx(bad)


def test_accuracy_on_digits_equals_the_torch_model(digits_onnx: Path, digits_torch_model,
                                                    digits_data) -> None:
    import torch

    result = accuracy(digits_onnx, digits_data.x_test, digits_data.y_test, batch_size=50)
    with torch.no_grad():
        torch_pred = digits_torch_model(torch.from_numpy(digits_data.x_test)).argmax(1).numpy()
    assert result.total == 360
    assert result.correct == int((torch_pred == digits_data.y_test).sum())
    assert result.accuracy > 0.9


def test_a_fixed_batch_of_one_model_is_run_sample_by_sample(
    linear_onnx: Path, fixed_linear_onnx: Path
) -> None:
    x = np.random.default_rng(1).random((37, 16), dtype=np.float32)  # 37: not a batch multiple
    fixed = predict(fixed_linear_onnx, x)
    assert fixed.shape == (37, 4)
    np.testing.assert_allclose(fixed, predict(linear_onnx, x, batch_size=8), rtol=1e-6, atol=1e-7)


def test_agreement_of_a_model_with_itself_is_perfect(digits_onnx: Path, digits_data) -> None:
    same = agreement(digits_onnx, digits_onnx, digits_data.x_test[:64])
    assert (same.top1, same.max_abs_diff, same.samples) == (1.0, 0.0, 64)
    assert same.cosine_min == pytest.approx(1.0)


def test_agreement_counts_changed_predictions() -> None:
    ref = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 0.0]], np.float32)
    cand = np.array([[2.0, 1.0], [3.0, 0.0], [2.0, 0.0], [0.0, 0.0]], np.float32)
    result = agreement_of(ref, cand)
    assert result.top1 == 0.75  # sample 1 flips
    assert result.cosine_min == pytest.approx(0.0)  # [0, 3] vs [3, 0] are orthogonal
    assert result.cosine_mean == pytest.approx((1 + 0 + 1 + 1) / 4)  # zero vs zero agrees
    assert result.max_abs_diff == 3.0


def _outputs_at_cosines(cosines: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A reference and a candidate whose per-sample cosine similarities are ``cosines``."""
    ref = np.zeros((len(cosines), 10), np.float32)
    ref[:, 0] = 5.0
    cand = ref.copy()
    cand[:, 0] = 5.0 * np.array(cosines)
    cand[:, 1] = 5.0 * np.sqrt(1 - np.array(cosines) ** 2)  # a unit vector at that angle
    return ref, cand


def test_int8_parity_gates_the_mean_cosine_so_more_samples_do_not_fail_a_good_export() -> None:
    from edgeship.converters.parity import TOLERANCES, Samples, compare_outputs

    def report(cosines: list[float]):  # type: ignore[no-untyped-def]
        ref, cand = _outputs_at_cosines(cosines)
        return compare_outputs([ref], [cand], Samples([ref], 0, len(ref)),
                               tolerance=TOLERANCES["int8"], output_names=["logits"],
                               raise_on_mismatch=False)

    # one hard sample among many (EfficientNet-Lite0's int8: lowest 0.971, mean 0.99) passes
    assert report([0.995] * 63 + [0.96]).ok
    spread = report([0.97] * 64)  # every sample off: a worse model than int8 noise
    assert not spread.ok and spread.outputs[0].failed == ["mean cosine 0.970000 < 0.98"]
    broken = report([0.999] * 63 + [0.4])  # one input the conversion broke
    assert not broken.ok and broken.outputs[0].failed[0].startswith("cosine 0.4")


def test_samples_of_a_dynamic_batch_model_are_run_in_chunks() -> None:
    from edgeship.converters.parity import CHUNK, run_batched

    seen: list[int] = []

    def runner(arrays: list[np.ndarray]) -> list[np.ndarray]:
        seen.append(len(arrays[0]))
        return [arrays[0] * 2]

    x = np.arange(2 * CHUNK + 3, dtype=np.float32)[:, None]
    out = run_batched(runner, [x], None)  # batch None: the model takes any batch
    np.testing.assert_array_equal(out[0], x * 2)
    assert seen == [CHUNK, CHUNK, CHUNK]  # the last short chunk is padded, its padding dropped


def test_model_size_counts_raw_and_compressed_bytes(digits_onnx: Path) -> None:
    size = model_size(digits_onnx)
    assert size.bytes == digits_onnx.stat().st_size
    assert 0 < size.compressed_bytes < size.bytes


def test_model_stats_collects_everything(digits_onnx: Path, digits_data) -> None:
    stats = model_stats(digits_onnx, digits_data.x_test, digits_data.y_test)
    assert (stats.params, stats.macs) == (1898, 23680)
    assert stats.accuracy == accuracy(digits_onnx, digits_data.x_test, digits_data.y_test).accuracy


def test_labelled_data_from_npz(digits_test_npz: Path) -> None:
    data = load_labelled(digits_test_npz)
    assert data.array.shape == (360, 1, 8, 8) and data.array.dtype == np.float32
    assert data.y is not None and data.y.dtype == np.int64
    train, val = data.split(0.1)
    assert (len(train), len(val)) == (324, 36)
    assert not set(map(bytes, train.array)) & set(map(bytes, val.array))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [({"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32)}, "2 input arrays"),
     ({"x": np.zeros((2, 3), np.float32), "y": np.zeros(3, np.int64)}, "number of samples")],
)
def test_bad_labelled_data_is_a_config_error(tmp_path: Path, arrays, message: str) -> None:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=message):
        load_labelled(path)


def test_labelled_accepts_arrays_and_pairs() -> None:
    x = np.zeros((4, 2), np.float64)
    assert load_labelled(x).array.dtype == np.float32
    assert isinstance(load_labelled((x, np.arange(4))), SampleSet)
    with pytest.raises(ConfigError, match="integers"):
        load_labelled((x, np.zeros(4, np.float32)))
    with pytest.raises(ConfigError, match="does not exist"):
        load_labelled("missing.npz")


def test_macs_are_counted_through_pads_computed_from_constants(tmp_path: Path) -> None:
    """TF-style 'same' padding computes the pads at run time from constants; shape inference alone
    cannot see through it, so the graph is constant-folded first."""
    import onnx
    from edgeship.converters.evaluate import count_onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["half"], value=numpy_helper.from_array(
                np.array([0, 0, 1, 1, 0, 0, 1, 1], np.float32))),
            helper.make_node("Cast", ["half"], ["pads"], to=TensorProto.INT64),
            helper.make_node("Pad", ["x", "pads"], ["padded"], mode="constant"),
            helper.make_node("Conv", ["padded", "w"], ["y"]),
        ],
        "computed_pads",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "pads.onnx"
    onnx.save(model, str(path))
    cost = count_onnx(path)
    assert cost.uncounted == []
    assert cost.macs == 4 * 8 * 8 * 9  # 4 output channels x 8x8 positions x 3x3 kernel
