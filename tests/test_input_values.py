"""Real input values: --input-value / --input-range, shared dimension names, per-name samples
with rank-0 scalars and state tensors (runtime.inputs), and rank-0 arrays in a Dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeship import Dataset
from edgeship.runtime import ConfigError, TensorSpec
from edgeship.runtime.inputs import (
    fill_args,
    load_samples,
    parse_input_fills,
    random_inputs,
    resolve_shapes,
)

# Silero VAD v4's inputs, as onnxruntime reports them
VAD = [TensorSpec("input", ("batch", "sequence"), "float32"), TensorSpec("sr", (), "int64"),
       TensorSpec("h", (2, "batch", 64), "float32"), TensorSpec("c", (2, "batch", 64), "float32")]


def test_value_and_range_flags_fill_inputs_and_round_trip_to_the_agent() -> None:
    fills = parse_input_fills(["sr=16000", "h=0"], ["input=-1:1", "c=0.5:2.5"])
    feeds = random_inputs(VAD, seed=0, fixed={"input": (1, 512)}, fills=fills)
    assert feeds["sr"].shape == () and feeds["sr"].dtype == np.int64 and int(feeds["sr"]) == 16000
    assert feeds["h"].shape == (2, 1, 64) and not feeds["h"].any()
    assert feeds["input"].min() >= -1 and feeds["input"].max() <= 1 and feeds["input"].min() < 0
    assert feeds["c"].min() >= 0.5 and feeds["c"].max() <= 2.5
    assert fill_args(fills) == ["--input-value", "sr=16000", "--input-value", "h=0",
                                "--input-range", "input=-1:1", "--input-range", "c=0.5:2.5"]


def test_integer_ranges_include_both_ends_and_must_fit_the_dtype() -> None:
    ids = [TensorSpec("ids", (1, 4000), "int64")]
    got = random_inputs(ids, fills=parse_input_fills([], ["ids=0:2"]))["ids"]
    assert set(np.unique(got)) == {0, 1, 2}
    with pytest.raises(ConfigError, match="--input-value ids=0.5 does not fit input 'ids'"):
        random_inputs(ids, fills=parse_input_fills(["ids=0.5"]))
    with pytest.raises(ConfigError, match="from 0 to 255"):
        random_inputs([TensorSpec("u", (1,), "uint8")], fills=parse_input_fills(["u=300"]))


@pytest.mark.parametrize("values, ranges, message", [
    (["sr"], [], "bad --input-value 'sr'"), (["sr=fast"], [], "bad --input-value"),
    ([], ["ids=5"], "bad --input-range 'ids=5'"), ([], ["ids=9:1"], "LOW is above HIGH"),
    (["ids=1"], ["ids=0:9"], "more than one"), (["x=nan"], [], "bad --input-value"),
])
def test_bad_value_and_range_flags(values, ranges, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_input_fills(values, ranges)


def test_a_value_for_an_input_the_model_lacks_lists_its_inputs() -> None:
    with pytest.raises(ConfigError, match="--input-value/--input-range names 'rate'.*input, sr, h, c"):
        random_inputs(VAD, fixed={"input": (1, 512)}, fills=parse_input_fills(["rate=16000"]))


def test_dimensions_with_one_name_get_one_size() -> None:
    assert resolve_shapes(VAD, {"input": (3, 512)}) == {
        "input": (3, 512), "sr": (), "h": (2, 3, 64), "c": (2, 3, 64)}
    # '?' is anonymous: two of them are not one size
    ocr = [TensorSpec("x", (None, 3, "?", "?"), "float32")]
    assert resolve_shapes(ocr, {"x": (1, 3, 48, 320)}) == {"x": (1, 3, 48, 320)}
    with pytest.raises(ConfigError, match=r"--input-shape x=1,3,N,N"):
        resolve_shapes(ocr)


def test_per_name_samples_take_rank0_scalars_stacks_and_whole_state_tensors(tmp_path: Path) -> None:
    path = tmp_path / "vad.npz"
    chunks = np.arange(3 * 512, dtype=np.float32).reshape(3, 1, 512)
    np.savez(path, input=chunks, sr=np.array(16000), h=np.ones((2, 1, 64), np.float32))
    got = load_samples(path, VAD, index=2, partial=True)
    assert sorted(got) == ["h", "input", "sr"]  # 'c' is the caller's to fill
    np.testing.assert_array_equal(got["input"], chunks[2])  # one more axis: a stack of inputs
    assert got["sr"].shape == () and got["sr"].dtype == np.int64
    assert got["h"].shape == (2, 1, 64)  # the model's fixed first axis: the tensor as it is
    with pytest.raises(ConfigError, match=r"has arrays \['h', 'input', 'sr'\], the model takes"):
        load_samples(path, VAD)
    np.savez(path, input=chunks, rate=np.array(16000))
    with pytest.raises(ConfigError, match="name the arrays after the inputs"):
        load_samples(path, VAD, partial=True)


def test_a_rank0_array_in_a_dataset_is_shared_and_stays_rank0_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "audio.npz"
    np.savez(path, audio=np.zeros((5, 512), np.float32), sr=np.array(16000))
    specs = [TensorSpec("audio", (None, 512), "float32"), TensorSpec("sr", (), "int64")]
    data = Dataset(path).for_model(specs)
    assert len(data) == 5
    batches = list(data.batches(2))
    assert [b["audio"].shape for b, _ in batches] == [(2, 512), (2, 512), (1, 512)]
    assert all(b["sr"].shape == () and int(b["sr"]) == 16000 for b, _ in batches)
