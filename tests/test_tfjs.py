"""TF.js: graph fix-ups (fused activations the TF.js kernels lack are split into their own nodes) and the
demo page (its filled-in names; in headless Chromium on a finished run, its predictions, its user input
and its fallback when WebGL is missing or fails)."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import pathlib
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from helpers import CHROMIUM_ARGS, require_tool

from workflow.deploy.tfjs import DEMO_PAGE, describe_run, fill_demo_page, unfuse_unsupported_activations


def encoded(*names: str) -> list[str]:
    return [base64.b64encode(name.encode()).decode() for name in names]


def test_fused_tanh_is_split_and_relu_is_kept(tmp_path):
    """_FusedMatMul[BiasAdd, Tanh] becomes _FusedMatMul[BiasAdd] + Tanh under the old name; [BiasAdd, Relu] stays."""
    model = {"modelTopology": {"node": [
        {"name": "dense/Tanh", "op": "_FusedMatMul", "input": ["x", "w", "b"],
         "attr": {"fused_ops": {"list": {"s": encoded("BiasAdd", "Tanh")}}, "T": {"type": "DT_FLOAT"}}},
        {"name": "conv/Relu", "op": "_FusedConv2D", "input": ["dense/Tanh", "k", "c"],
         "attr": {"fused_ops": {"list": {"s": encoded("BiasAdd", "Relu")}}, "T": {"type": "DT_FLOAT"}}},
    ]}}  # fmt: skip
    path = tmp_path / "model.json"
    path.write_text(json.dumps(model))

    changed = unfuse_unsupported_activations(path)

    nodes = {node["name"]: node for node in json.loads(path.read_text())["modelTopology"]["node"]}
    assert changed == ["dense/Tanh (Tanh)"]
    assert nodes["dense/Tanh/pre_activation"]["attr"]["fused_ops"]["list"]["s"] == encoded("BiasAdd")
    assert nodes["dense/Tanh"] == {"name": "dense/Tanh", "op": "Tanh", "input": ["dense/Tanh/pre_activation"],
                                   "attr": {"T": {"type": "DT_FLOAT"}}}  # fmt: skip
    assert nodes["conv/Relu"]["attr"]["fused_ops"]["list"]["s"] == encoded("BiasAdd", "Relu")
    assert nodes["conv/Relu"]["input"][0] == "dense/Tanh"


def test_nothing_to_split_leaves_the_file_alone(tmp_path):
    """A model without unsupported fused activations is not rewritten."""
    path = tmp_path / "model.json"
    text = json.dumps({"modelTopology": {"node": [{"name": "a", "op": "Relu", "input": ["x"], "attr": {}}]}})
    path.write_text(text)

    assert unfuse_unsupported_activations(path) == []
    assert path.read_text() == text


def test_demo_page_names_the_run_and_escapes_what_it_fills_in():
    """The heading and title name experiment, model and dataset (HTML-escaped); a placeholder left over is an error."""
    about = {"experiment": "digits_cnn", "seed": "0", "model": "cnn<b>", "dataset": "sklearn_digits/1.0.0"}

    page = fill_demo_page(DEMO_PAGE.read_text(encoding="utf-8"), about)

    assert "<h1>digits_cnn: cnn&lt;b&gt; on sklearn_digits/1.0.0</h1>" in page
    assert "<title>digits_cnn: cnn&lt;b&gt; on sklearn_digits/1.0.0 (TF.js)</title>" in page
    assert "{{" not in page and "Seed 0," in page
    with pytest.raises(ValueError, match="unfilled"):
        fill_demo_page("<h1>{{experiment}} {{typo}}</h1>", about)


def test_demo_page_loads_only_local_files_and_the_model_by_absolute_url():
    """No CDN: every src/href is local; model.json is fetched by an absolute URL (tfjs takes the weights' folder
    from the model URL's last "/", which a bare "model.json" lacks)."""
    page = DEMO_PAGE.read_text(encoding="utf-8")

    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,", "tf.min.js"]
    assert 'new URL("model.json", location.href).href' in page
    assert 'loadGraphModel("model.json")' not in page


def test_describe_run_reads_the_run_folder_train_json_and_the_shards_spec(tmp_path):
    """Experiment and seed from results/runs/<exp>/seed<k>/, the model from train.json, the dataset from spec.json."""
    run = tmp_path / "results/runs/my_exp/seed3"
    (run / "saved_model").mkdir(parents=True)
    (run / "train.json").write_text(json.dumps({"params": {"model": {"name": "lenet5"}}}))
    shards = tmp_path / "shards"
    shards.mkdir()
    image = {"dtype": "uint8", "shape": [28, 28, 1]}
    label = {"dtype": "int64", "num_classes": 10}
    spec = {"source": {"name": "mnist", "full_name": "mnist/3.0.1"}, "features": {"image": image, "label": label}}
    spec["splits"] = {}
    (shards / "spec.json").write_text(json.dumps(spec))

    about = describe_run(str(run / "saved_model"), str(run / "tfjs"), str(shards))

    assert about == {"experiment": "my_exp", "seed": "3", "model": "lenet5", "dataset": "mnist/3.0.1"}


# --- The published demo page in headless Chromium (on the `finished` run) -------------------------------

DEPLOY = "results/deploy"
# Scripts run in the page before its own: a browser without WebGL, and WebGL that fails once the model runs.
NO_WEBGL = """for (const C of [HTMLCanvasElement, OffscreenCanvas]) {
  const original = C.prototype.getContext;
  C.prototype.getContext = function (type, ...rest) {
    return /webgl/i.test(type) ? null : original.call(this, type, ...rest);
  };
}"""
WEBGL_FAILS = """for (const C of [WebGLRenderingContext, WebGL2RenderingContext]) {
  C.prototype.readPixels = function () { throw new Error("simulated WebGL read failure"); };
}"""
WEBGL_PROBE = """() => { try { return !!(new OffscreenCanvas(1, 1).getContext("webgl2")
  || document.createElement("canvas").getContext("webgl")); } catch (error) { return false; } }"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output to the figures."""


@contextlib.contextmanager
def served(root: pathlib.Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (a free port) rooted at `root`; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def open_demo(url: str, init_script: str | None = None, act: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Open the page in headless Chromium, wait for its done (or error) signal, then run `act(page)`.

    Returns what it showed (state, status, heading, #predictions), whether this browser offers WebGL,
    every response (status, URL), the URLs of failed requests, and what `act` returned.
    """
    chromium = require_tool("chromium", "apt-get install chromium")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    responses, failed = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            if init_script:
                page.add_init_script(init_script)
            page.on("response", lambda response: responses.append((response.status, response.url)))
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(url)
            try:
                page.wait_for_selector("body[data-state=done], body[data-state=error]", timeout=90_000)
            except PlaywrightTimeout:
                pytest.fail(f"{url}: no done or error signal in 90 s; it shows {page.locator('body').inner_text()!r}")
            shown = {
                "state": page.locator("body").get_attribute("data-state"),
                "status": page.locator("#status").text_content(),
                "heading": page.locator("h1").text_content(),
                "predictions": json.loads(page.locator("#predictions").text_content()),
                "webgl_available": page.evaluate(WEBGL_PROBE),
            }
            shown["acted"] = act(page) if act and shown["state"] == "done" else None
        finally:
            browser.close()
    return {**shown, "responses": responses, "failed": failed}


@pytest.fixture(scope="module")
def saved_model_says(finished) -> Callable[[str], dict[str, Any]]:
    """experiment -> the test split (images, labels) and the published SavedModel's probabilities on it."""
    from workflow.data.pipeline import load_arrays
    from workflow.deploy.export import predict_saved_model

    @functools.cache
    def run(experiment: str) -> dict[str, Any]:
        split = load_arrays(str(finished / "results/datasets/digits/shards"), "test")
        published = finished / DEPLOY / experiment / experiment / "1"
        probabilities = predict_saved_model(published, {"images": split["images"]})
        return {**split, "probabilities": probabilities, "model": published}

    return run


def assert_page_matches_the_saved_model(shown: dict[str, Any], expected: dict[str, Any], atol: float) -> float:
    """The page finished, fetched only from 127.0.0.1 with every response a 200, and its probabilities for the
    whole test split are the SavedModel's; returns their largest difference."""
    assert shown["state"] == "done", shown["status"]
    assert not shown["failed"], shown["failed"]
    assert all(url.startswith("http://127.0.0.1:") for _, url in shown["responses"]), shown["responses"]  # no CDN
    assert [status for status, _ in shown["responses"]] == [200] * len(shown["responses"]), shown["responses"]
    probabilities = np.asarray(shown["predictions"]["probabilities"])
    assert probabilities.shape == expected["probabilities"].shape  # every test image, not a sample of 8
    assert np.array_equal(probabilities.argmax(axis=1), expected["probabilities"].argmax(axis=1))
    difference = float(np.abs(probabilities - expected["probabilities"]).max())
    assert difference <= atol, difference
    correct = int((expected["probabilities"].argmax(axis=1) == expected["labels"]).sum())
    assert f"{correct} correct ({100 * correct / len(expected['labels']):.1f}%)" in shown["status"], shown["status"]
    return difference


@pytest.mark.dag
@pytest.mark.parametrize(
    ("experiment", "root", "path"),
    [
        ("digits_cnn", DEPLOY, "digits_cnn/tfjs/index.html"),  # the case: served from results/deploy/
        ("digits_cnn", DEPLOY, "digits_cnn/tfjs/index.html?backend=cpu"),
        ("digits_cnn", f"{DEPLOY}/digits_cnn/tfjs", "index.html"),  # from its own folder
        ("digits_cnn", f"{DEPLOY}/digits_cnn/tfjs", "index.html?backend=cpu"),
        ("digits_mlp", DEPLOY, "digits_mlp/tfjs/"),  # the folder's URL, index.html implied
    ],
    ids=["deploy-root-default", "deploy-root-cpu", "own-folder-default", "own-folder-cpu", "mlp-deploy-root-default"],
)
def test_tfjs_demo_page_in_chromium_predicts_what_the_saved_model_does(
    finished, saved_model_says, experiment, root, path
):
    """The published index.html, served on 127.0.0.1 from results/deploy/ or from its own folder and opened in
    headless Chromium (the pinned tf.min.js, no network), reports done and classifies the whole test split as
    the SavedModel does, on WebGL by default where the browser has it, else on the CPU backend; its heading
    names experiment, model and dataset."""
    expected = saved_model_says(experiment)
    with served(finished / root) as base:
        shown = open_demo(f"{base}/{path}")

    backend = shown["predictions"]["backend"]
    forced = "backend=cpu" in path
    assert backend == ("cpu" if forced or not shown["webgl_available"] else "webgl"), shown["status"]
    difference = assert_page_matches_the_saved_model(shown, expected, atol=1e-4 if backend == "cpu" else 1e-3)
    model = "cnn" if experiment == "digits_cnn" else "mlp"
    assert shown["heading"] == f"{experiment}: {model} on sklearn_digits/1.0.0"
    prefix = f"{base}/{experiment}/tfjs/" if root == DEPLOY else f"{base}/"
    assert f"{prefix}group1-shard1of1.bin" in [url for _, url in shown["responses"]]  # the weights beside the page
    print(f"{experiment} {path} (served from {root}): {shown['status']}; max |TF.js - SavedModel| {difference:.2e}")


def draw_then_pick(index: int) -> Callable[[Any], dict[str, Any]]:
    """What a person does on the page: clear the pad, draw one vertical stroke down its middle with the mouse,
    then show test image `index`; returns #user-result and the line shown after each."""

    def act(page: Any) -> dict[str, Any]:
        results = {}
        page.click("#clear")
        pad = page.locator("#pad").bounding_box()
        x, top, height = pad["x"] + pad["width"] / 2, pad["y"] + 0.15 * pad["height"], 0.7 * pad["height"]
        page.mouse.move(x, top)
        page.mouse.down()
        for step in range(1, 21):
            page.mouse.move(x, top + height * step / 20)
        page.mouse.up()
        for run, name in ((1, "drawing"), (2, "picked")):
            if run == 2:
                page.fill("#index", str(index))
                page.click("#pick")
            page.wait_for_function(f"document.querySelector('#user-result').dataset.runs === '{run}'", timeout=30_000)
            results[name] = json.loads(page.locator("#user-result").text_content())
            results[name]["shown"] = page.locator("#user-output").text_content()
        return results

    return act


@pytest.mark.dag
def test_tfjs_demo_page_classifies_a_drawn_digit_and_a_picked_test_image_as_the_saved_model_does(
    finished, saved_model_says
):
    """Served from results/deploy/: a stroke drawn with the mouse becomes an 8x8 0-255 input with ink where it was
    drawn, and the page gives the SavedModel's prediction for that input; picking the last test image feeds
    exactly that image and shows the SavedModel's prediction and its label."""
    from workflow.deploy.export import predict_saved_model

    expected = saved_model_says("digits_cnn")
    index = len(expected["labels"]) - 1
    with served(finished / DEPLOY) as base:
        shown = open_demo(f"{base}/digits_cnn/tfjs/index.html", act=draw_then_pick(index))
    assert shown["state"] == "done", shown["status"]
    drawn, picked = shown["acted"]["drawing"], shown["acted"]["picked"]

    image = np.asarray(drawn["input"]).reshape(8, 8)
    assert image.min() >= 0 and image.max() <= 255
    assert not image[:, [0, 1, 2, 5, 6, 7]].any(), image  # the stroke went down the middle: columns 3 and 4
    assert (image[1:7, 3:5] > 128).all(), image
    ours = predict_saved_model(expected["model"], {"images": image.reshape(1, 8, 8, 1).astype(np.uint8)})[0]
    np.testing.assert_allclose(drawn["probabilities"], ours, atol=1e-3)
    assert drawn["predicted"] == int(ours.argmax()) and drawn["source"] == "your drawing"
    assert drawn["shown"].startswith(f"your drawing: predicted {ours.argmax()}")

    label = int(expected["labels"][index])
    assert picked["input"] == expected["images"][index].ravel().tolist()
    np.testing.assert_allclose(picked["probabilities"], expected["probabilities"][index], atol=1e-3)
    assert picked["predicted"] == int(expected["probabilities"][index].argmax()) and picked["label"] == label
    assert picked["shown"].startswith(f"test image {index}: predicted {picked['predicted']}")
    assert picked["shown"].endswith(f", label {label})")
    print(f"drawn stroke: {drawn['shown']}, SavedModel {ours.max():.4f} for {ours.argmax()}; picked: {picked['shown']}")


@pytest.mark.dag
@pytest.mark.parametrize(
    ("init_script", "reason"),
    [(NO_WEBGL, "(no WebGL here)"), (WEBGL_FAILS, "(webgl failed (simulated WebGL read failure), ran on cpu instead)")],
    ids=["no-webgl", "webgl-fails"],
)
def test_tfjs_demo_page_falls_back_to_the_cpu_backend_and_says_why(finished, saved_model_says, init_script, reason):
    """Without WebGL, or with WebGL failing once the model runs, the default page still finishes on the CPU
    backend, says why in its status line, and predicts what the SavedModel does."""
    expected = saved_model_says("digits_cnn")
    with served(finished / DEPLOY) as base:
        shown = open_demo(f"{base}/digits_cnn/tfjs/index.html", init_script=init_script)

    assert shown["predictions"]["backend"] == "cpu", shown["status"]
    assert f"on the cpu backend {reason}" in shown["status"], shown["status"]
    difference = assert_page_matches_the_saved_model(shown, expected, atol=1e-4)
    print(f"{shown['status']}; max |TF.js - SavedModel| {difference:.2e}")


@pytest.mark.dag
def test_tfjs_demo_page_dump_dom_shows_the_finished_page_on_the_default_backend(finished, saved_model_says):
    """`chromium --headless --virtual-time-budget=30000 --dump-dom` on the page served from results/deploy/ (default
    backend) prints it finished, not "loading the model…"."""
    chromium = require_tool("chromium", "apt-get install chromium")
    expected = saved_model_says("digits_cnn")
    correct = int((expected["probabilities"].argmax(axis=1) == expected["labels"]).sum())
    with served(finished / DEPLOY) as base:
        result = subprocess.run(
            [chromium, "--headless", *CHROMIUM_ARGS, "--virtual-time-budget=30000", "--dump-dom",
             f"{base}/digits_cnn/tfjs/index.html"],
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    status = re.search(r'<p id="status"[^>]*>([^<]*)</p>', result.stdout).group(1)
    assert '<body data-state="done">' in result.stdout, status
    assert status.startswith("done: 360 test images classified on the ") and f"{correct} correct" in status, status
    print(f"--dump-dom: {status}")
