"""Reports from hand-written records (tests/report_fixtures.py): numbers checked, not just files."""

from __future__ import annotations

import json

import pytest

from harness.errors import UserError
from harness.reports import data
from harness.reports.best import Constraints, best, pareto_front
from harness.reports.check import FAIL, PASS, UNKNOWN, DeviceProfile, check_models, load_profile
from harness.reports.fits import accuracy_speed_front, memory_fits, upper_bound
from harness.reports.report import write_report
from harness.reports.tables import best_table, memory_table, time_table, to_csv, to_markdown
from tests.helpers import one_error_line, run_cli
from tests.report_fixtures import GPU_ENV, cpu_records, record, write_run

CPU = ("torch", "CPU Test CPU (box)", "fp32")
GPU = ("torch", "GPU Test GPU", "fp32")


@pytest.fixture
def cpu_run(tmp_path):
    return write_run(tmp_path / "cpu-run", cpu_records())


@pytest.fixture
def two_devices(tmp_path, cpu_run):
    gpu = [record(r["cell"]["model"], "torch", r["cell"]["batch_size"],
                  r["timing"]["host"]["images_per_s"] * 10 if r["status"] == "ok" else None,
                  r["memory"]["host_rss"]["peak_bytes"] + 300_000_000 if r["status"] == "ok" else None,
                  device="cuda:0", status=r["status"], source="cuda_nvml", run_id="gpu-run")
           for r in cpu_records()]
    write_run(tmp_path / "gpu-run", gpu, GPU_ENV)
    return data.load([cpu_run, tmp_path / "gpu-run"])


def _names(points):
    return [p.model for p in points]


def test_points_from_records(cpu_run):
    dataset = data.load([cpu_run])
    assert dataset.series() == [CPU]
    [point] = [p for p in dataset.points if p.model == "resnet50" and p.batch_size == 1]
    assert point.images_per_s == 25.0 and point.per_image_ms == 40.0
    assert point.memory_bytes == 1_170_000_000 and point.memory_source == "host_rss"
    assert point.accuracy.top1 == 75.0 and point.accuracy.kind == "published"
    assert point.model_bytes == 700_000_000


def test_the_frontier_and_the_upper_bound(cpu_run):
    points = data.load([cpu_run]).of(CPU, batch_size=1)
    assert _names(accuracy_speed_front(points)) == ["squeezenet1_1", "mobilenet_v2", "resnet50", "vgg16"]
    bound = upper_bound(points)
    # least squares through (100, 60), (50, 70), (25, 75), (10, 80): slope = -1006.25 / 4668.75;
    # raised until it bounds every point: it touches vgg16 (10, 80).
    slope = -1006.25 / 4668.75
    assert bound.slope == pytest.approx(slope)
    assert bound.intercept == pytest.approx(80 - slope * 10)
    assert all(p.accuracy.top1 <= bound.at(p.images_per_s) + 1e-9 for p in points)


def test_memory_fit_per_family(cpu_run):
    fits = memory_fits(data.load([cpu_run]).of(CPU, batch_size=1))
    assert fits["Fam"].slope == pytest.approx(1.1) and fits["Fam"].intercept == pytest.approx(400)
    assert fits["Fam"].r2 == pytest.approx(1.0)
    assert "Other" not in fits  # two models are not a fit worth drawing
    assert fits["all models"].points == 5


def test_table_1_bands_and_missing_cells(cpu_run):
    table = time_table(data.load([cpu_run]), CPU)
    assert table.columns == ["model", "bs 1", "bs 8"]
    rows = {row[0].text: row for row in table.rows}
    assert rows["Squeezenet1_1"][1].text == "10.00" and rows["Squeezenet1_1"][1].band == "super real-time"
    assert rows["Vgg16"][1].text == "100.00" and rows["Vgg16"][1].band == "below 15 FPS"
    assert rows["Resnet50"][1].band == "half real-time"  # 25 FPS
    assert rows["Mobilenet_v2"][2].text == "oom"
    assert "| Mobilenet_v2 | 20.00 | oom |" in to_markdown(table)
    assert to_csv(table).splitlines()[0] == "model,bs 1,bs 8"


def test_table_2_memory(cpu_run):
    table = memory_table(data.load([cpu_run]), CPU, "host_rss")
    rows = {row[0].text: row for row in table.rows}
    assert [e.text for e in rows["Resnet50"][1:]] == ["1,170", "1,404"]


def test_table_3_picks(cpu_run):
    table = best_table(data.load([cpu_run]), CPU)
    picks = {row[0].text: [e.text.split()[0] for e in row[1:]] for row in table.rows}
    assert table.columns == ["memory", ">= 15 FPS", ">= 30 FPS", ">= 60 FPS"]
    assert picks["<= 0.7 GB"] == ["Googlenet", "Googlenet", "Squeezenet1_1"]
    assert picks["<= 1 GB"] == ["Mobilenet_v2", "Mobilenet_v2", "Squeezenet1_1"]
    assert picks["<= 1.4 GB"] == ["Resnet50", "Mobilenet_v2", "Squeezenet1_1"]
    assert picks["no limit"] == ["Resnet50", "Mobilenet_v2", "Squeezenet1_1"]  # vgg16 runs at 10 FPS


def test_runs_from_two_devices_merge(two_devices):
    assert two_devices.series() == [CPU, GPU]
    gpu_point = next(p for p in two_devices.of(GPU, batch_size=1) if p.model == "vgg16")
    assert gpu_point.memory_source == "cuda_nvml" and gpu_point.memory_bytes == 2_300_000_000
    # on the GPU everything runs 10x faster and needs 0.3 GB more: the 1 GB row changes
    picks = {row[0].text: [e.text.split()[0] for e in row[1:]] for row in best_table(two_devices, GPU).rows}
    assert picks["<= 1 GB"] == ["Googlenet", "Googlenet", "Googlenet"]
    assert picks["no limit"] == ["Vgg16", "Vgg16", "Vgg16"]


def test_newest_record_of_a_cell_wins_and_a_finished_one_beats_a_failed_one(tmp_path):
    records = [record("resnet50", "torch", 1, 20.0, 10**9, started_at="2026-11-29T10:00:00+00:00"),
               record("resnet50", "torch", 1, 30.0, 10**9, started_at="2026-11-29T11:00:00+00:00"),
               record("resnet50", "torch", 1, None, None, status="crashed", started_at="2026-11-29T12:00:00+00:00")]
    [point] = data.load([write_run(tmp_path / "run", records)]).points
    assert point.images_per_s == 30.0


def test_best_and_the_pareto_front(tmp_path, cpu_run):
    write_run(tmp_path / "ort-run", cpu_records("ort", speed=0.5))
    dataset = data.load([cpu_run, tmp_path / "ort-run"])
    pick = best(dataset.points, Constraints(max_memory_bytes=10**9, min_fps=30))
    assert (pick.model, pick.runtime) == ("mobilenet_v2", "torch")
    assert best(dataset.points, Constraints(max_memory_bytes=10**9, min_fps=30, min_top1=72)) is None
    # ort at half speed: squeezenet1_1 takes 20 ms a batch, mobilenet_v2 40 ms, googlenet 50 ms
    assert best(dataset.points, Constraints(max_latency_ms=45, runtime="ort")).model == "mobilenet_v2"
    front = pareto_front([p for p in dataset.points if p.batch_size == 1])
    # every ort point is as accurate and as large as its torch twin, but slower: none is on the front;
    # googlenet is (smaller than mobilenet_v2), though not on the 2-D accuracy/speed frontier
    assert {(p.model, p.runtime) for p in front} == {(m, "torch") for m in
                                                     ("squeezenet1_1", "mobilenet_v2", "resnet50", "vgg16", "googlenet")}


def test_measured_accuracy_replaces_published(tmp_path):
    accuracy = {"schema_version": 1, "kind": "accuracy", "status": "ok", "run_id": "acc", "started_at": "",
                "cell": {"model": "resnet50", "runtime": "torch", "precision": "fp32", "batch_size": 64,
                         "device": "cpu"}, "accuracy": {"top1": 76.5, "top5": 93.0, "images": 50000}}
    run = write_run(tmp_path / "run", cpu_records() + [accuracy])
    point = next(p for p in data.load([run]).points if p.model == "resnet50")
    assert (point.accuracy.top1, point.accuracy.kind) == (76.5, "measured")


def test_bad_inputs_get_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="no such run folder"):
        data.load([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no records.jsonl"):
        data.load([tmp_path / "empty"])
    newer = record("resnet50", "torch", 1, 20.0, 10**9)
    newer["schema_version"] = 3
    with pytest.raises(UserError, match="newer harness"):
        data.load([write_run(tmp_path / "newer", [newer])])
    only_parity = {**record("resnet50", "torch", 1, 20.0, 10**9), "kind": "parity"}
    with pytest.raises(UserError, match="no benchmark records"):
        data.load([write_run(tmp_path / "parity", [only_parity])])
    with pytest.raises(UserError, match="unknown profile 'jetson-nanoo'"):
        load_profile("jetson-nanoo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: toaster\ndevice_match: [x]\nmemory_total: 1GB\nmemory_budget: 1GB\n")
    with pytest.raises(UserError, match="kind"):
        load_profile(str(bad))
    bad.write_bytes(b"\xbd\xff\x00name")  # was a UnicodeDecodeError traceback
    with pytest.raises(UserError, match="is not a YAML profile"):
        load_profile(str(bad))


def test_shipped_profiles_load():
    for name in ("jetson-tx1", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "workstation"):
        profile = load_profile(name)
        assert profile.memory_budget_bytes <= profile.memory_total_bytes and profile.onnx_max_opset


def _profile(**overrides) -> DeviceProfile:
    fields = {"name": "Test GPU box", "kind": "cuda", "device_match": ["Test GPU"], "memory_total": "8GB",
              "memory_budget": "1GB", "onnx_max_opset": 13, "targets": {"batch_size": 1, "min_fps": 30}}
    return DeviceProfile.model_validate({**fields, **overrides})


def test_check_measured_and_estimated(two_devices):
    checks = {c.model: c for c in check_models(_profile(), [("squeezenet1_1", 25_000_000), ("vgg16", 300_000_000),
                                                            ("alexnet", 61_000_000)], two_devices)}
    squeeze = {c.name: c for c in checks["squeezenet1_1"].criteria}
    assert squeeze["memory"].verdict == PASS and "0.81 GB measured (cuda_nvml" in squeeze["memory"].figure
    assert squeeze["speed"].verdict == PASS and "1000.0 images/s measured" in squeeze["speed"].figure
    assert squeeze["onnx opset"].verdict == UNKNOWN  # only torch ran: no ONNX file in these records
    vgg = {c.name: c for c in checks["vgg16"].criteria}
    assert vgg["memory"].verdict == FAIL and vgg["speed"].verdict == PASS  # 100 images/s on the GPU
    # alexnet never ran there: memory is an estimate from the GPU series' all-model fit, speed unknown
    alexnet = {c.name: c for c in checks["alexnet"].criteria}
    assert "ESTIMATE" in alexnet["memory"].figure and "GPU Test GPU" in alexnet["memory"].figure
    assert alexnet["speed"].verdict == UNKNOWN
    assert not any(c.passed for c in checks.values())


def test_check_opset_against_the_profile(tmp_path, cpu_run):
    write_run(tmp_path / "ort-run", cpu_records("ort"))
    dataset = data.load([cpu_run, tmp_path / "ort-run"])
    profile = _profile(device_match=["Test CPU"], memory_budget="3GB", targets={"batch_size": 1, "min_fps": 5})
    [check] = check_models(profile, [("resnet50", 175_000_000)], dataset)
    criteria = {c.name: c for c in check.criteria}
    assert criteria["onnx opset"].verdict == FAIL and criteria["onnx opset"].figure.startswith("opset 18")
    assert criteria["memory"].verdict == PASS and criteria["speed"].verdict == PASS
    [check] = check_models(profile.model_copy(update={"onnx_max_opset": 18}), [("resnet50", 175_000_000)], dataset)
    assert check.passed


def test_null_cells_and_invalid_timings_pass_nothing(tmp_path, cpu_run):
    """The null runtime runs no model (it times the harness: ~0 ms, millions of images/s): its cells were best's
    pick and check's PASS for any model. A speed the harness marked invalid was a PASS in check's estimate mode,
    while the same figure on the device is UNKNOWN."""
    write_run(tmp_path / "null-run", cpu_records("null", speed=1000.0))
    dataset = data.load([cpu_run, tmp_path / "null-run"])
    pick = best(dataset.points, Constraints(max_memory_bytes=10**9, min_fps=30))
    assert (pick.model, pick.runtime) == ("mobilenet_v2", "torch")  # as without the null run
    assert best(dataset.points, Constraints(min_fps=30, runtime="null")).runtime == "null"  # asked for by name
    profile = _profile(device_match=["Test CPU"], memory_budget="3GB", targets={"batch_size": 1, "min_fps": 5000})
    [check] = check_models(profile, [("resnet50", 175_000_000)], dataset)
    speed = next(c for c in check.criteria if c.name == "speed")
    assert speed.verdict == FAIL and "(torch, fp32)" in speed.figure
    noisy = [record("resnet50", "torch", 1, 40.0, 10**9, valid=False)]
    [check] = check_models(profile.model_copy(update={"targets": profile.targets.model_copy(update={"min_fps": 5})}),
                           [("resnet50", 175_000_000)], data.load([write_run(tmp_path / "noisy", noisy)]))
    speed = next(c for c in check.criteria if c.name == "speed")
    assert speed.verdict == UNKNOWN and "INVALID: coefficient of variation" in speed.figure


def test_write_report_files_and_fits(tmp_path, two_devices):
    report = write_report(two_devices, tmp_path / "out", "test report")
    names = {p.name for p in report.files}
    assert {"report.html", "tables.md"} <= names
    assert sum(name.startswith("fig3-") for name in names) == 4  # 2 series x PNG and SVG
    assert any(name.startswith("speedup-over-torch") for name in names) is False  # one runtime per device
    assert sum("Fig. 3 upper bound" in line for line in report.fit_lines) == 2
    assert any("Fam: memory MB = 1.10 x model MB + 400" in line for line in report.fit_lines)
    html = report.html_path.read_text()
    assert "Test GPU" in html and "<script src=" not in html  # plotly.js inlined: opens offline
    points = json.loads(html.split('<script type="application/json" id="points">')[1].split("</script>")[0])
    assert len(points) == 20


# ------------------------------------------------------------------ the command line

def test_cli_report_best_and_check(tmp_path, cpu_run, capsys):
    out = tmp_path / "report"
    result = run_cli(capsys, "report", str(cpu_run), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Table 3" in result.stdout and f"HTML report: {(out / 'report.html').resolve()}" in result.stdout
    assert (out / "tables.md").is_file() and any((out / "figures").glob("fig4-*.svg"))

    result = run_cli(capsys, "best", str(cpu_run), "--max-memory", "1.0GB", "--min-fps", "30")
    assert result.returncode == 0, result.stderr
    best_block = result.stdout.split("Best model")[1].split("Next best")[0]
    assert "Mobilenet_v2" in best_block and "70.00 (pub.)" in best_block
    assert run_cli(capsys, "best", str(cpu_run), "--max-memory", "100MB").returncode == 1  # nothing fits: exit 1

    result = run_cli(capsys, "check", str(cpu_run), "--profile", "workstation", "--models", "squeezenet1_1")
    assert result.returncode == 1 and "UNKNOWN" in result.stdout  # no GPU records: not ready
    profile = tmp_path / "box.yaml"
    profile.write_text("name: Test box\nkind: cpu\ndevice_match: [Test CPU]\nmemory_total: 4GB\n"
                       "memory_budget: 1GB\ntargets: {batch_size: 1, min_fps: 30}\n")
    result = run_cli(capsys, "check", str(cpu_run), "--profile", str(profile), "--models", "squeezenet1_1")
    assert result.returncode == 0 and "1/1 models ready" in result.stdout
    result = run_cli(capsys, "check", str(cpu_run), "--profile", str(profile), "--models", "squeezenet1_1,vgg16")
    assert result.returncode == 1 and "1/2 models ready" in result.stdout


def test_cli_report_errors_are_one_line(tmp_path, capsys):
    assert "no such run folder" in one_error_line(run_cli(capsys, "report", str(tmp_path / "nope")))
    assert "unknown profile" in one_error_line(run_cli(capsys, "check", "--profile", "toaster", "--models", "resnet18"))
    assert "bad size" in one_error_line(run_cli(capsys, "best", str(tmp_path), "--max-memory", "lots"))


# ------------------------------------------------------------------ the HTML page in a real browser

def _chromium():
    import shutil

    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("needs Chromium and chromedriver (Debian: apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_html_report_renders_in_a_browser_without_errors(tmp_path, two_devices):
    from selenium.webdriver.support.ui import WebDriverWait

    report = write_report(two_devices, tmp_path / "out", "browser test")
    browser = _chromium()
    try:
        browser.get(report.html_path.resolve().as_uri())
        count = "return document.querySelectorAll('#chart-speed .scatterlayer .point').length"
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(count) > 0)
        assert browser.execute_script(count) == 10  # 5 models at batch 1 on two devices
        for chart in ("chart-memory", "chart-flops"):
            assert browser.execute_script(f"return document.querySelectorAll('#{chart} .point').length") == 10
        title = browser.execute_script("return document.querySelector('#chart-speed .gtitle').textContent")
        assert title.startswith("Top-1 vs images/s")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        # filter: untick the GPU; its points and its tables go
        browser.execute_script("document.querySelector('input[value=\"GPU Test GPU\"]').click()")
        WebDriverWait(browser, 10).until(lambda b: b.execute_script(count) == 5)
        hidden = browser.execute_script("return [...document.querySelectorAll('section.series')]"
                                        ".filter(s => s.hidden).map(s => s.dataset.device)")
        assert hidden == ["GPU Test GPU"]
    finally:
        browser.quit()


def test_the_upper_bound_is_drawn_within_0_to_100_percent():
    """Before: the HTML report's Fig. 3 bound, fitted through two frontier points, ran to 257 % top-1."""
    from harness.reports.fits import Line, bound_curve

    xs, ys = bound_curve(Line(slope=-0.5, intercept=257.0, points=2), [10.0, 100.0, 1000.0])
    assert xs and all(0 <= y <= 100 for y in ys)
    assert min(xs) >= 10.0 and max(xs) <= 1000.0 and min(xs) > 10.0  # the part above 100 % is left out
    assert bound_curve(Line(slope=0.0, intercept=50.0, points=2), [])[0] == []


def test_a_gpu_is_named_from_its_index_also_on_a_fleet_node_and_from_odd_env_files():
    from harness.reports.data import device_name

    env = {"nvml": {"gpus": [{"name": "GPU A"}, {"name": "GPU B"}]}}
    assert device_name(env, "cuda:1@node-2") == device_name(env, "cuda:1") == "GPU GPU B"
    assert device_name(env, "cuda@node-2") == "GPU GPU A"
    assert device_name({"nvml": 5, "jetson": "yes"}, "cuda:0") == "GPU cuda:0"
    assert device_name({"nvml": {"gpus": ["not an object"]}}, "cuda:0") == "GPU cuda:0"


def test_a_device_of_another_family_is_not_labelled_a_cpu():
    """OpenVINO's intel-gpu and npu cells ran on those devices, not on the host CPU the env file names."""
    from harness.reports.data import device_name

    env = {"hostname": "nuc", "cpu_model": "Intel Core Ultra 7"}
    assert device_name(env, "cpu") == "CPU Intel Core Ultra 7 (nuc)"
    assert device_name(env, "intel-gpu:0") == "intel-gpu:0 (nuc)"
    assert device_name(env, "npu@nuc") == "npu (nuc)"
