"""``typedexp dashboard``: SwanLab's dashboard on two real runs, read through its HTTP API and
looked at in headless Chromium; and its one-line errors."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from typedexp import launch
from typedexp.runs.dashboard import escapes
from typedexp.tracking.jsonl import read_metrics

from tests.browser import find_chromium, headless_page
from tests.helpers import run_cli
from tests.test_media import pixels
from tests.test_tracking import free_port, get_json

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"  # git-ignored; CI keeps the screenshot there
SHORT = ["epochs=3", "trainer.max_batches=5", "trainer.log_every=2", "trainer.progress=off", "tracker.log_dir=sl"]
SERIES = ("train/loss", "val/acc")
WIDTH, HEIGHT = 1400, 1000  # the browser's viewport, CSS pixels at scale 1
SIDEBAR = 290  # px: SwanLab's experiment list, where each run's colour shows as a dot anyway

# For each run colour (r, g, b), how many canvases hold at least 20 pixels of it: a chart whose
# line for that run is drawn. ECharts draws on <canvas>, so this sees the lines, not the DOM.
DRAWN_CHARTS_JS = """(() => {
  const colors = %s;
  const found = colors.map(() => 0);
  for (const canvas of document.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    colors.forEach((rgb, k) => {
      let near = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        const distance = Math.abs(pixels[i] - rgb[0]) + Math.abs(pixels[i + 1] - rgb[1]) + Math.abs(pixels[i + 2] - rgb[2]);
        if (pixels[i + 3] > 200 && distance < 60) near++;
      }
      if (near >= 20) found[k]++;
    });
  }
  return found;
})()"""


def rgb(hex_color: str) -> tuple[int, int, int]:
    value = int(hex_color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def pixels_near(path: Path, color: tuple[int, int, int], *, left: int) -> int:
    """Pixels of the screenshot right of ``left`` within a distance of 60 (sum over RGB) of ``color``."""
    from PIL import Image

    with Image.open(path) as shot:
        image = shot.convert("RGB")
    width, height = image.size
    data = image.load()
    assert data is not None
    count = 0
    for x in range(left, width):
        for y in range(0, height):
            pixel = data[x, y]
            assert isinstance(pixel, tuple)
            if sum(abs(int(a) - b) for a, b in zip(pixel, color)) < 60:
                count += 1
    return count


def wait_for_server(url: str, server: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get_json(f"{url}/api/v1/project")
            return
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"the dashboard exited with {server.returncode}: {server.communicate()}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not answer on {url} within {timeout} s") from None
            time.sleep(0.1)  # polling interval


@pytest.fixture
def dashboard(workdir: Path) -> Iterator[tuple[str, list[Path]]]:
    """Two short tracker=local runs and `typedexp dashboard` over them on a free loopback port."""
    runs = [launch([*SHORT, f"seed={seed}"]).run_dir for seed in (1, 2)]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "typedexp", "dashboard", "--port", str(port), "--logdir", "sl"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, server)
        yield url, runs
    finally:
        server.send_signal(2)  # Ctrl-C: the dashboard stops cleanly with exit code 0
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, (out, err)
    assert f"on {url} (Ctrl-C stops it)" in out
    assert "dashboard stopped" in out and "Traceback" not in err


@pytest.mark.slow
def test_dashboard_shows_both_runs_with_their_values_and_draws_their_charts(
    workdir: Path, tmp_path: Path, dashboard: tuple[str, list[Path]]
) -> None:
    url, run_dirs = dashboard
    project = get_json(f"{url}/api/v1/project")
    experiments = project["experiments"]
    assert isinstance(experiments, list) and len(experiments) == 2
    colors: list[tuple[int, int, int]] = []
    for run_dir in run_dirs:
        # SwanLab's description of each run names its run dir (tracker.description's default).
        (experiment,) = [e for e in experiments if e["description"] == f"typedexp run in {run_dir}"]
        colors.append(rgb(experiment["light"]))
        points = read_metrics(run_dir / "metrics.jsonl")
        for series in SERIES:
            served = get_json(f"{url}/api/v1/experiment/{experiment['id']}/tag/{series}")["list"]
            assert isinstance(served, list)
            expected = {int(point["step"]): point[series] for point in points if series in point}
            assert {item["index"]: item["data"] for item in served} == pytest.approx(expected)
            assert len(expected) >= 3
        # The sample grid is an image chart; SwanLab serves the same pixels as media/ in the run dir.
        served_images = get_json(f"{url}/api/v1/experiment/{experiment['id']}/tag/val/samples")["list"]
        assert isinstance(served_images, list) and [item["index"] for item in served_images] == [15]
        (name,) = served_images[0]["data"]
        query = urllib.parse.urlencode({"tag": "val/samples", "experiment_id": experiment["id"]})
        with urllib.request.urlopen(f"{url}/api/v1/media/{name}?{query}", timeout=10) as response:
            served_png = tmp_path / f"served-{experiment['id']}.png"
            served_png.write_bytes(response.read())
        assert torch.equal(pixels(served_png), pixels(run_dir / "media" / "val-samples-epoch-003.png"))
    assert colors[0] != colors[1]
    # The project's run table: each run's last value of each metric, in its own column.
    table = get_json(f"{url}/api/v1/project/summaries")["summaries"]
    assert isinstance(table, dict)
    for run_dir in run_dirs:
        (experiment,) = [e for e in experiments if e["description"] == f"typedexp run in {run_dir}"]
        last: dict[str, float] = {}
        for point in read_metrics(run_dir / "metrics.jsonl"):
            last.update({key: value for key, value in point.items() if key not in ("step", "epoch")})
        row = table[experiment["name"]]  # also the image charts' last file names
        assert {key: row[key] for key in last} == pytest.approx(last)
    refuses_what_swanboard_alone_serves(url, workdir, experiments[0]["id"])

    chromium = find_chromium()
    if chromium is None:
        reason = "no chromium on PATH (.ci/run installs Debian's chromium where it runs as root)"
        print(f"SKIPPED browser half: {reason}", file=sys.stderr)
        pytest.skip(reason)
    with headless_page(chromium, tmp_path / "chromium-profile") as page:
        page.open(f"{url}/charts", width=WIDTH, height=HEIGHT)  # the project's charts, all runs
        page.wait_for(
            DRAWN_CHARTS_JS % [list(color) for color in colors],
            lambda found: isinstance(found, list) and min(found) >= 4,  # both runs in all 4 charts
            timeout=60,
            what="both runs' lines in the 4 charts",
        )
        shot = page.screenshot(tmp_path / "dashboard.png")
    ARTIFACTS.mkdir(exist_ok=True)
    kept = Path(shutil.copy(shot, ARTIFACTS / "dashboard.png"))
    print(f"dashboard screenshot: {kept}")
    # The lines are in the picture too, not only in the canvases: each run's colour covers
    # hundreds of pixels right of the experiment list (about 1,000 each, measured; its legend
    # text adds a few dozen; a blank or error page, none).
    for color in colors:
        assert pixels_near(shot, color, left=SIDEBAR) >= 300


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def refuses_what_swanboard_alone_serves(url: str, workdir: Path, experiment_id: int) -> None:
    """swanboard's media route joins the URL path onto a media folder unchecked; a page from
    another site whose name resolves to 127.0.0.1 (DNS rebinding) could otherwise use the API."""
    (workdir / "secret.txt").write_text("not for the browser")  # 4 levels above sl/<run>/media/<kid>/
    query = urllib.parse.urlencode({"tag": "val/samples", "experiment_id": experiment_id})
    for path in ("..%2F..%2F..%2F..%2Fsecret.txt", "%2F" + str(workdir / "secret.txt").lstrip("/").replace("/", "%2F")):
        assert status_of(urllib.request.Request(f"{url}/api/v1/media/{path}?{query}")) == 404, path
    other_site = urllib.request.Request(f"{url}/api/v1/project", headers={"Host": "attacker.example"})
    assert status_of(other_site) == 400
    assert status_of(urllib.request.Request(f"{url}/api/v1/project".replace("127.0.0.1", "localhost"))) == 200


@pytest.mark.parametrize(
    ("path", "escapes_"),
    [("/api/v1/media/010-abc.png", False), ("/charts/", False), ("/api/v1/media/../x", True),
     ("/api/v1/media//etc/passwd", True), ("/a/..", True), ("/", False)],
)
def test_paths_that_leave_a_folder_are_recognised(path: str, escapes_: bool) -> None:
    assert escapes(path) is escapes_


def test_dashboard_help_needs_no_hydra(workdir: Path) -> None:
    done = run_cli(["dashboard", "--help"], workdir)
    assert done.returncode == 0
    assert "--port" in done.stdout and "--logdir" in done.stdout and "127.0.0.1" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "abc"], "typedexp: error: dashboard: argument --port: 'abc' is not a port number (1-65535)"),
        (["--port", "0"], "typedexp: error: dashboard: argument --port: 0 is not a port number (1-65535)"),
        (["--logdir", "missing"], "typedexp: error: --logdir missing: no such directory"),
        (["--logdir", "empty"], "typedexp: error: --logdir empty: holds no tracker=local runs (no runs.swanlab)"),
        (["--logdir", "a-file"], "typedexp: error: --logdir a-file: not a directory"),
        (["--verbose"], "typedexp: error: dashboard: unrecognized arguments: --verbose"),
        (["--logdir", "garbage"], "typedexp: error: --logdir garbage: runs.swanlab is not SwanLab's database"),
    ],
)
def test_dashboard_bad_arguments_are_one_line(workdir: Path, args: list[str], message: str) -> None:
    (workdir / "empty").mkdir()
    (workdir / "a-file").write_text("")
    (workdir / "garbage").mkdir()
    (workdir / "garbage" / "runs.swanlab").write_text("not a database")
    done = run_cli(["dashboard", *args], workdir)
    assert done.returncode == 2
    assert len(done.stderr_lines) == 1 and done.stderr_lines[0].startswith(message), done.stderr
    assert "http://" not in done.stdout  # nothing was served


def test_dashboard_refuses_a_taken_port(workdir: Path) -> None:
    """SwanLab alone would move to another port and say so among its start-up lines."""
    (workdir / "sl").mkdir()
    with contextlib.closing(sqlite3.connect(workdir / "sl" / "runs.swanlab")) as database:
        database.execute("CREATE TABLE experiment (id INTEGER)")  # the table the run count reads
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(["dashboard", "--logdir", "sl", "--port", str(port)], workdir)
    assert done.returncode == 2
    assert done.stderr_lines == [
        f"typedexp: error: --port {port}: 127.0.0.1:{port} is in use; choose another with --port"
    ]
