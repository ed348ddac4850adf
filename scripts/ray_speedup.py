"""Speed-up of N Ray workers over 1, measured in one run: the same units from an empty cache each time.

    python scripts/ray_speedup.py [--dataset ml-100k] [--data-dir DIR] [--workers 1 2] [--epochs 25]
                                  [--attacks average,random] [--defenses at] [--targets unpopular]

For each worker count it starts a local Ray instance with that many CPUs, warms every worker
up (imports torch and apt_core: a fixed cost a long run pays once), then times
:func:`apt_core.experiments.engine.fill_cache` on the scenarios (one per attack) into a fresh temporary
cache, and stops Ray.  Prints the wall time of each and the ratio to the 1-worker time.
Only the work is timed, not the Ray start.  On a machine that other programs also load, the
ratio is what this machine gave at that moment; run it twice to see the spread.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from apt_core.storage.cache import ArtifactCache
from apt_core.experiments.engine import EngineConfig, data_loader, fill_cache, plan_units, ray_session
from apt_core.experiments.pipeline import Scenario


def _warm(ray, n: int) -> None:
    @ray.remote(num_cpus=1)
    def warm() -> int:
        import os

        import apt_core.experiments.pipeline  # noqa: F401 -- the imports every unit pays once per worker
        time.sleep(1.0)  # hold the CPU so the n tasks land on n different workers
        return os.getpid()

    pids = set(ray.get([warm.remote() for _ in range(n)]))
    print(f"  warmed {len(pids)} worker process(es)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--attacks", default="average,random")
    p.add_argument("--defenses", default="at")
    p.add_argument("--targets", default="unpopular")
    args = p.parse_args(argv)
    scenarios = [(Scenario(dataset=args.dataset, data_dir=args.data_dir, attack=a, targets=args.targets,
                           defenses=tuple(args.defenses.split(",")), epochs=args.epochs, device="cpu"), a)
                 for a in args.attacks.split(",")]
    loader = data_loader()
    data = loader(scenarios[0][0])
    units = plan_units(scenarios)
    print(f"{data.name}: {data.n_ratings} ratings; {len(units)} units ({', '.join(u.unit for u in units)})")
    times = {}
    for n in args.workers:
        cfg = EngineConfig(engine="ray", jobs=n)
        with ray_session(cfg) as ray:
            _warm(ray, n)
            with tempfile.TemporaryDirectory(prefix="apt-speedup-") as tmp:
                t0 = time.perf_counter()
                results = fill_cache(scenarios, ArtifactCache(tmp), cfg, loader)
                times[n] = time.perf_counter() - t0
        busy = sum(r["seconds"] for r in results)
        cpu = sum(r["cpu_seconds"] for r in results)
        print(f"  {n} worker(s): {times[n]:.1f} s wall; units {busy:.1f} s busy, {cpu:.1f} s CPU in total")
    base = times[args.workers[0]]
    for n in args.workers[1:]:
        print(f"speed-up of {n} workers over {args.workers[0]}: {base / times[n]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
