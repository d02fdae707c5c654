"""Facts about the device in one run:
``python3 -c SOURCE SYSINFO BACKENDS_JSON MIN_PYTHON [BLOCKED_JSON]``.

SYSINFO_SOURCE is the text of ``edgeship/runtime/sysinfo.py`` (stdlib only), so the device
reports the very keys ``LocalTarget.probe()`` reports here; BACKENDS_JSON maps each backend to
its importable modules (runtime/formats.py); BLOCKED_JSON lists the modules kept from
importing alongside them (telemetry that would leave files on the device, as the agent does).
Prints one JSON object.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import types

# device node pattern -> kind (data, not code: add boards here)
ACCELERATOR_NODES = (
    ("/dev/nvidia[0-9]*", "gpu"),  # NVIDIA discrete GPU
    ("/dev/nvhost-ctrl-gpu", "gpu"),  # NVIDIA Jetson (Tegra) GPU
    ("/dev/dri/renderD*", "gpu"),  # any DRM GPU (Intel, AMD, Mali, ...); driver says which
    ("/dev/accel/accel*", "npu"),  # kernel accel subsystem (Intel NPU, ...)
    ("/dev/apex_*", "npu"),  # Google Coral Edge TPU
    ("/dev/hailo*", "npu"),  # Hailo-8
    ("/dev/rknpu*", "npu"),  # Rockchip NPU (older kernels)
)


def driver_of(node):
    name = os.path.basename(node)
    for cls in ("drm", "accel", "misc", "apex", "hailo_chardev"):
        link = os.path.join("/sys/class", cls, name, "device", "driver")
        if os.path.islink(link):
            return os.path.basename(os.readlink(link))
    return None


def nvidia_smi():
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def accelerators():
    """GPU/NPU device nodes present, with their kernel driver."""
    found = []
    for pattern, kind in ACCELERATOR_NODES:
        for node in sorted(glob.glob(pattern)):
            found.append({"kind": kind, "node": node, "driver": driver_of(node)})
    for name in nvidia_smi():
        found.append({"kind": "gpu", "node": "nvidia-smi", "driver": "nvidia", "name": name})
    return found


def backends(table, blocked=()):
    """Backends importable on the device and their versions (as available_backends())."""
    import importlib

    for name in blocked:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    found = {}
    for name, modules in table.items():
        for module in modules:
            try:
                imported = importlib.import_module(module)
            except Exception:
                continue
            found[name] = str(getattr(imported, "__version__", "") or "installed")
            break
    return found


def numpy_version():
    try:
        import numpy

        return numpy.__version__
    except Exception:
        return None


def load_sysinfo(text):
    module = types.ModuleType("edgeship_device_sysinfo")
    sys.modules[module.__name__] = module
    exec(compile(text, "edgeship/runtime/sysinfo.py", "exec"), module.__dict__)
    return module


def main():
    if tuple(sys.version_info[:2]) < tuple(json.loads(sys.argv[3])):
        out = {"python": ".".join(str(v) for v in sys.version_info[:3]), "too_old": True}
    else:
        sysinfo = load_sysinfo(sys.argv[1])
        out = sysinfo.host_facts()
        out.update(cpu_flags=sysinfo.cpu_flags(), thermal=sysinfo.thermal(),
                   backends=backends(json.loads(sys.argv[2]),
                                     json.loads(sys.argv[4]) if len(sys.argv) > 4 else ()),
                   accelerators=accelerators(),
                   numpy=numpy_version())
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
