"""Classroom-mode benchmark: how fast do the live controls answer?  (A script, not a timed test.)

Measures, and prints as one JSON object:

1. ``grid_build_sample_s``: the first build of the live controls' grid on the sample data
   (every slider position, :mod:`apt_core.experiments.grid`), into a fresh artifact cache;
2. ``grid_point_ml100k_s`` and ``grid_build_ml100k_estimate_s``: the same on MovieLens-100K
   for a few grid points (``--ml-points``), and the full grid's time estimated from them;
3. ``slider_move_s``: in Chromium (Playwright), from a key press on the Defense page's ERM
   slider to the updated figure, on the sample data after the grid is built;
4. ``ml100k_run_s``: in Chromium, a Run on the Defense page on MovieLens-100K (APT and AT,
   one seed), from the click to the figures.

Usage::

    python scripts/classroom_bench.py --data-dir /path/to/data --port 8615

Needs Debian's ``/usr/bin/chromium`` and the ``playwright`` package (no browser download).
Timings depend on the machine's load: run it on an idle machine for numbers to quote.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIGNATURE = ("() => Array.from(document.querySelectorAll('.js-plotly-plot .bartext, .js-plotly-plot .legendtext')).map(e => e.textContent).join('|')")


def build_grids(data_dir: str | None, ml_points: int) -> dict:
    from apt_core.storage.cache import ArtifactCache
    from apt_core.data import load_dataset
    from apt_core.experiments.pipeline import Scenario
    from apt_core.experiments.grid import GridSpec, build_grid, grid_scenarios

    out: dict = {}
    cache = ArtifactCache()
    base = Scenario(dataset="sample", attack="average", attack_size=0.03, targets="unpopular", defenses=("apt",), erm_fraction=0.05)
    points = grid_scenarios(base, GridSpec().available())
    report = build_grid(points, cache, data=load_dataset("sample", None))
    out.update(grid_points_sample=report.n_points, grid_build_sample_s=round(report.seconds, 1))
    if data_dir and ml_points > 0:
        ml = load_dataset("ml-100k", data_dir)
        mbase = Scenario(dataset="ml-100k", data_dir=data_dir, attack="average", attack_size=0.03, targets="unpopular",
                         defenses=("apt",), erm_fraction=0.05)
        full = grid_scenarios(mbase, GridSpec().available())
        t0 = time.perf_counter()
        build_grid(full[:ml_points], cache, data=ml)
        per_point = (time.perf_counter() - t0) / ml_points
        out.update(grid_points_ml100k=len(full), grid_ml100k_points_built=ml_points, grid_point_ml100k_s=round(per_point, 1),
                   grid_build_ml100k_estimate_s=round(per_point * len(full)))
    return out


def serve(port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("streamlit did not start")


def browser_timings(url: str, data_dir: str | None, moves: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.set_default_timeout(600_000)
        page.goto(f"{url}/defense")
        page.wait_for_selector(".js-plotly-plot .bartext")
        page.wait_for_selector("text=slider positions are precomputed")  # the server's check of the built grid is over
        page.wait_for_timeout(1500)
        slider = page.locator('[data-testid="stSlider"]:has-text("ERM users")').get_by_role("slider")
        times = []
        for i in range(moves):
            old = page.evaluate(SIGNATURE)
            slider.focus()
            t0 = time.perf_counter()
            # 5% -> 10% -> 20% -> 10% -> 5% -> 2% -> 5% ...: every press lands on another grid value
            slider.press(["ArrowRight", "ArrowRight", "ArrowLeft", "ArrowLeft", "ArrowLeft", "ArrowRight"][i % 6])
            # changed, and the script run that changed it is over (no "Running" indicator)
            page.wait_for_function(f"(old) => {{ const now = ({SIGNATURE})(); return now.length > 0 && now !== old "
                                   "&& !document.querySelector('[data-testid=\"stStatusWidget\"]'); }", arg=old, timeout=120_000)
            times.append(time.perf_counter() - t0)
            page.wait_for_timeout(800)
        out.update(slider_move_s=[round(t, 3) for t in times], slider_move_median_s=round(statistics.median(times), 3))
        print(json.dumps(out), flush=True)
        if data_dir:
            # A seed no earlier run used: the Run trains everything (nothing comes from the cache).
            seed = int(time.time()) % 9000 + 1000
            out["ml100k_run_seed"] = seed
            page.goto(f"{url}/defense?dataset=%22ml-100k%22&seed={seed}")
            page.wait_for_selector('h1:has-text("Defense")')
            box = page.get_by_role("textbox", name="Data folder (real data sets)")
            box.fill(data_dir)
            box.press("Enter")
            run = page.get_by_role("button", name="Run attack and defenses")
            run.wait_for(state="visible")
            page.wait_for_timeout(1000)
            t0 = time.perf_counter()
            run.click()
            page.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
            page.wait_for_selector(".js-plotly-plot .bartext", timeout=1_800_000)
            out["ml100k_run_s"] = round(time.perf_counter() - t0, 1)
        browser.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("APT_DATA_DIR"), help="folder with MovieLens-100K (skipped without it)")
    ap.add_argument("--port", type=int, default=8615)
    ap.add_argument("--moves", type=int, default=6, help="slider moves to time")
    ap.add_argument("--ml-points", type=int, default=2, help="ML-100K grid points to build (the rest is estimated)")
    ap.add_argument("--cache", default=None, help="artifact cache folder (default: a fresh temporary one)")
    ap.add_argument("--skip-grid", action="store_true", help="no grid build here (the cache already holds it): browser timings only")
    ap.add_argument("--url", default=None, help="time an app already served there (started with the same APT_CACHE_DIR) instead of starting one")
    args = ap.parse_args()
    cache = args.cache or tempfile.mkdtemp(prefix="classroom-bench-")
    os.environ.update(APT_CACHE_DIR=cache, OMP_WAIT_POLICY="PASSIVE")
    os.environ.setdefault("APT_NUM_THREADS", "1")
    os.environ.setdefault("APT_HISTORY_DB", str(Path(cache) / "history.sqlite"))
    result: dict = {"cache": cache, "cpu_load_1min_at_start": round(os.getloadavg()[0], 1), "cpus": os.cpu_count()}
    if not args.skip_grid:
        result.update(build_grids(args.data_dir, args.ml_points))
    print(json.dumps(result), flush=True)
    proc = None if args.url else serve(args.port, dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        result.update(browser_timings(args.url or f"http://127.0.0.1:{args.port}", args.data_dir, args.moves))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    result["cpu_load_1min_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
