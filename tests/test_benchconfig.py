"""One benchmark configuration: the host writes it as the agent's argv, the agent reads it back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from edgeship.bench import bench_config
from edgeship.core.errors import ConfigError
from edgeship.runtime.benchconfig import BenchConfig
from edgeship.runtime.inputs import parse_input_fills


def test_every_setting_survives_the_trip_through_the_agents_argv() -> None:
    config = BenchConfig(backend="openvino:CPU", threads=2, warmup=3, runs=7, min_seconds=0.25,
                         input_shapes={"x": (1, 3, 8, 8), "mask": (1, 8)}, precision="fp16",
                         seed=5, fills=parse_input_fills(["sr=16000"], ["ids=0:99"]),
                         data="/dev/shm/samples.npz", coverage=False)
    model, back = BenchConfig.from_argv(["m.onnx", *config.to_argv()])
    assert model == "m.onnx"
    assert back == config


def test_defaults_are_the_agents_defaults() -> None:
    _, parsed = BenchConfig.from_argv(["m.onnx"])
    assert parsed == BenchConfig()
    assert BenchConfig.from_argv(["m.onnx", *BenchConfig().to_argv()])[1] == BenchConfig()


def test_the_timeout_is_the_hosts_and_never_an_agent_flag() -> None:
    config = BenchConfig(timeout=30.0)
    assert "30.0" not in config.to_argv() and "--timeout" not in config.to_argv()
    assert BenchConfig.from_argv(["m.onnx", *config.to_argv()])[1].timeout is None


@pytest.mark.parametrize(("changes", "message"), [
    ({"runs": 0}, "--runs must be positive"),
    ({"warmup": -1}, "--warmup must be positive"),
    ({"min_seconds": math.nan}, "--min-seconds must be a finite number"),
    ({"min_seconds": math.inf}, "--min-seconds must be a finite number"),
    ({"timeout": 0.0}, "timeout must be a positive finite number"),
])
def test_settings_no_measurement_can_follow_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BenchConfig(**changes).check()


def test_bad_agent_arguments_are_a_config_error_naming_the_help() -> None:
    with pytest.raises(ConfigError, match="bad agent arguments") as err:
        BenchConfig.from_argv(["m.onnx", "--runs", "many"])
    assert "--help" in err.value.fix


def test_benchmarks_keywords_build_the_same_config(tmp_path: Path) -> None:
    samples = tmp_path / "s.npz"
    config = bench_config(runs=5, input_shapes=None, fills=None, data=samples, threads=1)
    assert config == BenchConfig(runs=5, threads=1, data=str(samples))
