"""What a compress search states about its setting: where it measures (the device, or this host
standing in for it), what the original model costs, and its progress on stderr."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Optional

_CONV_OPS = ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose")


def describe_measurement(target: Any, profile: Any) -> dict[str, Any]:
    """Where latency and memory come from, said plainly: a local run is the host's numbers."""
    from edgeship.profiles import match_profile
    from edgeship.targets import LocalTarget

    if isinstance(target, LocalTarget):
        from edgeship.runtime import sysinfo
        from edgeship.targets.facts import DeviceFacts

        facts = DeviceFacts.from_dict(sysinfo.host_facts() | {"cpu_flags": sysinfo.cpu_flags()})
    else:
        facts = target.probe()
    matched, _, reasons = match_profile(facts, [profile])
    cpu = facts.label or "unknown CPU"
    host = isinstance(target, LocalTarget)
    fit = "" if matched is not None else f"; it does not match {profile.name}: " + \
        reasons[0].removeprefix("no bundled profile fits: ").removeprefix(f"{profile.name}: ")
    if host:
        note = (f"measured on THIS HOST ({cpu}, {facts.cpu_count} cores), not on a "
                f"{profile.display_name}: latency and memory are the host's{fit}. "
                "Pass --target HOST to measure on the device.")
    else:
        note = f"measured on the device {target.name} ({cpu}){fit}"
    return {"kind": "host" if host else "device", "target": getattr(target, "name", "local"),
            "label": "this host" if host else target.name, "cpu": cpu,
            "machine": facts.machine, "cpu_count": facts.cpu_count,
            "profile": profile.name, "matches_profile": matched is not None, "note": note,
            # the planner's CPU precisions follow these; another machine's flags say nothing
            # about the device (the caller pops them: they are not a result)
            "cpu_flags": facts.cpu_flags if matched is not None else None}


def original_facts(original: Any, scratch: Path, data: Any) -> dict[str, Any]:
    """Format, size, MACs and the share of them in convolutions (the planner's dynamic-int8
    rule), counted on the ONNX graph; and concrete shapes for dynamic non-batch dimensions."""
    from edgeship.converters.evaluate import count_onnx, model_size

    shapes = {s.name: (1, *x.shape[1:]) for s, x in zip(original.specs, data.eval.x)}
    dynamic = any(not isinstance(d, int) or d < 0 for s in original.specs for d in s.shape[1:])
    facts: dict[str, Any] = {
        "format": original.kind, "path": str(original.path) if original.path else None,
        "description": original.description, "sha256": original.sha256,
        "size_bytes": model_size(original.path).bytes if original.path and original.kind != "torch"
        else None,
        "input_shapes": shapes if dynamic else None, "macs": None, "params": None,
        "conv_share": None,
    }
    onnx_path = _onnx_form(original, scratch, data)
    if onnx_path is not None:
        cost = count_onnx(onnx_path, shapes)
        conv = sum(v for k, v in cost.macs_by_op.items() if k in _CONV_OPS)
        counted = bool(cost.macs) and not cost.uncounted
        facts.update(macs=cost.macs if counted else None, params=cost.params,
                     conv_share=conv / cost.macs if counted else _conv_node_share(onnx_path),
                     conv_share_basis="MACs" if counted else "node count (MACs not countable)")
    return facts


def _conv_node_share(path: Path) -> Optional[float]:
    """Convolutions among the compute nodes, when shapes are too dynamic to count MACs."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
    compute = [o for o in ops if o in _CONV_OPS or o in ("MatMul", "Gemm", "MatMulInteger")]
    return sum(o in _CONV_OPS for o in compute) / len(compute) if compute else None


def _onnx_form(original: Any, scratch: Path, data: Any) -> Optional[Path]:
    if original.kind == "onnx":
        return Path(original.path)
    if original.kind != "torch":
        return None  # an IR or .tflite: not counted
    from edgeship.converters.export import export

    example = data.eval.x[0][:1] if original.path is None else None
    model = original.source.module if original.path is None else original.path
    out = scratch / "cost" / f"{original.stem}.onnx"
    return export(model, "onnx", out, example_input=example, check=False).path


class Progress:
    """Progress on stderr: a rich bar per candidate on a terminal; elsewhere (CI logs) one line
    per candidate and phase as it starts and ends, with its time; silent when disabled."""

    def __init__(self, enabled: bool, measured_on: dict[str, Any]) -> None:
        self.enabled = enabled
        self.measured_on = measured_on
        self._bar: Any = None
        self._task: Any = None
        self._count = 0
        self._lines = False  # plain lines instead of a bar
        self._phase: Optional[tuple[str, float]] = None
        self._started = 0.0

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            style = "bold yellow" if self.measured_on["kind"] == "host" else "bold"
            console.print(f"[{style}]{self.measured_on['note']}[/]", highlight=False)
            self._lines = not sys.stderr.isatty()
            if not self._lines:
                self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TimeElapsedColumn(), console=console)
                self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _line(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def _end_phase(self) -> None:
        if self._lines and self._phase is not None:
            name, t0 = self._phase
            self._line(f"{self._name}: {name} done in {time.perf_counter() - t0:.1f} s")
        self._phase = None

    def start(self, recipe: Any) -> None:
        self._count += 1
        self._name = f"{self._count:>2}. {recipe.name}"
        self._started = time.perf_counter()
        if self._bar is not None:
            self._task = self._bar.add_task(self._name, total=3)

    def stage(self, text: str) -> None:
        if self._lines:
            self._end_phase()
            self._phase = (text, time.perf_counter())
            self._line(f"{self._name}: {text}…")
        if self._bar is not None:
            self._bar.update(self._task, description=f"{self._name}: {text}")
            if not text.startswith("building"):
                self._bar.advance(self._task)

    def finish(self, cand: Any) -> None:
        mark = "✓" if cand.fits else "✗" if cand.measured else "!"
        text = cand.status() if not cand.fits else "fits every budget"
        if self._lines:
            self._end_phase()
            self._line(f"{self._name} {mark} {_short(text)} "
                       f"({time.perf_counter() - self._started:.1f} s)")
        if self._bar is None:
            return
        self._bar.update(self._task, completed=3,
                         description=f"{self._name} {mark} {_short(text)}")

    def skip(self, cand: Any) -> None:
        self.start(cand.recipe)
        if self._lines:
            self._line(f"{self._name} – {_short(cand.status())}")
        if self._bar is not None:
            self._bar.update(self._task, completed=3,
                             description=f"{self._name} – {_short(cand.status())}")


def _short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
