"""Recipes: what ``compress`` tries, as data.  A ``Recipe`` is an ordered list of steps (Prune,
Distill, Quantize, Export) plus how to run the result (backend, inference precision hint).

The steps are ``edgeship.converters.steps`` (``PruneStep``, ``DistillStep``, ``QuantizeStep``,
``ExportStep``, the same classes under these names here): each entry of ``steps:`` is one of
them, and its ``step`` key (``prune | distill | quantize | export``, required) says which.

The planner (``edgeship.compression.plan``) builds recipes from a device profile; users can write their
own in YAML and pass them with ``edgeship compress --recipes FILE.yaml``::

    recipes:
      - name: int8-openvino
        backend: openvino
        steps:
          - {step: quantize, mode: static, backend: openvino}
      - name: pruned50-int8-tflite
        steps:
          - {step: prune, sparsity: 0.5}
          - {step: distill, epochs: 10}
          - {step: quantize, mode: static, backend: tflite}

A recipe's result format is its last export or quantize step's; its backend defaults to the
first backend the formats table lists for that format.  Unknown keys are an error (``extra``
forbidden), so a typo never silently turns into a default; a missing or unknown ``step`` is a
one-line error naming the entry.

Example:
    >>> from edgeship.recipe import Recipe, QuantizeStep
    >>> Recipe("int8-onnx", (QuantizeStep(backend="onnxruntime"),)).format
    'onnx'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from edgeship.converters.steps import (
    TRAINING_STEPS,
    DistillStep,
    ExportStep,
    PruneStep,
    QuantizeStep,
    Step,
    StepField,
    native_format,
)
from edgeship.core.errors import ConfigError
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

_FORBID = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Recipe:
    """An ordered list of steps and how to run what they produce.

    ``backend``: ``name[:device]`` that runs the result (default: the format's first backend);
    ``precision``: an inference precision hint for backends that take one (OpenVINO: fp32, bf16,
    fp16), not a file precision; ``only_if_missed``: run this recipe only when the named one
    failed or missed the accuracy budget (an expensive fallback, e.g. accuracy-aware int8).
    """

    __pydantic_config__ = _FORBID
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=80)]
    steps: Annotated[tuple[StepField, ...], Field(min_length=1)]
    backend: Optional[str] = None
    precision: Optional[Literal["fp32", "fp16", "bf16"]] = None
    only_if_missed: Optional[str] = None
    note: str = ""
    cost: Annotated[int, Field(ge=0)] = 0  # the planner's ordering key; cheap first

    @property
    def format(self) -> Optional[str]:
        """The format of the model this recipe produces (None: no steps, the original's)."""
        for step in reversed(self.steps):
            if isinstance(step, (QuantizeStep, ExportStep)):
                return step.format
        if not self.steps:
            return None
        raise ConfigError(f"recipe '{self.name}' never exports or quantizes",
                          "end the recipe with an export or quantize step")

    @property
    def runs_on(self) -> str:
        """``backend[:device]`` that runs the result."""
        if self.backend:
            return self.backend
        from edgeship.runtime.formats import get_format

        if self.format is None:
            raise ConfigError(f"recipe '{self.name}' has no steps and no backend",
                              "name the backend that runs the original model")
        return get_format(self.format).backends[0]

    @property
    def needs_training_data(self) -> bool:
        return any(isinstance(s, TRAINING_STEPS) for s in self.steps)

    def labels(self) -> list[str]:
        """One short label per step, e.g. ``["prune(50% channels, l1)", "export(tflite)"]``."""
        out = [s.label() for s in self.steps] or ["the original model, as given"]
        if self.precision:
            out.append(f"run({self.runs_on}, {self.precision})")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [asdict(s) for s in self.steps]
        return {k: v for k, v in data.items() if v not in (None, "", 0) or k == "steps"}


@dataclass(frozen=True)
class _RecipeFile:
    __pydantic_config__ = _FORBID
    recipes: list[Recipe] = field(default_factory=list)


def parse_recipes(data: Any, source: str = "recipes") -> list[Recipe]:
    """Validate recipes from parsed YAML/JSON: ``{"recipes": [...]}`` or a bare list."""
    if isinstance(data, list):
        data = {"recipes": data}
    try:
        recipes = TypeAdapter(_RecipeFile).validate_python(data).recipes
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{source}: {where}: {err['msg']}",
                          "see edgeship.recipe's docstring for the recipe format") from None
    if not recipes:
        raise ConfigError(f"{source} holds no recipes", "list at least one under 'recipes:'")
    names = [r.name for r in recipes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source} names recipes {dupes} more than once", "give each a unique name")
    for r in recipes:
        r.format  # noqa: B018 - raises for a recipe that never produces a model file
        if r.only_if_missed and r.only_if_missed not in names:
            raise ConfigError(f"recipe '{r.name}': only_if_missed names unknown recipe "
                              f"'{r.only_if_missed}'", f"use one of {names}")
    return recipes


def load_recipes(path: Union[str, Path]) -> list[Recipe]:
    """Recipes from a YAML file (see the module docstring).

    Example:
        >>> load_recipes("my-recipes.yaml")[0].name         # doctest: +SKIP
        'int8-openvino'
    """
    from edgeship.core.yamlfiles import read_yaml

    path = Path(path)
    data = read_yaml(path, f"recipes file '{path}'",
                     "write it as YAML: recipes: [{name: ..., steps: [...]}]")
    return parse_recipes(data, f"recipes file '{path.name}'")


__all__ = ["DistillStep", "ExportStep", "PruneStep", "QuantizeStep", "Recipe", "Step",
           "load_recipes", "native_format", "parse_recipes"]
