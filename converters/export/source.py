"""What an export starts from: a torch module (with example inputs) or an ONNX file.

``resolve_source`` turns the user's model argument into a ``Source``: an in-memory
``nn.Module``, a TorchScript file (``torch.jit.save``), an exported program (``torch.export.save``,
``.pt2``), or an ``.onnx`` file (validated here, so a corrupt file fails before any converter
touches it).  A ``Source`` also runs itself (``reference``) so parity has something to compare
every export against.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.parity import Runner
from edgeship.core.artifact import sha256_file
from edgeship.core.errors import ConfigError, ModelError, UnsupportedError
from edgeship.runtime.formats import SOURCES, is_format, is_torch_file
from edgeship.runtime.session import TensorSpec

# TorchScript or exported-program archives: the formats table's torch source
TORCH_SUFFIXES = SOURCES["torch"].suffixes
TRUST_FLAG = "--trust-model-code"

# torch 2.13 cannot load a torch file without running code from it: torch.export.load falls
# back to torch.load(weights_only=False) (sample inputs, weights and constants marked
# use_pickle), pickle.loads opaque constants, sympy.sympify()s (eval) the symbolic-shape
# expressions of its JSON graph, and dlopens AOTInductor libraries it carries; TorchScript
# runs the archive's own code.  So a torch file is opened only when the user says it is trusted.
# A process-wide flag, not a ContextVar: compress builds candidates in worker threads, which
# would not see a ContextVar set by the command.
_TRUSTED = {"model_code": False}


@contextmanager
def trust_model_code(trusted: bool = True) -> Iterator[None]:
    """Allow (inside the block) loading torch files (.pt, .pth, .pt2, .ts), which executes code
    from the file: only for files you made or whose source you trust.  The CLI's twin is
    ``--trust-model-code``.

    Example:
        >>> with edgeship.trust_model_code():                     # doctest: +SKIP
        ...     edgeship.export("mine.pt2", "onnx")
    """
    before = _TRUSTED["model_code"]
    _TRUSTED["model_code"] = trusted
    try:
        yield
    finally:
        _TRUSTED["model_code"] = before


def set_trust_model_code(trusted: bool) -> None:
    """The CLI's ``--trust-model-code`` for the rest of this process (one command per process)."""
    _TRUSTED["model_code"] = trusted


def check_trusted(path: Path) -> None:
    """Refuse a torch file unless the user trusts the code in it (see ``trust_model_code``)."""
    if not _TRUSTED["model_code"]:
        raise ConfigError(
            f"'{path.name}' is a torch file, and loading one runs code stored in it (pickle, "
            "eval'd shape expressions, compiled kernels), so edgeship does not open it by default",
            f"pass {TRUST_FLAG} (Python: with edgeship.trust_model_code():) only if you made the "
            "file or trust its source, or give the model as .onnx")


@dataclass
class Source:
    """A model to export and how to run it as the parity reference."""

    kind: str  # "torch" | "onnx"
    description: str  # for provenance: a path, or "torch.nn.Module <ClassName>"
    sha256: str
    inputs: list[TensorSpec]  # names, shapes (a dynamic batch is None), dtypes
    output_names: list[str]
    path: Optional[Path] = None
    module: Any = None  # kind "torch": an nn.Module in eval mode
    example_inputs: tuple[Any, ...] = ()  # kind "torch": torch tensors to trace with
    fixed_batch: Optional[int] = None  # the batch size the source insists on (static programs)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # --input-shape
    input_fills: dict[str, Any] = field(default_factory=dict)  # --input-value / --input-range
    notes: dict[str, Any] = field(default_factory=dict)

    def reference(self) -> tuple[str, Runner, Optional[int]]:
        """(name, runner, fixed batch size or None) of the model every export is checked against."""
        if self.kind == "torch":
            return "torch " + _torch_version(), _torch_runner(self.module), self.fixed_batch
        from edgeship.converters.parity import fixed_batch, session_runner
        from edgeship.runtime import load

        session = load(self.path, backend="onnxruntime")  # type: ignore[arg-type]
        return f"onnxruntime {session.info.version}", session_runner(session), fixed_batch(
            session.inputs)


def resolve_source(
    model: Any,
    example_input: Any = None,
    *,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
) -> Source:
    """The model argument of ``export`` as a Source (see the module docstring)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file '{path}' does not exist", "check the path")
        if path.stat().st_size == 0:
            raise ModelError(f"model file '{path}' is empty", "re-export or re-copy the model")
        suffix = path.suffix.lower()
        if is_format(path, "onnx"):
            return _onnx_source(path, input_shapes)
        if is_torch_file(path):
            check_trusted(path)
            module, examples, batch = _load_torch_file(path, example_input, input_shapes)
            return _torch_source(module, examples, str(path), sha256_file(path),
                                 input_names, output_names, path, batch)
        raise ModelError(
            f"edgeship cannot export from '{path.name}' (suffix '{suffix or '(none)'}')",
            f"pass an .onnx file, a TorchScript/exported-program file ({', '.join(TORCH_SUFFIXES)}), "
            "or a torch nn.Module from Python",
        )
    if _is_torch_module(model):
        if example_input is None:
            raise ConfigError("exporting a torch module needs an example input",
                              "pass example_input=torch.randn(1, 3, 224, 224) (your input's shape)")
        examples = tuple(example_input) if isinstance(example_input, (tuple, list)) else (
            example_input,)
        examples = tuple(_as_tensor(e) for e in examples)
        return _torch_source(model.eval(), examples, f"torch.nn.Module {type(model).__name__}",
                             module_sha256(model), input_names, output_names, None)
    raise ConfigError(f"cannot export a {type(model).__name__}",
                      "pass a model file path or a torch nn.Module")


# -- ONNX ------------------------------------------------------------------------------------------
def _onnx_source(path: Path, input_shapes: Optional[dict[str, tuple[int, ...]]] = None) -> Source:
    from edgeship.converters.onnx_shapes import fix_specs

    proto = read_onnx(path)
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [_onnx_spec(v) for v in proto.graph.input if v.name not in initializers]
    return Source("onnx", str(path), sha256_file(path), fix_specs(inputs, input_shapes),
                  [o.name for o in proto.graph.output], path=path,
                  input_shapes=dict(input_shapes or {}))


def read_onnx(path: Path) -> Any:
    """Load and check an ONNX file; anything wrong with it is a ModelError naming the file."""
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelError(f"'{path.name}' is not a valid ONNX model ({detail})",
                         "re-export the model; the file may be truncated or not ONNX") from None
    return proto


_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 2: "uint8", 3: "int8", 6: "int32",
                7: "int64", 9: "bool"}


def _onnx_spec(value: Any) -> TensorSpec:
    tensor = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor.elem_type)
    if dtype is None:
        raise UnsupportedError(f"ONNX input '{value.name}' has element type {tensor.elem_type}",
                               "export the model with float, integer or bool inputs")
    # a symbolic name ("batch") is kept: inputs that share one share one size (resolve_shapes)
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                  for d in tensor.shape.dim)
    return TensorSpec(value.name, shape, dtype)


# -- torch -----------------------------------------------------------------------------------------
def _is_torch_module(model: Any) -> bool:
    return any(c.__module__.startswith("torch.") and c.__name__ == "Module"
               for c in type(model).__mro__)


def _as_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise ConfigError(f"example inputs must be tensors or numpy arrays, got {type(value).__name__}",
                          "pass torch.randn(...) shaped like one real input batch")
    return value


def _torch_source(module: Any, examples: tuple[Any, ...], description: str, sha256: str,
                  input_names: Optional[Sequence[str]], output_names: Optional[Sequence[str]],
                  path: Optional[Path], fixed_batch: Optional[int] = None) -> Source:
    import torch

    names = list(input_names) if input_names else (
        ["input"] if len(examples) == 1 else [f"input_{i}" for i in range(len(examples))])
    if len(names) != len(examples):
        raise ConfigError(f"{len(names)} input names for {len(examples)} example inputs",
                          "give one name per input")
    specs = [TensorSpec(n, (fixed_batch, *e.shape[1:]), str(e.dtype).replace("torch.", ""))
             for n, e in zip(names, examples)]
    try:
        with torch.no_grad():
            outputs = _flatten(module(*examples))
    except Exception as exc:
        raise ModelError(f"the model fails on the example input: {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}",
                         "pass an example input of the shape and dtype the model takes") from None
    outs = list(output_names) if output_names else (
        ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))])
    if len(outs) != len(outputs):
        raise ConfigError(f"{len(outs)} output names for {len(outputs)} outputs",
                          "give one name per output")
    return Source("torch", description, sha256, specs, outs, path=path, module=module,
                  example_inputs=examples, fixed_batch=fixed_batch)


def _load_torch_file(path: Path, example_input: Any, input_shapes: Optional[dict[str, tuple[int, ...]]]
                     ) -> tuple[Any, tuple[Any, ...], Optional[int]]:
    """(module, example inputs, fixed batch): an exported program carries its example inputs
    and says whether its batch is dynamic; TorchScript needs --input-shape."""
    import torch

    check_trusted(path)  # every caller comes through here, whatever the suffix
    if _is_exported_program(path):
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelError(f"cannot load the exported program '{path.name}' ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:160]})",
                             "re-save it with torch.export.save from this torch version") from None
        args, _ = program.example_inputs
        examples = (example_input,) if example_input is not None else tuple(args)
        return _program_module(program), examples, _program_batch(program)
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelError(f"'{path.name}' is neither a TorchScript nor an exported-program archive "
                         f"({type(exc).__name__})",
                         "save it with torch.jit.save or torch.export.save") from None
    if example_input is not None:
        return module, (example_input,), None
    if not input_shapes:
        raise ConfigError(f"TorchScript file '{path.name}' does not record its input shapes",
                          "pass --input-shape input=1,3,224,224 (one per input, in order)")
    return module, tuple(torch.rand(*shape) for shape in input_shapes.values()), None


def _is_exported_program(path: Path) -> bool:
    """torch.export.save archives carry an ``archive_format`` entry; TorchScript ones do not."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("archive_format") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _program_module(program: Any) -> Any:
    """An exported program as an nn.Module the exporters can call ``.eval()`` on.

    ``program.module()`` refuses ``train()``/``eval()`` (the graph was captured in one mode
    for good), and torch.onnx's TorchScript exporter calls ``train(False)``; the wrapper makes
    that a no-op instead of a failure."""
    import torch

    class ExportedProgramModule(torch.nn.Module):
        def __init__(self, graph: Any) -> None:
            super().__init__()
            self.graph = graph

        def forward(self, *args: Any) -> Any:
            return self.graph(*args)

        def train(self, mode: bool = True) -> ExportedProgramModule:
            return self

    return ExportedProgramModule(program.module())


def _program_batch(program: Any) -> Optional[int]:
    """The first input's batch size when the program was exported with a static one."""
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            dim = node.meta["val"].shape[0]
            return dim if isinstance(dim, int) else None
    return None


def module_sha256(module: Any) -> str:
    """A fingerprint of a module's weights: class name plus every state-dict tensor, in order."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    return [value]


def _torch_runner(module: Any) -> Runner:
    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [t.detach().cpu().numpy() for t in _flatten(out)]

    return run


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def op_name(text: str) -> Optional[str]:
    """The operator a converter's error message names, if it names one."""
    match = re.search(r"(aten::[\w.]+|operator '([^']+)'|operations?: ?([\w.:, ]+))", text)
    if not match:
        return None
    return (match.group(2) or match.group(3) or match.group(1)).strip()

