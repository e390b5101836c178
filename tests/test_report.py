"""`sparseae report`: the self-contained HTML page of a run (or of two side by side), the pictures it
adds (confusion matrix, precision-recall, filters in a tree), progress bars of long commands, and
the page rendered in headless Chromium (``-m browser``; skipped without /usr/bin/chromium or
playwright).

Runs are tiny models trained on scikit-learn's digits through the CLI, once per module.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml

from sparseae.cli import main
from sparseae.config import load_config, read_config_file
from sparseae.errors import CheckpointError, ConfigError, DataError
from sparseae.groups import balanced_tree
from sparseae.io import load_model
from sparseae.report import RunContent, collect_run, default_report_path, render_html, write_report
from sparseae.runs.data import load_datasets
from sparseae.runs.metrics import confusion_matrix, filter_matrix, hamming_precision_recall, unit_arrangement
from sparseae.viz import save_confusion_matrix, save_filters, save_precision_recall
from sparseae.viz.tree import save_filter_tree

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

#: name → (model, --set assignments): one epoch (kl: two) on digits (8×8 images, 10 classes), no PNGs from training.
RUNS = {
    "kl": ("sparse_ae_kl", ["model.n_components=16", "model.sparsity_target=0.05", "train.max_epochs=2",
                            "train.learning_rate=0.01", "output.plots=false"]),
    "grid": ("autoencoder", ["model.n_components=16", "model.activation=sigmoid", "model.sparsity=group",
                             "model.sparsity_weight=0.1", "model.groups={kind: grid, height: 2, width: 8, window: 2}",
                             "output.plots=false"]),
    "tree": ("autoencoder", ["model.n_components=13", "model.activation=sigmoid", "model.sparsity=group",
                             "model.sparsity_weight=0.1", "model.groups={kind: tree, depth: 2, branching: 3}",
                             "output.plots=false"]),
    "drsae": ("drsae", ["model.n_components=16", "model.n_steps=2", "output.plots=false"]),
    "hash": ("semantic_hashing", ["model.n_components=8", "model.hidden=[32]", "output.plots=false"]),
}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _copy(run: Path, target: Path, *, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(run, target)
    for name in drop:
        victim = target / name
        if victim.is_dir():
            shutil.rmtree(victim)
        else:
            victim.unlink(missing_ok=True)
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The finished runs of :data:`RUNS`, trained through the CLI."""
    root = tmp_path_factory.mktemp("report-runs")
    folders = {}
    for name, (model, assignments) in RUNS.items():
        sets = [arg for assignment in ["train.max_epochs=1", "train.device=cpu", *assignments]
                for arg in ("--set", assignment)]
        assert main(["train", "--model", model, "--data", "digits", *sets, "--out", str(root / name), "--quiet"]) == 0
        folders[name] = root / name
    return folders


@pytest.fixture(scope="module")
def contents(runs) -> dict[str, RunContent]:
    """What the report shows of every run (its pictures drawn once)."""
    return {name: collect_run(folder) for name, folder in runs.items()}


@pytest.fixture(scope="module")
def reports(runs, contents) -> dict[str, Path]:
    """The report of every run, and the comparison kl vs grid, at their default paths
    (:func:`write_report` end to end is tested on other runs below)."""
    pages = {}
    for name, folder in runs.items():
        pages[name] = default_report_path(folder)
        pages[name].write_text(render_html([contents[name]]), encoding="utf-8")
    pages["compare"] = default_report_path(runs["kl"], runs["grid"])
    pages["compare"].write_text(render_html([contents["kl"], contents["grid"]]), encoding="utf-8")
    return pages


@pytest.fixture(scope="module")
def light_run(runs, tmp_path_factory) -> Path:
    """The kl run without its model: its report has only the curves (quick to write)."""
    return _copy(runs["kl"], tmp_path_factory.mktemp("light") / "light", drop=("model", "checkpoint"))


class _Page(HTMLParser):
    """Tags and attributes of a page: section ids, image sources, links, and every URL-bearing attribute."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections, self.images, self.urls, self.tags = [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs["src"])
        self.urls += [value for key, value in attrs.items() if key in ("src", "href", "action", "data")]


def parse(path: Path) -> tuple[str, _Page]:
    text = path.read_text(encoding="utf-8")
    return text, _Page(text)


def png_of_bytes(data: bytes) -> np.ndarray:
    """A PNG file's picture as an (h, w, channels) array."""
    assert data.startswith(PNG_MAGIC)
    return matplotlib.image.imread(io.BytesIO(data), format="png")


def png_of(src: str) -> np.ndarray:
    """The picture of a ``data:image/png;base64,...`` URI as an (h, w, channels) array."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    return png_of_bytes(base64.b64decode(src[len(prefix):], validate=True))


# ---------------------------------------------------------------------------------- the page

def test_single_run_report_is_self_contained(runs, reports):
    assert reports["kl"] == runs["kl"] / "report.html"
    text, page = parse(reports["kl"])
    assert page.sections == ["overview", "metrics", "curves", "filters", "activity", "reconstructions", "config"]
    assert len(page.images) == 4 and all(png_of(src).shape[0] > 50 for src in page.images)
    # nothing is fetched: every URL is an embedded picture or an in-page anchor
    assert all(url.startswith(("data:", "#")) for url in page.urls), page.urls
    assert "script" not in page.tags and "<link rel=\"stylesheet\"" not in text and "@import" not in text
    assert not re.search(r"https?://", text)
    summary = json.loads((runs["kl"] / "summary.json").read_text())
    assert "explained variance" in text and f"{summary['metrics']['explained_variance']:.6g}" in text
    assert "sparse_ae_kl" in text and "finished after 2 epochs" in text
    assert '<span class="key">sparsity_target</span>: 0.05' in text  # the config, readable
    assert "Notes" not in text  # nothing was skipped


def test_filters_in_the_topographic_grid_or_the_tree(runs, contents, tmp_path):
    grid_model, tree_model = load_model(runs["grid"] / "model"), load_model(runs["tree"] / "model")
    assert unit_arrangement(grid_model) == ("grid", (2, 8))
    kind, parent = unit_arrangement(tree_model)
    assert kind == "tree" and parent.tolist() == balanced_tree(depth=2, branching=3).tolist()
    assert unit_arrangement(load_model(runs["kl"] / "model")) is None
    grid = png_of_bytes(contents["grid"].figures["filters"])
    assert grid.shape[1] > 2.5 * grid.shape[0]  # the 2×8 grid of units, not the default 4×4
    expected = save_filters(filter_matrix(grid_model), tmp_path / "grid.png", (8, 8), layout=(2, 8),
                            title="16 filters, topographic 2×8 grid")
    assert np.array_equal(grid, png_of_bytes(expected.read_bytes()))
    tree = png_of_bytes(contents["tree"].figures["filters"])
    expected = save_filter_tree(filter_matrix(tree_model), parent, tmp_path / "tree.png", (8, 8),
                                title="13 filters, tree layout")
    assert np.array_equal(tree, png_of_bytes(expected.read_bytes()))
    assert tree.shape[1] > tree.shape[0]  # 9 leaves wide, 3 levels tall


def test_supervised_run_shows_its_confusion_matrix(runs, reports):
    _, page = parse(reports["drsae"])
    assert {"confusion", "angles"} <= set(page.sections)
    config = load_config(base=read_config_file(runs["drsae"] / "config.yaml"))
    _, eval_set = load_datasets(config)
    counts = confusion_matrix(load_model(runs["drsae"] / "model"), eval_set)
    assert counts.shape == (10, 10) and counts.sum() == eval_set.n_samples
    assert counts.sum(axis=1).tolist() == np.bincount(eval_set.y, minlength=10).tolist()
    error = json.loads((runs["drsae"] / "summary.json").read_text())["metrics"]["classifier_error"]
    assert 1 - np.trace(counts) / counts.sum() == pytest.approx(error)


def test_hashing_run_shows_precision_recall(runs, reports):
    _, page = parse(reports["hash"])
    assert "precision_recall" in page.sections and "confusion" not in page.sections
    config = load_config(base=read_config_file(runs["hash"] / "config.yaml"))
    _, eval_set = load_datasets(config)
    curve = hamming_precision_recall(load_model(runs["hash"] / "model"), eval_set)
    assert curve.radius.tolist() == list(range(9))  # radius 0..8 for 8-bit codes
    assert np.all(np.diff(curve.recall) >= 0) and curve.recall[-1] == pytest.approx(1.0)
    assert curve.precision[-1] == pytest.approx(0.1, abs=0.02)  # everything retrieved: the base rate of 10 classes


def test_comparison_shows_both_runs_side_by_side(runs, reports):
    path = reports["compare"]
    assert path == runs["kl"] / "compare-grid.html"
    text, page = parse(path)
    assert "kl vs grid" in text
    assert len(page.images) == 8 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert text.count('class="side-name">kl<') >= 5 and text.count('class="side-name">grid<') >= 5
    differences = text.split("What differs")[1].split("</table>")[0]
    assert "model.groups.kind" in differences and "model.name" in differences
    assert "output.dir" not in differences and "data.name" not in differences
    assert "sparse_ae_kl" in text and "autoencoder" in text


def test_comparison_of_two_runs_with_the_same_name(runs, contents, light_run, tmp_path):
    other = shutil.copytree(light_run, tmp_path / "other" / "kl")
    html_text = render_html([contents["kl"], collect_run(other)])
    assert f"{runs['kl'].parent.name}/kl" in html_text and "other/kl" in html_text


def test_strings_from_the_run_are_escaped(light_run, tmp_path):
    name = "run<img src=x onerror=alert(1)>&\"'"
    run = _copy(light_run, tmp_path / name)
    config = run / "config.yaml"
    config.write_text("# <script>alert('config')</script>\n" + config.read_text())
    summary = json.loads((run / "summary.json").read_text())
    summary["metrics"]["<b>odd</b>"] = "<i>value</i>"
    (run / "summary.json").write_text(json.dumps(summary))
    text, page = parse(write_report(run))
    assert "<script" not in text and "<img src=x" not in text and "<b>odd" not in text and "<i>value" not in text
    assert "&lt;script&gt;alert(&#x27;config&#x27;)&lt;/script&gt;" in text
    assert "run&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#x27;" in text
    assert "&lt;b&gt;odd&lt;/b&gt;" in text and "&lt;i&gt;value&lt;/i&gt;" in text
    assert all(src.startswith("data:image/png;base64,") for src in page.images)


def test_run_in_progress_uses_its_checkpoint(runs, tmp_path):
    run = _copy(runs["kl"], tmp_path / "running", drop=("model", "summary.json", "report.html", "compare-grid.html"))
    text, page = parse(write_report(run))
    assert "unfinished: 2 epochs logged" in text and "No final metrics yet" in text
    assert "last logged epoch" in text and "train_loss" in text
    assert "last checkpoint" in text  # the note says where the pictures come from
    assert {"curves", "filters", "activity", "reconstructions"} <= set(page.sections)


def test_run_without_a_model_has_curves_and_a_note(light_run, tmp_path):
    run = _copy(light_run, tmp_path / "early", drop=("summary.json",))
    content = collect_run(run)
    assert set(content.figures) == {"curves"} and any("No trained model" in note for note in content.notes)
    (run / "summary.json").write_text("[1, 2]")
    (run / "metrics.jsonl").write_text("{not json\n")
    content = collect_run(run)  # unreadable files are notes, not errors
    assert content.summary is None and content.history == [] and content.figures == {}
    assert any("summary.json could not be read" in note for note in content.notes)
    assert any("metrics.jsonl is corrupt" in note for note in content.notes)
    (run / "summary.json").unlink()
    (run / "metrics.jsonl").unlink()
    content = collect_run(run)
    assert content.figures == {} and content.status == "unfinished: no epoch logged yet"
    text, page = parse(write_report(run))
    assert page.sections == ["overview", "metrics", "config"] and "Notes" in text


def test_missing_data_falls_back_to_the_runs_pictures(runs, contents, tmp_path):
    run = _copy(runs["kl"], tmp_path / "moved", drop=("report.html", "compare-grid.html"))
    for stem, png in contents["kl"].figures.items():  # as `train` writes them with output.plots: true
        (run / f"{stem}.png").write_bytes(png)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = {"name": "array", "path": str(tmp_path / "gone.npy")}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    content = collect_run(run)
    assert any("are skipped" in note and "gone.npy" in note for note in content.notes)
    assert content.stale == {"filters", "reconstructions", "activity"}  # the PNGs training wrote
    assert content.figures["filters"] == (run / "filters.png").read_bytes()
    assert "from the run folder" in render_html([content])


def test_not_a_run_folder_is_a_clear_error(runs, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a sparseae run folder"):
        write_report(tmp_path)
    with pytest.raises(CheckpointError, match="not a sparseae run folder"):
        write_report(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="does not exist"):
        write_report(runs["kl"], tmp_path / "missing")
    assert not (runs["kl"] / "compare-missing.html").exists()
    with pytest.raises(ConfigError, match="device"):
        write_report(runs["kl"], out=tmp_path / "page.html", device="tpu")
    assert not (tmp_path / "page.html").exists()


def test_cli_report(light_run, tmp_path, capsys):
    target = tmp_path / "pages" / "light.html"
    status, out, err = run_cli(capsys, "report", light_run, "--out", target, "--json")
    assert status == 0, err
    payload = json.loads(out)
    assert payload["report"] == str(target) and payload["runs"] == [str(light_run)] and target.exists()
    other = _copy(light_run, tmp_path / "other")
    status, out, err = run_cli(capsys, "report", light_run, other, "--out", tmp_path, "--quiet")
    assert status == 0 and out == "" and err == ""
    assert (tmp_path / "compare-other.html").exists()  # --out DIR: the default name inside it
    status, out, _ = run_cli(capsys, "report", other)
    assert status == 0 and "Report written to" in out and str(other / "report.html") in out
    for bad in (tmp_path / "nowhere", tmp_path / "pages"):
        status, out, err = run_cli(capsys, "report", bad)
        assert status == 2 and out == ""
        assert len(err.strip().splitlines()) == 1 and err.startswith("sparseae: error: ") and "Traceback" not in err
    status, _, err = run_cli(capsys, "report", light_run, tmp_path / "pages")
    assert status == 2 and "not a sparseae run folder" in err
    status, _, err = run_cli(capsys, "report", light_run, "--device", "tpu")
    assert status == 2 and "device must be" in err


def test_a_run_folder_with_reports_can_still_be_overwritten(runs, reports, tmp_path, capsys):
    run = _copy(runs["kl"], tmp_path / "again")
    assert (run / "report.html").exists() and (run / "compare-grid.html").exists()
    status, _, err = run_cli(capsys, "train", "--model", "sparse_ae_kl", "--data", "digits", "--set",
                             "model.n_components=4", "--set", "train.max_epochs=1", "--set", "output.plots=false",
                             "--out", run, "--overwrite", "--quiet")
    assert status == 0, err
    assert not (run / "report.html").exists() and not (run / "compare-grid.html").exists()  # stale pages gone


# ------------------------------------------------------------------------------ new pictures

def test_confusion_matrix_and_precision_recall_pictures(tmp_path):
    counts = np.array([[5, 1, 0], [0, 7, 2], [1, 0, 9]])
    picture = save_confusion_matrix(counts, tmp_path / "c.png", class_names=["a", "b", "c"], title="t")
    assert png_of_bytes(picture.read_bytes()).shape[0] > 100
    with pytest.raises(DataError, match="square"):
        save_confusion_matrix(np.ones((2, 3)), tmp_path / "bad.png")
    with pytest.raises(DataError, match="non-negative"):
        save_confusion_matrix(-np.eye(2), tmp_path / "bad.png")
    with pytest.raises(DataError, match="class names"):
        save_confusion_matrix(np.eye(2), tmp_path / "bad.png", class_names=["only one"])
    curves = [("ours", [1.0, 0.8, np.nan], [0.1, 0.5, 1.0]),
              ("lsh", np.array([0.5, 0.3, 0.1]), np.array([0.05, 0.4, 1.0]))]
    assert save_precision_recall(curves, tmp_path / "pr.png", title="two").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(DataError, match="non-empty"):
        save_precision_recall([], tmp_path / "bad.png")
    with pytest.raises(DataError, match="triple"):
        save_precision_recall([("only a name",)], tmp_path / "bad.png")
    with pytest.raises(DataError, match="precision values"):
        save_precision_recall([("x", [1.0, 0.5], [0.1])], tmp_path / "bad.png")


# ------------------------------------------------------------------------------ progress bars

@pytest.mark.parametrize("command", ["evaluate", "probe", "index", "train"])
def test_long_commands_show_progress_only_for_people(command, runs, tmp_path, capsys):
    def argv(mode: str) -> list:
        if command == "train":
            return ["train", "--model", "sparse_ae_l1", "--data", "digits", "--set", "model.n_components=4", "--set",
                    "train.max_epochs=1", "--set", "output.plots=false", "--out", tmp_path / mode, *mode_flags[mode]]
        if command == "index":
            return ["index", runs["hash"], "--out", tmp_path / mode, *mode_flags[mode]]
        return [command, runs["hash"], *mode_flags[mode]]

    mode_flags = {"human": [], "quiet": ["--quiet"], "json": ["--json"]}
    status, _, err = run_cli(capsys, *argv("human"))
    assert status == 0, err
    assert re.search(r"\d+%\|", err), err  # a tqdm bar on stderr
    for mode in ("quiet", "json"):
        status, out, err = run_cli(capsys, *argv(mode))
        assert status == 0 and err == "", err
        if mode == "json":
            json.loads(out)
        else:
            assert out == ""


# ------------------------------------------------------------------------------ in a browser

@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium driven by playwright (nothing is installed here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.parametrize("name, n_images", [("drsae", 7), ("hash", 5), ("compare", 8)])  # drsae: + firing
def test_report_renders_in_chromium(chromium, reports, name, n_images):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(reports[name].resolve().as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth, e.alt])")
        screenshot = page.screenshot(full_page=True)
    finally:
        page.close()
    assert len(images) == n_images
    assert all(complete and width > 0 for complete, width, _ in images), images
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    picture = matplotlib.image.imread(io.BytesIO(screenshot), format="png")
    assert picture.shape[0] > 1500 and picture.shape[1] == 1280
    rgb = np.round(picture[..., :3] * 255).astype(np.int32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(colours) > 500 and picture[..., :3].std() > 0.1  # pictures and text, not a blank page
