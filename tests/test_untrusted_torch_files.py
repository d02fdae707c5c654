"""A torch file runs code when torch loads it (pickle fallbacks, eval'd shape expressions,
compiled kernels), so edgeship opens one only under --trust-model-code / trust_model_code().
The crafted archive here is a real torch.export.save file whose sample inputs are a pickle that
writes a canary file: without the flag no command may create the canary."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.hostile import malicious_exported_program

COMMANDS = {
    "export": ["export", "{model}", "--to", "onnx", "-o", "{out}/m.onnx"],
    "quantize-tflite": ["quantize", "{model}", "--backend", "tflite", "--mode", "fp16",
                        "-o", "{out}/m.tflite"],
    "compress": ["compress", "{model}", "--device", "raspberry-pi-5", "--runs", "1", "--warmup", "0",
                 "--min-seconds", "0",
                 "-o", "{out}/c"],
    "prune": ["prune", "{model}", "--sparsity", "0.5", "-o", "{out}/p.onnx"],
}


def edgeship(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, cwd=cwd)


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_crafted_torch_file_never_runs_without_the_trust_flag(
        command: str, suffix: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    model = malicious_exported_program(tmp_path / f"evil{suffix}", canary)
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(model=model, out=out) for a in COMMANDS[command]]
    proc = edgeship(args, cwd=tmp_path)
    assert not canary.exists(), f"{command} ran code from the model file"
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--trust-model-code" in errors[0], proc.stderr[-2000:]
    assert proc.stderr.strip().endswith(errors[0]) and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


def test_the_api_refuses_a_torch_file_unless_trusted_and_the_payload_is_real(
        tmp_path: Path) -> None:
    """Without trust_model_code() the API refuses; inside it torch loads the file, and the
    canary appears: the crafted file really does run code, so the refusal above means something."""
    import edgeship
    from edgeship.core.errors import ConfigError

    canary = tmp_path / "canary"
    model = malicious_exported_program(tmp_path / "evil.pt2", canary)
    with pytest.raises(ConfigError, match="trust_model_code"):
        edgeship.export(model, "onnx", output=tmp_path / "m.onnx")
    assert not canary.exists()
    with edgeship.trust_model_code():
        edgeship.export(model, "onnx", output=tmp_path / "m.onnx")
    assert canary.read_text() == "pwned"
    with pytest.raises(ConfigError):  # the trust ends with the block
        edgeship.export(model, "onnx", output=tmp_path / "m2.onnx")


def test_the_trust_flag_says_it_executes_code_from_the_file() -> None:
    proc = run_cli_process("export", "--help", timeout=60)
    text = " ".join(proc.stdout.split())
    assert "--trust-model-code" in text and "EXECUTES CODE FROM THE FILE" in text
