"""The HTML report, rendered by a real headless Chromium: the numbers on the page are the JSON's.

Candidates are real: the digits fixture CNN in fp32 on onnxruntime and on OpenVINO, and an int8
(dynamic) copy made with onnxruntime.quantization, each measured by the agent in a fresh process
and its accuracy measured on the held-out digits through edgeship.Dataset.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeship import Budget, Dataset, benchmark
from edgeship.core.errors import ConfigError
from edgeship.report_plots import fmt
from edgeship.reporting import CANDIDATE_SCHEMA, render_report, report
from edgeship.runtime import load

from tests.fixtures.cli import run_cli_process

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with no network, no GPU, a throwaway profile."""
    assert CHROMIUM, "chromium is not installed: apt-get install chromium"
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )


class Cells(HTMLParser):
    """Collects every element with data-row/data-key: its text, data-value and data-ok."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[int, str], dict[str, Any]] = {}
        self.titles: list[str] = []
        self._open: list[tuple[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Any]]) -> None:
        a = dict(attrs)
        if "data-key" in a:
            key = (int(a["data-row"]), a["data-key"])
            self.cells[key] = {"text": "", "value": a.get("data-value"), "ok": a.get("data-ok")}
            self._open.append((tag, key))
        elif tag == "title":
            self._open.append((tag, None))
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for tag, key in self._open:
            if tag == "title" and key is None:
                self.titles[-1] += data
            elif key is not None:
                self.cells[key]["text"] += data


def quantize_dynamic(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


def accuracy_percent(model: Path, npz: Path, backend: str) -> float:
    session = load(model, backend=backend)
    data = Dataset(npz).for_model(session)
    hits = sum(int((session.run(f)[session.outputs[0].name].argmax(1) == y).sum())
               for f, y in data.batches(60))
    return 100.0 * hits / len(data)


@pytest.fixture(scope="module")
def candidates(digits_onnx, digits_test_npz, tmp_path_factory) -> list[Path]:
    """Three candidate JSON files with real measurements and real accuracies."""
    folder = tmp_path_factory.mktemp("candidates")
    int8 = quantize_dynamic(digits_onnx, folder / "digits_int8.onnx")
    plan = [("fp32 · onnxruntime", digits_onnx, "onnxruntime", ["export(onnx)"]),
            ("fp32 · openvino", digits_onnx, "openvino", ["export(onnx)"]),
            ("int8-dynamic · onnxruntime", int8, "onnxruntime", ["quantize(int8, dynamic)"])]
    baseline = accuracy_percent(digits_onnx, digits_test_npz, "onnxruntime")
    paths = []
    for name, model, backend, recipe in plan:
        result = benchmark(model, "local", backend=backend, threads=1, warmup=2, runs=40,
                           min_seconds=0.1)
        acc = accuracy_percent(model, digits_test_npz, backend)
        payload = {"schema": CANDIDATE_SCHEMA, "name": name, "model": model.name, "recipe": recipe,
                   "accuracy": acc, "baseline_accuracy": baseline, "accuracy_drop": baseline - acc,
                   "accuracy_metric": "top1", "benchmark": result.to_dict(), "verdict": None,
                   "error": None}
        path = folder / f"candidate{len(paths)}.json"
        path.write_text(json.dumps(payload))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def rendered(candidates, tmp_path_factory) -> tuple[Path, Budget, list[dict[str, Any]]]:
    """The report written by the CLI with budgets, and the candidates' JSON."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    sizes = sorted(json.loads(p.read_text())["benchmark"]["model"]["size_bytes"] for p in candidates)
    size_limit = (sizes[0] + sizes[-1]) / 2 / 1e6  # between the smallest and largest file
    proc = run_cli_process(
        "report", *candidates, "-o", out, "--max-latency-ms", "1000", "--max-size-mb",
        repr(size_limit), "--max-accuracy-drop", "1", timeout=120)
    assert proc.returncode == 0, proc.stderr
    budget = Budget(max_latency_ms=1000, max_size_mb=size_limit, max_accuracy_drop=1)
    return out, budget, [json.loads(p.read_text()) for p in candidates]


def dom_cells(page: Path, tmp_path: Path) -> Cells:
    dom = chromium(page, tmp_path, "--dump-dom").stdout
    assert "<table id=\"candidates\">" in dom, dom[:500]
    cells = Cells()
    cells.feed(dom)
    return cells


def test_page_numbers_equal_the_json_in_a_real_browser(rendered, tmp_path):
    page, _, payloads = rendered
    cells = dom_cells(page, tmp_path).cells
    for row, cand in enumerate(payloads):
        bench = cand["benchmark"]
        expected = {
            "latency_p50_ms": bench["latency_ms"]["p50"],
            "latency_p99_ms": bench["latency_ms"]["p99"],
            "peak_rss_mb": bench["memory"]["peak_rss_mb"],
            "size_mb": bench["model"]["size_bytes"] / 1e6,
            "accuracy": cand["accuracy"],
            "accuracy_drop": cand["accuracy_drop"],
        }
        assert cells[(row, "name")]["text"].startswith(cand["name"])
        for key, value in expected.items():
            cell = cells[(row, key)]
            assert float(cell["value"]) == value, key
            assert cell["text"] == fmt(value), key
        assert int(cells[(row, "runs")]["text"]) == bench["latency_ms"]["runs"]
        assert cells[(row, "threads")]["text"] == "1"


def test_budget_marks_equal_the_budgets_verdict(rendered, tmp_path):
    from edgeship.runtime.bench import BenchmarkResult

    page, budget, payloads = rendered
    cells = dom_cells(page, tmp_path).cells
    outcomes = set()
    for row, cand in enumerate(payloads):
        verdict = budget.evaluate(BenchmarkResult.from_dict(cand["benchmark"]), cand["accuracy_drop"])
        for check in verdict.checks:
            cell = cells[(row, f"budget_{check.name}")]
            assert cell["ok"] == str(check.ok).lower(), (cand["name"], check.name)
            assert cell["text"].startswith("ok" if check.ok else "over")
            outcomes.add(check.ok)
        status = cells[(row, "status")]["text"]
        assert status.startswith("fits" if verdict.ok else "misses a budget")
    assert outcomes == {True, False}  # the size budget splits the candidates


def test_pareto_plot_has_one_point_per_candidate_with_its_values(rendered, tmp_path):
    page, _, payloads = rendered
    titles = dom_cells(page, tmp_path).titles
    for cand in payloads:
        p50, acc = cand["benchmark"]["latency_ms"]["p50"], cand["accuracy"]
        point = f"{cand['name']}: latency p50 (ms) {fmt(p50)}, top1 (%) {fmt(acc)}"
        assert point in titles
    assert any(t.startswith(f"{payloads[0]['name']} p99 ") for t in titles)  # distributions
    assert any(t.startswith("budget ") and t.endswith(" MB") for t in titles)  # size budget line


def test_report_renders_to_a_screenshot(rendered, tmp_path):
    page, _, _ = rendered
    shot = tmp_path / "report.png"
    chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_is_self_contained(rendered):
    html = rendered[0].read_text()
    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert set(part.split('"')[0] for part in html.split("http")[1:]) == {"://www.w3.org/2000/svg"}


def test_bench_json_with_its_verdict_renders(digits_onnx, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli_process("bench", digits_onnx, "--runs", "20", "--min-seconds", "0",
                           "--max-memory-mb", "100000", "-o", out, timeout=120)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(out.read_text())
    html = render_report([out])
    assert 'data-key="budget_memory" data-ok="true"' in html
    assert f'data-value="{payload["latency_ms"]["p50"]!r}"' in html
    assert "No accuracy in these results" in html


def test_failed_candidate_is_listed_with_its_reason(candidates, tmp_path):
    failed = {"schema": CANDIDATE_SCHEMA, "name": "int8-static · tflite", "error":
              "parity check failed: top-1 agreement 0.71 < 0.99"}
    html = render_report([candidates[0], failed])
    assert 'data-key="reason">parity check failed: top-1 agreement 0.71 &lt; 0.99</td>' in html
    assert '<span class="badge failed">failed</span>' in html


def test_summary_with_candidates_budget_and_pick(candidates, tmp_path):
    summary = {"candidates": [json.loads(p.read_text()) for p in candidates],
               "budget": {"max_latency_ms": 1000}, "pick": "fp32 · openvino",
               "device": "x86-amx"}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    out = report([path], tmp_path / "r.html")
    html = out.read_text()
    assert "for x86-amx" in html and '<span class="badge pick">pick</span>' in html
    assert "latency budget 1000 ms" in html


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"schema": "something/1"}', "is not an edgeship result"),
    ('{"schema": "edgeship.candidate/1", "name": "x", "speed": 3}', "speed: Extra inputs"),
])
def test_bad_result_files_exit_2_with_one_line_and_no_output(content, message, tmp_path):
    src = tmp_path / "r.json"
    if content is not None:
        src.write_text(content)
    out = tmp_path / "report.html"
    proc = run_cli_process("report", src, "-o", out, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Fix:" in proc.stderr
    assert not out.exists()


def test_no_results_is_a_config_error():
    with pytest.raises(ConfigError, match="no results"):
        render_report([])


def test_memory_bars_show_peak_rss_values(rendered):
    html = rendered[0].read_text()
    for cand in rendered[2]:
        peak = cand["benchmark"]["memory"]["peak_rss_mb"]
        assert f"{cand['name']}: {fmt(peak)} MB</title>" in html
    assert np.isfinite([c["accuracy"] for c in rendered[2]]).all()


# -- layout, checked by the browser itself -------------------------------------------------------
ARTIFACTS = Path(__file__).resolve().parent.parent / "ci-artifacts"  # .ci/run names it; gitignored

# Appended to a copy of the page (the report itself has no script): every table row spans the
# header's cell count (a failed row's reason spans the measurement columns), no cell, table,
# chart or legend is wider than its box, the page has no horizontal scroll, and no two chart
# labels overlap.  The findings go into the DOM as JSON.
LAYOUT_CHECK = """<script>
const out = [];
for (const t of document.querySelectorAll('table')) {
  const n = t.querySelectorAll('thead th').length;
  t.querySelectorAll('tbody tr').forEach((tr, i) => {
    const cells = [...tr.children].reduce((sum, td) => sum + td.colSpan, 0);
    if (cells !== n) out.push(`${t.id} row ${i}: ${cells} cells, header ${n}`);
  });
}
const scrolls = [];
for (const el of document.querySelectorAll('td, th, .scroll, svg, ol.legend, p, h1, h2')) {
  if (el.scrollWidth > el.clientWidth + 1)
    (el.classList.contains('scroll') ? scrolls : out).push(
      `overflow: ${el.tagName}.${el.className} ${el.scrollWidth}>${el.clientWidth}: `
      + el.textContent.slice(0, 60));
}
if (document.documentElement.scrollWidth > window.innerWidth)
  out.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
const boxes = [...document.querySelectorAll('svg text.label, svg text.budget-label')]
  .map(e => [e, e.getBBox()]);
boxes.forEach(([a, p], i) => boxes.slice(i + 1).forEach(([b, q]) => {
  if (a.ownerSVGElement === b.ownerSVGElement && p.x < q.x + q.width && q.x < p.x + p.width
      && p.y < q.y + q.height && q.y < p.y + p.height)
    out.push(`labels overlap: '${a.textContent}' and '${b.textContent}'`);
}));
const pre = document.createElement('pre');
pre.id = 'layout-check';
pre.textContent = JSON.stringify({problems: out, scrolls: scrolls,
                                  rows: document.querySelectorAll('#candidates tbody tr').length});
document.body.appendChild(pre);
</script>"""


def layout_problems(page: Path, tmp_path: Path, width: int) -> dict[str, Any]:
    checked = tmp_path / f"checked-{width}.html"
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", LAYOUT_CHECK + "</body>"),
                       encoding="utf-8")
    dom = chromium(checked, tmp_path, "--dump-dom", f"--window-size={width},2000").stdout
    start = dom.index('<pre id="layout-check">') + len('<pre id="layout-check">')
    from html import unescape

    return json.loads(unescape(dom[start:dom.index("</pre>", start)]))


@pytest.fixture(scope="module")
def mixed_page(candidates, tmp_path_factory) -> Path:
    """A compress-like summary: measured candidates (one the pick), a failed one with a long
    reason and a skipped one, budgets with the latency budget far beyond every candidate."""
    cands = [json.loads(p.read_text()) for p in candidates]
    long_error = ("parity check failed: output 'logits' max abs diff 3.1 > 1e-4 after "
                  "/features/blocks.3/conv_pw/Conv_output_0/model_full_integer_quant_reshape_"
                  "transpose_fused (onnx2tf could not keep the layout of a Reshape) " * 2).strip()
    cands += [{"schema": CANDIDATE_SCHEMA, "name": "int8-tflite", "error": long_error},
              {"schema": CANDIDATE_SCHEMA, "name": "int8-accuracy-onnx",
               "error": "skipped: int8-onnx already kept accuracy within the budget"}]
    summary = {"candidates": cands, "pick": cands[2]["name"], "device": "raspberry-pi-5",
               "budget": {"max_latency_ms": 500, "max_memory_mb": 4000, "max_accuracy_drop": 1}}
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "summary.json").write_text(json.dumps(summary))
    return report([folder / "summary.json"], folder / "report.html")


def test_report_rows_align_and_nothing_overflows_in_chromium(mixed_page, tmp_path):
    found = layout_problems(mixed_page, tmp_path, 1280)
    assert found["rows"] == 5
    assert found["problems"] == [] and found["scrolls"] == []


def test_narrow_window_scrolls_the_wide_tables_only(mixed_page, tmp_path):
    """At 800 px the 15-column tables scroll inside their own box; no cell, chart or the page
    itself overflows."""
    found = layout_problems(mixed_page, tmp_path, 800)
    assert found["problems"] == []


def test_skipped_and_failed_rows_look_different(mixed_page):
    html = mixed_page.read_text()
    assert '<tr class="failed">' in html and '<tr class="skipped">' in html
    assert 'data-key="reason">int8-onnx already kept accuracy within the budget</td>' in html
    assert '<span class="badge skipped">skipped</span>' in html
    assert not any(ch in html for ch in "✅❌⚠✗")  # marks are CSS badges, no emoji font needed


def test_budget_beyond_the_candidates_is_drawn_at_the_edge(mixed_page):
    html = mixed_page.read_text()
    assert "latency budget 500 ms (off the scale →)" in html
    ticks = [float(t) for t in __import__("re").findall(r'text-anchor="middle" [^>]*>([0-9.e-]+)</text>',
                                                        html.split("Accuracy vs latency")[1]
                                                        .split("Latency distributions")[0])]
    assert ticks and max(ticks) < 500  # the scale fits the candidates, not the budget


def test_pick_is_marked_in_the_plot(mixed_page):
    html = mixed_page.read_text()
    assert html.count('<circle class="pick"') == 1 and "3 pick</text>" in html


def test_report_screenshot_is_kept_as_a_ci_artifact(mixed_page, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    chromium(mixed_page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2600")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_compress_summary_states_the_picks_gain_over_the_original(candidates, tmp_path):
    cands = [json.loads(p.read_text()) for p in candidates]
    base, pick = cands[0], cands[2]  # fp32 on onnxruntime (the original), int8 dynamic
    summary = {"candidates": cands, "pick": pick["name"], "original": {"format": "onnx"}}
    for c in cands:  # compress names the original's candidate fp32-<its format>
        c["name"] = "fp32-onnx" if c is base else c["name"]
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    html = render_report([path])
    before = base["benchmark"]["latency_ms"]["p50"]
    after = pick["benchmark"]["latency_ms"]["p50"]
    speed = (f"{before / after:.3g}× faster" if after <= before else f"{after / before:.3g}× slower")
    assert f"{speed} than the original (fp32-onnx, p50 {fmt(before)} → {fmt(after)} ms)" in html
