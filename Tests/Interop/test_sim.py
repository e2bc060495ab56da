"""`drtc sim`: byte-identical report.json, report.html charts checked in headless Chromium,
and the real-process mode (Specs/simulation.md). Kept small: DRTC_BIN may be a debug build."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

import drtc_helpers as h

SIM_ARGS = ["sim", "--peers", "60", "--duration", "10", "--seed", "3", "--scenario", "steady",
            "--latency", "50ms", "--jitter", "10ms", "--loss", "0.01", "--quiet"]


def run_sim(report: Path, *extra: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return h.run_cli([*SIM_ARGS, *extra, "--report", str(report)], timeout=timeout, env=env)


@pytest.fixture(scope="module")
def steady_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = tmp_path_factory.mktemp("sim") / "a"
    r = run_sim(report, "--threads", "2")
    assert r.returncode == 0, r.stderr
    return report


def test_identical_arguments_give_a_byte_identical_report(steady_report: Path, tmp_path: Path) -> None:
    # The same arguments on one thread instead of two: the report does not depend on threads.
    again = tmp_path / "b"
    r = run_sim(again, "--threads", "1")
    assert r.returncode == 0, r.stderr
    first = (steady_report / "report.json").read_bytes()
    assert first == (again / "report.json").read_bytes()
    report = json.loads(first)
    for key in ("peers", "seed", "scenario", "deliveryRatio", "convergenceSeconds", "duplicatesPerMessage",
                "bytesPerPeerPerSecond", "tableAgreement"):
        assert key in report, key
    assert report["peers"] == 60 and report["seed"] == 3 and report["scenario"] == "steady"
    assert report["deliveryRatio"] == 1
    assert 0 < report["convergenceSeconds"]["p99"] < 1
    # Run-dependent figures live next to it, not in it.
    run = json.loads((steady_report / "run.json").read_text())
    assert run["wallSeconds"] > 0 and run["peakRSSBytes"] > 0
    assert "wallSeconds" not in report
    # Another seed is another run.
    other = tmp_path / "c"
    r = h.run_cli([*[a if a != "3" else "4" for a in SIM_ARGS], "--report", str(other)], timeout=240)
    assert r.returncode == 0, r.stderr
    assert (other / "report.json").read_bytes() != first


# Issue 16's 1,000-peer runs with the production defaults (no tuning flags): the same
# arguments as its measurements and the `sim-steady-1k` / `sim-partition-heal-1k` benchmarks.
THOUSAND = ["sim", "--peers", "1000", "--duration", "30", "--seed", "7", "--latency", "50ms", "--jitter", "10ms",
            "--loss", "0.01", "--quiet"]


def test_a_thousand_peers_have_few_duplicates_and_heal_a_partition_in_seconds(tmp_path: Path) -> None:
    """Mean duplicates per message <= 3 in steady state (the forward hold follows the links'
    round-trip times, Specs/gossip.md "Duplicates"), and after `partition-heal` every peer
    holds the same table within 5 virtual seconds (Specs/gossip.md "Partitions"). Both are
    virtual-time figures: a debug or a release `drtc` gives the same reports, only slower."""
    runs = {}
    for scenario in ("steady", "partition-heal"):
        report = tmp_path / scenario
        r = h.run_cli([*THOUSAND, "--scenario", scenario, "--report", str(report)], timeout=1800)
        assert r.returncode == 0, r.stderr
        runs[scenario] = json.loads((report / "report.json").read_text())
    steady, heal = runs["steady"], runs["partition-heal"]
    assert steady["deliveryRatio"] == 1
    assert steady["duplicatesPerMessage"]["mean"] <= 3, steady["duplicatesPerMessage"]
    assert heal["outcome"]["minAgreementDuringPartition"] < 0.9, heal["outcome"]
    assert 0 <= heal["outcome"]["healSeconds"] <= 5, heal["outcome"]
    assert heal["tableAgreement"]["final"] == 1


def test_bad_scenario_is_a_usage_error(tmp_path: Path) -> None:
    r = h.run_cli(["sim", "--scenario", "nope", "--report", str(tmp_path)])
    assert r.returncode == 2
    assert "--scenario" in r.stderr and "steady" in r.stderr
    r = h.run_cli(["sim", "--threads", "0", "--report", str(tmp_path)])
    assert r.returncode == 2
    assert "--threads" in r.stderr


def png_pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decodes an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into RGB pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", data[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytearray] = []
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        f = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    pixels = [(r[x], r[x + 1], r[x + 2]) for r in rows for x in range(0, stride, channels)]
    return width, height, pixels


def ink_share(png: bytes, background: tuple[int, int, int]) -> float:
    """Share of pixels that differ clearly from the background colour."""
    _, _, pixels = png_pixels(png)
    far = sum(1 for p in pixels if sum(abs(p[k] - background[k]) for k in range(3)) > 60)
    return far / len(pixels)


def test_report_html_charts_render_in_headless_chromium(steady_report: Path, tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get((steady_report / "report.html").as_uri())
        assert "drtc sim" in driver.title
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        lines = {"chart-convergence", "chart-latency-cdf", "chart-bandwidth", "chart-agreement"}
        rewards = {"chart-rewards-histogram", "chart-rewards-scatter"}
        assert {c.get_attribute("id") for c in charts} == lines | rewards
        report = json.loads((steady_report / "report.json").read_text())["rewards"]
        for chart in charts:
            cid = chart.get_attribute("id")
            if cid not in rewards:
                continue
            # The distribution of R (one bar per bin, as many nodes as were paid) and R
            # against V (one dot per measured node), drawn inside the plot.
            if cid == "chart-rewards-histogram":
                marks = chart.find_elements(By.CSS_SELECTOR, "rect.bar")
                assert len(marks) == len(report["histogram"]) == 20, cid
                heights = [float(m.get_attribute("height")) for m in marks]
                assert max(heights) > 100 and all(hh >= 0 for hh in heights), (cid, heights)
            else:
                marks = chart.find_elements(By.CSS_SELECTOR, "circle.dot")
                assert len(marks) == report["measuredNodes"] > 10, cid
                xs = [float(m.get_attribute("cx")) for m in marks]
                assert max(xs) - min(xs) > 100, cid  # V spreads over the axis
            assert len(chart.find_elements(By.CSS_SELECTOR, "text")) >= 12, cid
            png = chart.screenshot_as_png
            (tmp_path / f"{cid}.png").write_bytes(png)
            assert 0.01 < ink_share(png, (0xF7, 0xF9, 0xFB)) < 0.6, cid
        for chart in (c for c in charts if c.get_attribute("id") in lines):
            cid = chart.get_attribute("id")
            series = chart.find_elements(By.CSS_SELECTOR, "path.series")
            assert len(series) == 1, cid
            d = series[0].get_attribute("d")
            assert d.count("L") >= 10, (cid, d[:200])
            length = driver.execute_script("return arguments[0].getTotalLength()", series[0])
            assert length > 200, (cid, length)
            box = driver.execute_script("const b = arguments[0].getBBox(); return [b.width, b.height]", series[0])
            assert box[0] > 100, (cid, box)
            assert len(chart.find_elements(By.CSS_SELECTOR, "text")) >= 12, cid
            # The screenshot of each chart: a drawn curve, axes and labels, not a blank box.
            png = chart.screenshot_as_png
            (tmp_path / f"{cid}.png").write_bytes(png)
            share = ink_share(png, (0xF7, 0xF9, 0xFB))
            assert 0.01 < share < 0.6, (cid, share)
        page = driver.get_screenshot_as_png()
        (tmp_path / "report.png").write_bytes(page)
        assert ink_share(page, (255, 255, 255)) > 0.05
    finally:
        driver.quit()


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_processes_mode_converges_and_cleans_up(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    report = tmp_path / "report"
    r = h.run_cli(["sim", "--processes", "5", "--duration", "120", "--report", str(report)],
                  timeout=240, env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    data = json.loads((report / "report.json").read_text())
    assert data["peers"] == 5 and data["scenario"] == "processes"
    assert data["outcome"]["converged"] == 1
    assert data["tableAgreement"]["final"] == 1
    assert (report / "report.html").exists()
    assert list(tmp.iterdir()) == [], "temporary node directories left behind"


def test_processes_mode_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRTC_")}
    env["TMPDIR"] = str(tmp)
    log = tmp_path / "sim.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(h.DRTC_BIN), "sim", "--processes", "3", "--duration", "300",
                                 "--report", str(tmp_path / "report")], stderr=err, env=env)
    try:
        deadline = time.monotonic() + 60
        while b"nodes started" not in log.read_bytes():
            assert time.monotonic() < deadline, log.read_text()
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        kids = children_of(proc.pid)
        assert len(kids) == 3
        assert any(tmp.iterdir())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 128 + signal.SIGINT
        assert not any(alive(k) for k in kids), "node processes survived Ctrl-C"
        assert list(tmp.iterdir()) == [], "temporary node directories left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
