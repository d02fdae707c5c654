"""compress as phases: ``original`` (the user's model and data), ``build`` (a recipe's steps
run on it), and the phases the compress pipeline adds beside them."""

import sys as _sys
import types as _types
from typing import Any as _Any


class _CallableModule(_types.ModuleType):
    """Keeps ``edgeship.compress(...)`` the public function: importing this package sets the
    ``edgeship.compress`` attribute to the package, shadowing the lazily exported function."""

    def __call__(self, *args: _Any, **kwargs: _Any) -> _Any:
        from edgeship.compressing import compress

        return compress(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
