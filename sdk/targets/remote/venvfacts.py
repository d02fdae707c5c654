"""Before provisioning: the device's CPU, Python and C library (keyed as the probe keys them),
its edgeship venv and the wheels already uploaded: ``python3 -c SOURCE VENV_DIR WHEEL_DIR``.

Runs with the device's system python3, stdlib only and Python 3.5 syntax, so an old Python
still gets far enough to report its version.  Venvs an interrupted provision left half-built
(and could not remove) are swept after 10 minutes.  Prints one JSON object.
"""

import glob
import json
import os
import platform
import shutil
import struct
import sys
import time


def sweep(venv):
    for stale in glob.glob(glob.escape(venv) + ".edgeship-tmp-*"):
        try:
            if time.time() - os.stat(stale).st_mtime > 600:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def wheels_in(wheel_dir):
    wheels = {}
    if os.path.isdir(wheel_dir):
        for name in os.listdir(wheel_dir):
            if name.endswith(".whl"):
                wheels[name] = os.path.getsize(os.path.join(wheel_dir, name))
    return wheels


def installed_in(venv):
    installed = {}
    try:
        from importlib import metadata

        for dist in metadata.distributions(path=glob.glob(venv + "/lib/python*/site-packages")):
            name = dist.metadata["Name"] or ""
            installed[name.lower().replace("_", "-")] = dist.version
    except ImportError:
        pass
    return installed


def main():
    venv = os.path.expanduser(sys.argv[1])
    wheel_dir = os.path.expanduser(sys.argv[2])
    venv_py = os.path.join(venv, "bin", "python")
    sweep(venv)
    names = os.confstr_names
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in names else None
    out = {"machine": platform.machine(), "python_bits": struct.calcsize("P") * 8,
           "python": ".".join(str(v) for v in sys.version_info[:3]), "libc": libc,
           "executable": sys.executable, "venv_python": venv_py,
           "venv_exists": os.path.exists(venv_py), "installed": installed_in(venv),
           "wheel_dir": wheel_dir, "wheels": wheels_in(wheel_dir)}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
