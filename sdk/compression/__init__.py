"""``edgeship.compress`` as a package whose modules are its phases (see ``search``'s docstring
for the map): ``facts`` -> ``plan`` -> build (``build``) and ``judge`` through an
``executor`` (in process, or ``scaleout`` on Ray; built models kept by ``cache``) -> ``measure``
-> ``select`` -> ``write`` (``record``: one candidate as JSON).  ``candidate`` holds the types
every phase passes on (``Planned``, ``Candidate``); ``events`` what the search tells a listener.

The package is ``edgeship.compression``, not ``edgeship.compress``: that name is the public
function (``edgeship.compress(model, device, ...)``), which a submodule of the same name would
replace on import.
"""

from edgeship.compression.api import compress
from edgeship.compression.result import CompressResult

__all__ = ["CompressResult", "compress"]
