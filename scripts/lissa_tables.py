"""APT solver / preset tables for issue 16 and issue 9 (the numbers in the README).

Runs the library's scenario pipeline (artifact cache included) once per (attack, APT
variant): a variant is a set of APT keyword arguments (solver, preset, ...), passed to the
defense in place of the scenario-level ones.  Prints one JSON object per line: data set,
targets, attack, variant, item statistics, and origin / attack / APT rows (mean, per seed).

    PYTHONPATH=. python scripts/lissa_tables.py --dataset DATA/reference-splits/filmtrust \
        --targets 1576,926,942,848,107 --attacks random,average,aush,pga,tna --seeds 3 \
        --erm-stats clean --variants '{"paper": {}}'

(DATA: a folder holding the APT authors' split files, NAME.train.rating / NAME.test.rating.)
Keep the lines: ``python scripts/seed_tables.py OUT.jsonl --compare ROW_A ROW_B`` makes the docs'
tables from them (mean ± sd over the seeds, per-seed values, paired tests between variants).
"""
from __future__ import annotations

import argparse
import json
import sys

from apt_core.experiments import pipeline as experiment
from apt_core.storage.cache import ArtifactCache
from apt_core.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--targets", required=True, help="comma list of item ids")
    ap.add_argument("--attacks", default="random,average,aush,pga,tna")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--erm-stats", default="clean")
    ap.add_argument("--variants", default='{"paper": {}}', help="JSON: name -> APT keyword arguments")
    args = ap.parse_args()
    variants = json.loads(args.variants)
    targets = tuple(int(t) for t in args.targets.split(","))
    data = load_dataset(args.dataset, args.data_dir)
    cache = ArtifactCache()
    for attack in args.attacks.split(","):
        for name, params in variants.items():
            # the variant's APT keyword arguments are declared parameters: Scenario.params carries them
            sc = experiment.Scenario(dataset=args.dataset, data_dir=args.data_dir, attack=attack, targets=targets, defenses=("apt",),
                                     erm_stats=args.erm_stats, seeds=args.seeds, device="cpu",
                                     params={f"apt.{k}": v for k, v in params.items()})
            res = experiment.run_scenario(sc, cache=cache, data=data)
            rows = {}
            for ph in res.phases:
                r = ph.row(res.phases[0], res.phases[1])
                rows[ph.phase] = {"target_hr": r["target_hr"], "test_hr": r["test_hr"], "seconds": r["seconds"],
                                  "target_hr_seeds": ph.target_hr, "test_hr_seeds": ph.test_hr, "seconds_seeds": ph.seconds}
            diag = res.phases[-1].diagnostics[0] if res.phases[-1].diagnostics else {}
            print(json.dumps({"dataset": data.name, "targets": list(targets), "attack": attack, "variant": name,
                              "params": params, "erm_stats": args.erm_stats, "seeds": args.seeds,
                              "n_erm_users": diag.get("n_erm_users"), "settings": diag.get("settings"), "rows": rows}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
