"""Issue 16 acceptance on FilmTrust (the authors' split, their unpopular targets, clean item
statistics as the authors ran APT).  The default run checks PGA on one seed (a few seconds);
the slow one runs every attack on three seeds.  The thresholds are the issue's and the
paper's: test HR >= 0.83, at least the paper's headline cut of 88% of the attack's lift
(RI), and for an attack inside the paper's FilmTrust range (0.03-0.67) APT target HR@50 <=
0.02 (paper 0.004-0.021 / 0.833-0.839)."""
from __future__ import annotations

import numpy as np
import pytest

from apt_core.attacks import make_attack
from apt_core.data import leave_one_out, load_dataset
from apt_core.data.paper_targets import paper_targets
from apt_core.data.split import attack_budget
from apt_core.defenses import DefenseContext, make_defense
from apt_core.evaluation.metrics import evaluate
from apt_core.models.mf import fit_mf


@pytest.fixture(scope="module")
def filmtrust(data_dir):
    prefix = data_dir / "reference-splits" / "filmtrust"
    if not prefix.with_name("filmtrust.train.rating").is_file():
        pytest.skip("the authors' FilmTrust split is not available")
    data = load_dataset(str(prefix))
    split = leave_one_out(data, 0)
    return data, split, paper_targets(data, split, "paper")


def _run(filmtrust, attack: str, seed: int, **apt_params):
    data, split, targets = filmtrust
    b = attack_budget(split.train, 0.03)
    fake = make_attack(attack).generate(split.train, targets, b.n_fake_users, b.n_filler, seed, "cpu")
    poisoned = fake.inject(split.train)
    attacked = evaluate(fit_mf(poisoned, random_state=seed), split, targets, 50)
    apt = make_defense("apt", erm_stats="clean", **apt_params)
    res = apt.fit(poisoned, DefenseContext(random_state=seed, dataset=data.name, clean_train=split.train))
    return attacked, evaluate(res.model, split, targets, 50), res.diagnostics


def test_apt_paper_preset_stops_pga_on_filmtrust(filmtrust):
    attacked, defended, diag = _run(filmtrust, "pga", 0)
    assert diag["preset"] == "paper" and diag["settings"]["t_pre"] == 4 and diag["n_erm_users"] == 50
    assert attacked.target_hr >= 0.03
    # origin is 0 on these targets, so RI = 1 - APT / attack: at least the paper's 88%
    assert 1 - defended.target_hr / attacked.target_hr >= 0.88
    if attacked.target_hr <= 0.67:  # the paper's FilmTrust range: the floor applies
        assert defended.target_hr <= 0.02
    assert defended.test_hr >= 0.83


def _three_seeds(filmtrust, attack: str) -> tuple[float, float, float]:
    runs = [_run(filmtrust, attack, seed) for seed in range(3)]
    return (float(np.mean([r[0].target_hr for r in runs])), float(np.mean([r[1].target_hr for r in runs])),
            float(np.mean([r[1].test_hr for r in runs])))


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["random", "average", "pga", "tna"])
def test_apt_paper_preset_on_every_attack_on_filmtrust(filmtrust, attack):
    a, d, t = _three_seeds(filmtrust, attack)
    assert t >= 0.83, (a, d, t)
    if a >= 0.03:
        # origin is 0 on these targets, so RI = 1 - d / a: the paper's headline cut of 88%
        assert 1 - d / a >= 0.88, (a, d, t)
        if a <= 0.67:  # inside the paper's FilmTrust range: the floor
            assert d <= 0.02, (a, d, t)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="AUSH (0.99 here, popular fillers) keeps 0.27 after APT: RI 0.72")
def test_apt_paper_preset_on_aush_on_filmtrust(filmtrust):
    a, d, t = _three_seeds(filmtrust, "aush")
    assert t >= 0.83 and 1 - d / a >= 0.88, (a, d, t)
