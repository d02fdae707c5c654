"""Move a venv built at BUILT to FINAL: ``python3 -c SOURCE BUILT FINAL``.

Its scripts' #! lines and activate files name the build path; they are rewritten first (venvs
are not relocatable).  Stdlib only, Python 3.5 syntax.
"""

import os
import sys


def main():
    built, final = sys.argv[1], sys.argv[2]
    old, new = built.encode(), final.encode()
    paths = [os.path.join(built, "pyvenv.cfg")]
    paths += [os.path.join(built, "bin", n) for n in os.listdir(os.path.join(built, "bin"))]
    for path in paths:
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if old in data and b"\0" not in data:
            with open(path, "wb") as f:
                f.write(data.replace(old, new))
    if os.path.lexists(final):
        sys.exit("edgeship: " + final + " appeared meanwhile (another provision?)")
    os.rename(built, final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
