"""The core layer: what every converter and every part of the SDK share, and nothing more.

``artifact`` (a model file and its manifest), ``data`` (samples), ``errors`` (the exit-code
taxonomy), ``io`` (atomic writes), ``workdir`` and ``yamlfiles``. It imports only the runtime
(and the standard library), so the converters can build on it without importing the SDK.
"""

__version__ = "0.1.0"
