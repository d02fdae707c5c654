"""Property-based fuzzing of every reader of user input, in this process (fast): .npz files,
images and image folders, profile YAML, recipes, manifests, report JSON, hosts files, SSH
config, known_hosts, ONNX files, and the CLI's numbers and shapes.  Whatever comes in, a reader
returns or raises one EdgeshipError with a documented exit code (never 1) and a one-line
message with a fix, and writes nothing (tests/fixtures/fuzzing.py has the rules).  The model
formats whose parsers are native code (TFLite, OpenVINO IR) are fuzzed through the CLI in
test_fuzz_cli.py, where a crash cannot take the test run down with it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.fuzzing import clean, fuzz, mutate, mutations, snapshot
from tests.fixtures.hostile import png

REPO = Path(__file__).parent.parent
PROFILE = REPO / "device_profiles" / "raspberry-pi-5.yaml"
MANIFEST = REPO / "examples" / "models" / "fashion_mnist_cnn.onnx.manifest.json"
RECIPES = """recipes:
  - name: int8-openvino
    backend: openvino
    steps:
      - {step: quantize, mode: static, backend: openvino}
  - name: pruned50-int8-tflite
    steps:
      - {step: prune, sparsity: 0.5}
      - {step: distill, epochs: 10}
      - {step: quantize, mode: static, backend: tflite}
"""
SSH_CONFIG = """Host dev
    HostName 10.0.0.7
    User pi
    Port 2222
    IdentityFile ~/.ssh/id_ed25519
    ConnectTimeout 5
    ServerAliveInterval 10
    ServerAliveCountMax 3
    ProxyJump bastion
    StrictHostKeyChecking accept-new
Host *
    UserKnownHostsFile ~/.ssh/known_hosts
"""
KNOWN_HOSTS = (
    "dev ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    "[10.0.0.7]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENj"
    "QEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WJ2gVx9Aq1T6I0=\n"
    "|1|JfKTdBh7rNbXkVoQCRP4LAU1/oI=|wGbLvhfn9D3KQ9Lq3tDp9IXf6L8= ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC\n"
)

text_bits = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=24)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                    st.integers(min_value=10**30, max_value=10**40), st.floats(allow_nan=True),
                    text_bits, st.lists(st.integers(-2, 300), max_size=4),
                    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def unchanged(folder: Path, before: dict[str, bytes]) -> None:
    assert snapshot(folder) == before, "a reader wrote or changed a file"


def mutate_mapping(data: Any, draw: Any) -> Any:
    """Drop, retype or add one key somewhere in a parsed YAML/JSON document."""
    if not isinstance(data, dict) or not data:
        return draw(scalars)
    data = dict(data)
    key = draw(st.sampled_from(sorted(data, key=str)))
    action = draw(st.sampled_from(["drop", "retype", "add", "descend"]))
    if action == "drop":
        data.pop(key)
    elif action == "retype":
        data[key] = draw(scalars)
    elif action == "add":
        data[draw(st.text(min_size=1, max_size=8))] = draw(scalars)
    elif isinstance(data[key], dict):
        data[key] = mutate_mapping(data[key], draw)
    elif isinstance(data[key], list) and data[key]:
        items = list(data[key])
        i = draw(st.integers(0, len(items) - 1))
        items[i] = mutate_mapping(items[i], draw)
        data[key] = items
    else:
        data[key] = draw(scalars)
    return data


# -- .npz ------------------------------------------------------------------------------------------
def _npz_seed(compressed: bool) -> bytes:
    buf = io.BytesIO()
    save = np.savez_compressed if compressed else np.savez
    save(buf, x=np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4),
         y=np.array([0, 1]))
    return buf.getvalue()


NPZ_SEEDS = [_npz_seed(False), _npz_seed(True)]
descrs = st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", "<f2", "|O", "<U5", "|V8", "<c8",
                          "bogus", "<f4]", "[('a', '<f4')]"])
shapes = st.lists(st.one_of(st.integers(0, 8), st.integers(-3, 10**12)), max_size=5)


@st.composite
def crafted_npz(draw: Any) -> bytes:
    header = io.BytesIO()
    descr = draw(descrs)
    shape = tuple(draw(shapes))
    text = (f"{{'descr': {descr!r}, 'fortran_order': {draw(st.booleans())}, "
            f"'shape': {shape!r}, }}")
    text = draw(st.sampled_from([text, text[:draw(st.integers(0, len(text)))]]))
    raw = text.encode("latin1", "replace")
    raw += b" " * ((-len(raw) - 11) % 64) + b"\n"
    header.write(b"\x93NUMPY" + bytes([draw(st.sampled_from([1, 2, 3, 9])), 0]))
    header.write(len(raw).to_bytes(2, "little") + raw)
    body = draw(st.binary(max_size=256))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", draw(st.sampled_from([zipfile.ZIP_STORED,
                                                          zipfile.ZIP_DEFLATED]))) as archive:
        archive.writestr(draw(st.sampled_from(["x.npy", "y.npy", "input.npy", "x.txt"])),
                         header.getvalue() + body)
    return out.getvalue()


@fuzz(180)
@given(data=st.one_of(st.tuples(st.sampled_from(NPZ_SEEDS), mutations()).map(
    lambda c: mutate(c[0], c[1])), crafted_npz()))
def test_npz_files(data: bytes, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.core.data import Dataset
    from edgeship.runtime.inputs import load_samples
    from edgeship.runtime.session import TensorSpec

    path = write(tmp_path, "fuzz.npz", data)
    before = snapshot(tmp_path)
    dataset = clean("npz dataset", Dataset, path)
    if dataset is not None:
        clean("npz dataset", lambda: list(dataset.for_model([TensorSpec("x", (None, 1, 4, 4),
                                                                         "float32")])))
    clean("npz samples", load_samples, path, [TensorSpec("x", (None, 1, 4, 4), "float32")])
    unchanged(tmp_path, before)
    assert not any(fuzz_dir.iterdir())


# -- images ----------------------------------------------------------------------------------------
def _png_seeds() -> list[bytes]:
    real = sorted((REPO / "examples" / "edge_app" / "images").glob("*.png"))[:2]
    seeds = [p.read_bytes() for p in real]
    try:
        from PIL import Image

        for mode in ("RGB", "RGBA", "P", "LA", "I;16", "1"):
            buf = io.BytesIO()
            Image.new(mode if mode != "1" else "1", (7, 5)).save(buf, format="PNG")
            seeds.append(buf.getvalue())
    except ImportError:  # Pillow is a dev dependency; without it the real files still seed
        pass
    seeds.append(b"P5\n4 3\n255\n" + bytes(range(12)))
    seeds.append(b"P3\n# comment\n2 1\n65535\n1 2 3 4 5 6\n")
    return seeds


PNG_SEEDS = _png_seeds()


@st.composite
def crafted_png_header(draw: Any) -> bytes:
    width = draw(st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)))
    height = draw(st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)))
    data = png(1, 1, rows=draw(st.binary(max_size=200)))
    ihdr = (width.to_bytes(4, "big") + height.to_bytes(4, "big")
            + bytes([draw(st.sampled_from([0, 1, 2, 4, 8, 16, 32])),
                     draw(st.sampled_from([0, 1, 2, 3, 4, 6, 7])), 0, 0,
                     draw(st.sampled_from([0, 1]))]))
    return data[:16] + ihdr + data[29:]


@fuzz(200)
@given(data=st.one_of(st.tuples(st.sampled_from(PNG_SEEDS), mutations()).map(
    lambda c: mutate(c[0], c[1])), crafted_png_header()))
def test_image_files(data: bytes, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.runtime.images import read_image

    suffix = ".pgm" if data[:1] == b"P" else ".png"
    path = write(tmp_path, f"fuzz{suffix}", data)
    before = snapshot(tmp_path)
    image = clean("image", read_image, path, max_pixels=2**20)
    if image is not None:
        assert image.ndim in (2, 3) and image.size > 0
    unchanged(tmp_path, before)


labels_text = st.one_of(
    st.just("filename,label\n0000_dress.png,dress\n0001_coat.png,3\n"),
    text_bits.map(lambda t: f"0000_dress.png,{t}\n0001_coat.png,1\n"),
    st.text(max_size=60))


@fuzz(60)
@given(labels=labels_text, image=st.tuples(st.sampled_from(PNG_SEEDS), mutations()).map(
    lambda c: mutate(c[0], c[1])), spec=st.dictionaries(
        st.sampled_from(["resize", "color", "scale", "mean", "std", "layout", "dtype"]),
        scalars, max_size=4))
def test_image_folders(labels: str, image: bytes, spec: dict[str, Any], fuzz_dir: Path,
                       tmp_path: Path) -> None:
    from edgeship.core.data import Dataset

    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    good = REPO / "examples" / "edge_app" / "images" / "0000_dress.png"
    write(folder, "0000_dress.png", good.read_bytes())
    write(folder, "0001_coat.png", image)
    write(folder, "labels.csv", labels.encode("utf-8", "surrogatepass"))
    base = {"resize": [28, 28], "color": "gray", "scale": 1 / 255, "layout": "NCHW",
            "dtype": "float32"}
    before = snapshot(tmp_path)
    dataset = clean("image folder", Dataset, folder, preprocessing={**base, **spec})
    if dataset is not None:
        clean("image folder", dataset.arrays)
    unchanged(tmp_path, before)


# -- profiles, recipes, manifests, reports --------------------------------------------------------
def yaml_text_cases(seed: str) -> Any:
    @st.composite
    def cases(draw: Any) -> str:
        kind = draw(st.sampled_from(["mapping", "text", "bytes"]))
        if kind == "mapping":
            return yaml.safe_dump(mutate_mapping(yaml.safe_load(seed), draw))
        if kind == "text":
            pos = draw(st.integers(0, len(seed)))
            return seed[:pos] + draw(st.text(max_size=20)) + seed[pos:]
        return mutate(seed.encode(), draw(mutations())).decode("latin1")
    return cases()


@fuzz(160)
@given(text=yaml_text_cases(PROFILE.read_text()), raw=st.booleans())
def test_profile_yaml(text: str, raw: bool, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.profiles import load_profile, parse_profile

    if raw:  # bytes as they may lie on disk, UTF-8 or not
        path = write(tmp_path, "fuzz.yaml", text.encode("latin1", "replace"))
        clean("profile yaml", load_profile, path)
    else:
        clean("profile yaml", parse_profile, text, "profile 'fuzz'")
    assert not any(fuzz_dir.iterdir())


@fuzz(120)
@given(text=yaml_text_cases(RECIPES))
def test_recipe_yaml(text: str, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.recipe import load_recipes

    path = write(tmp_path, "recipes.yaml", text.encode("utf-8", "surrogatepass"))
    before = snapshot(tmp_path)
    clean("recipes", load_recipes, path)
    unchanged(tmp_path, before)


def json_cases(seed: dict[str, Any]) -> Any:
    @st.composite
    def cases(draw: Any) -> bytes:
        kind = draw(st.sampled_from(["mapping", "mapping", "bytes", "deep"]))
        if kind == "mapping":
            return json.dumps(mutate_mapping(seed, draw)).encode()
        if kind == "deep":
            depth = draw(st.sampled_from([10, 1000, 100000]))
            return ("[" * depth + "]" * depth).encode()
        return mutate(json.dumps(seed).encode(), draw(mutations()))
    return cases()


@fuzz(140)
@given(data=json_cases(json.loads(MANIFEST.read_text())))
def test_manifests(data: bytes, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.core.artifact import read_manifest
    from edgeship.runtime.manifest import read_manifest as read_runtime_manifest
    from edgeship.runtime.preprocess import preprocessing_from_manifest

    model = write(tmp_path, "m.onnx", b"not read")
    write(tmp_path, "m.onnx.manifest.json", data)
    before = snapshot(tmp_path)
    clean("manifest", read_manifest, tmp_path / "m.onnx.manifest.json")
    manifest = clean("manifest", read_runtime_manifest, model)
    if manifest is not None:
        spec = clean("manifest", preprocessing_from_manifest, manifest)
        if spec is not None:
            pixels = np.zeros((30, 30), np.uint8)
            clean("manifest", spec.sample, pixels)
    unchanged(tmp_path, before)


@pytest.fixture(scope="module")
def bench_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real measurement of a small model: the seed report JSON."""
    from edgeship.runtime.bench import measure

    from tests.fixtures.onnx_graphs import linear_model

    model = linear_model(tmp_path_factory.mktemp("bench") / "linear.onnx")
    return measure(model, runs=3, warmup=0, min_seconds=0, coverage=False).to_dict()


@fuzz(140)
@given(data=st.data())
def test_report_json(data: st.DataObject, bench_result: dict[str, Any], fuzz_dir: Path,
                     tmp_path: Path) -> None:
    from edgeship.reporting import render_report

    raw = data.draw(json_cases(bench_result))
    path = write(tmp_path, "result.json", raw)
    before = snapshot(tmp_path)
    clean("report json", render_report, [path])
    unchanged(tmp_path, before)


# -- hosts files, SSH config, known_hosts ---------------------------------------------------------
host_lines = st.one_of(
    st.sampled_from(["pi@raspberrypi.local", "dev", "root@10.0.0.1:2222", "[::1]:22", "a@b@c",
                     "host:99999", "host:", "-oProxyCommand=touch x", "user@", "@host", " ",
                     "# comment", "host # trailing", "ssh://pi@host:22", "h\x00st"]),
    st.text(max_size=30))


@fuzz(120)
@given(lines=st.lists(host_lines, max_size=6), encoding=st.sampled_from(["utf-8", "latin1"]))
def test_hosts_files(lines: list[str], encoding: str, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.targets.sshconfig import read_hosts_file

    path = write(tmp_path, "hosts", "\n".join(lines).encode(encoding, "replace"))
    before = snapshot(tmp_path)
    clean("hosts file", read_hosts_file, path)
    unchanged(tmp_path, before)


ssh_keywords = st.sampled_from(["Host", "HostName", "User", "Port", "IdentityFile", "ProxyJump",
                                "ConnectTimeout", "ServerAliveInterval", "ServerAliveCountMax",
                                "StrictHostKeyChecking", "UserKnownHostsFile", "Include",
                                "Match host", "Match all", "ForwardAgent", "%", "="])
ssh_values = st.one_of(st.sampled_from(["dev", "*", "none", "-1", "1e9", "nan", "99999999999",
                                        "%h", "%d/x", "a,b,,c", "ssh://u@h:1", "yes", ""]),
                       st.text(alphabet=st.characters(blacklist_characters="\x00\r\n"),
                               max_size=15))


@fuzz(120)
@given(lines=st.lists(st.tuples(ssh_keywords, ssh_values, st.booleans()), max_size=8),
       mutation=st.one_of(st.none(), mutations()))
def test_ssh_config(lines: list[tuple[str, str, bool]], mutation: Any, fuzz_dir: Path,
                    tmp_path: Path) -> None:
    from edgeship.targets.sshconfig import resolve

    text = SSH_CONFIG + "".join(f"{'    ' if indent else ''}{k} {v}\n" for k, v, indent in lines)
    raw = text.encode("utf-8", "surrogatepass")
    if mutation is not None:
        raw = mutate(raw, mutation)
    path = write(tmp_path, "config", raw)
    before = snapshot(tmp_path)
    clean("ssh config", resolve, "dev", path)
    unchanged(tmp_path, before)


known_host_lines = st.one_of(
    st.sampled_from(KNOWN_HOSTS.splitlines()),
    st.sampled_from(["", "# comment", "dev ssh-ed25519", "dev ssh-ed25519 !!!notbase64",
                     "dev ssh-rsa AAAA", "dev", "dev,10.0.0.7 ssh-ed25519 AAAAC3Nz",
                     "|1|bad|hash ssh-ed25519 AAAA", "dev unknown-type AAAA"]),
    st.text(max_size=60))


@fuzz(120)
@given(lines=st.lists(known_host_lines, max_size=6), mutation=st.one_of(st.none(), mutations()))
def test_known_hosts(lines: list[str], mutation: Any, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.targets.sshconfig import resolve
    from edgeship.targets.sshconnect import _known_keys

    raw = "\n".join(lines).encode("utf-8", "surrogatepass")
    if mutation is not None:
        raw = mutate(raw, mutation)
    path = write(tmp_path, "known_hosts", raw)
    write(tmp_path, "config", b"")
    spec = dataclasses.replace(resolve("dev", tmp_path / "config"), known_hosts_files=(str(path),))
    before = snapshot(tmp_path)
    clean("known_hosts", _known_keys, spec)
    unchanged(tmp_path, before)


# -- ONNX files (onnx's protobuf parser and checker: safe to run in this process) ----------------
@pytest.fixture(scope="module")
def onnx_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.fixtures.onnx_graphs import linear_model

    return linear_model(tmp_path_factory.mktemp("seed") / "m.onnx").read_bytes()


@fuzz(120)
@given(mutation=mutations())
def test_onnx_files(mutation: Any, onnx_seed: bytes, fuzz_dir: Path, tmp_path: Path) -> None:
    from edgeship.converters.export.source import resolve_source

    path = write(tmp_path, "fuzz.onnx", mutate(onnx_seed, mutation))
    before = snapshot(tmp_path)
    clean("onnx file", resolve_source, path)
    unchanged(tmp_path, before)


@pytest.fixture(scope="module")
def external_onnx_seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The linear model with its weights in files of their own ("W", "B")."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    from tests.fixtures.onnx_graphs import linear_model

    folder = tmp_path_factory.mktemp("external")
    model = onnx.load(str(linear_model(folder / "m.onnx")))
    convert_model_to_external_data(model, all_tensors_to_one_file=False, size_threshold=0)
    onnx.save(model, str(folder / "ext.onnx"))
    return (folder / "ext.onnx").read_bytes()


@fuzz(200)
@given(mutation=mutations())
def test_onnx_external_data_references(mutation: Any, external_onnx_seed: bytes, fuzz_dir: Path,
                                       tmp_path: Path) -> None:
    """The stdlib walk that lists a model's files never raises and never leaves the folder."""
    from edgeship.runtime.formats import files_of

    path = write(tmp_path, "fuzz.onnx", mutate(external_onnx_seed, mutation))
    write(tmp_path, "W", b"w")
    before = snapshot(tmp_path)
    files = clean("onnx file", files_of, path)
    assert files[0] == path and all(f.parent == tmp_path and f.is_file() for f in files)
    unchanged(tmp_path, before)


# -- the CLI's numbers and shapes -----------------------------------------------------------------
numbers = st.one_of(st.sampled_from(["0", "-1", "1e400", "nan", "inf", "-inf", "", " ", "1,5",
                                     "20ms", "0x10", "1e-300", "9" * 5000, "１２"]),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr), text_bits)
shape_texts = st.one_of(st.sampled_from(["x=1,16", "x=1", "x=", "=1,16", "x=1,,16", "x=-1,16",
                                         "x=0,16", "x=99999999999999999999", "x=1,2=3"]),
                        text_bits)


@fuzz(200)
@given(budget=numbers, percentile=numbers, shape=shape_texts, seconds=st.floats())
def test_cli_numbers_and_shapes(budget: str, percentile: str, shape: str, seconds: float,
                                fuzz_dir: Path) -> None:
    from edgeship.cli.options import make_budget
    from edgeship.runtime.bench import check_min_seconds
    from edgeship.runtime.inputs import parse_input_shapes

    clean("numbers", make_budget, budget, budget, budget, budget, percentile)
    clean("numbers", check_min_seconds, seconds)
    clean("shapes", parse_input_shapes, [shape])
    assert not any(fuzz_dir.iterdir())
