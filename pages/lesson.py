"""Lesson: a guided story in seven steps, one click each, with "predict first, then reveal" questions."""
from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from apt_core.experiments.demo import top_k_items
from apt_core.experiments.pipeline import Scenario, run_scenario
from apt_core.plots.lesson import (HOLDS_RI, defense_outcome, detector_tries_sentence, erm_choice, erm_choice_figure, erm_choice_sentence,
                                   profile_frame, reached_student, share_reached, top_k_list, user_profile)
from apt_core.plots.results import RI_GLOSSARY, method_bar_figure, reach_frame, ri_phrase
from pages._shared.glossary import GLOSSARY
from pages._shared.page_guard import guard
from pages._shared.runs import artifact_cache, from_cache_only, run_cached
from pages._shared.settings import chart_scale, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import small_data_controls

STEPS = [
    "1. Pick a student",
    "2. The attacker injects fake users",
    "3. Who got the target?",
    "4. Add the defense (APT)",
    "5. The result",
    "6. Its limits",
    "7. The attacker learns the detector",
]
TOP = 10  # the list a student reads; the metrics use K = 50 as in the paper


def lesson_scenario(cfg: dict) -> Scenario:
    """Average attack, 3% fake users, 5 unpopular targets; APT with honest (observed) statistics."""
    return Scenario(dataset=cfg["dataset"], data_dir=cfg["data_dir"], attack="average", attack_size=0.03, targets="unpopular",
                    defenses=("apt",), erm_fraction=0.05, erm_stats="observed", seed=cfg["seed"], device=cfg["device"])


def _with_models(scenario: Scenario, progress):
    return run_scenario(scenario, progress, cache=artifact_cache(), keep_models=True)


def question(step: int, prompt: str, options: list[str], answer: int, explain: str) -> bool:
    """A predict-first question; returns whether the answer has been revealed."""
    st.markdown(f"**Predict first:** {prompt}")
    guess = st.radio("Your prediction", options, index=None, key=f"lesson-guess-{step}", label_visibility="collapsed")
    revealed = st.session_state.get(f"lesson-revealed-{step}", False)
    if not revealed:
        if st.button("Reveal", key=f"lesson-reveal-{step}", disabled=guess is None, help="choose a prediction first"):
            st.session_state[f"lesson-revealed-{step}"] = True
            st.rerun()
        return False
    verdict = "Right!" if guess == options[answer] else f"Not quite: the answer is \"{options[answer]}\"."
    st.success(f"{verdict} {explain}")
    return True


def student_list_question(step: int, listing, prompt: str, if_shown: str, if_none: str) -> None:
    """Ask whether the student's top list holds a target, then reveal the list; ``if_shown`` has ``{n}``."""
    n_shown = int((listing["target item?"] == "yes").sum())
    if question(step, prompt, ["yes", "no"], 0 if n_shown else 1, if_shown.format(n=n_shown) if n_shown else if_none):
        st.dataframe(listing, hide_index=True, width="stretch")


def body() -> None:
    st.title("Lesson")
    st.caption("A guided story: one student's recommendations, an attack, a defense, and what the defense cannot do. One click per step.")
    url_state(["lesson-step", "lesson-chosen"])
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    scenario = small_data_controls(lesson_scenario(cfg), data, "lesson")
    oracle = dataclasses.replace(scenario, erm_stats="clean")
    result = from_cache_only("lesson", scenario, data, keep_models=True)
    if result is None:
        result = run_cached("lesson", scenario, _with_models, label="Prepare the lesson", auto=True)
    if result is None:
        return
    step = int(st.session_state.get("lesson-step", 0))
    step = max(0, min(len(STEPS) - 1, step))
    st.progress((step + 1) / len(STEPS), text=STEPS[step])
    navigation(step, "top")  # always on the first screen; again under the step

    k = scenario.k
    split, targets, fake = result.split, result.targets, result.fake_profiles[0]
    models = result.models[0]
    titles = [result.data.title(i) for i in range(result.data.n_items)]
    counts = split.train.item_counts
    n_real = split.train.n_real_users
    user_ids = result.data.user_ids  # what the page shows: the data set's own ids
    target_names = ", ".join(titles[int(t)] for t in targets)
    ev = {p.phase: p.evaluations[0] for p in result.phases}
    # Not a widget key (it must survive the steps). By default a student the attack reaches, computed from
    # this run: with user 0 steps 3 and 5 showed nothing.
    user = int(st.session_state.get("lesson-chosen", reached_student(ev["origin"].target_ranks, ev["attack"].target_ranks, TOP)))
    user = max(0, min(n_real - 1, user))

    if step == 0:
        st.subheader(STEPS[0])
        st.markdown(f"The recommender learned from {n_real} real users' ratings. Choose one of them: this is *your* student.")
        user = int(st.number_input("Student (user number)", 0, n_real - 1, user, key="lesson-user"))
        st.session_state["lesson-chosen"] = user
        st.caption(f"Student number {user} is user {user_ids[user]} in the data set's own ids.")
        st.markdown(f"**What the recommender shows this student (top {TOP}) on clean data:**")
        st.dataframe(top_k_list(titles, top_k_items(models["origin"], split, user, TOP), targets), hide_index=True, width="stretch")
        items, ratings = user_profile(split.train.users, split.train.items, split.train.ratings, user)
        with st.expander("What this student rated (their highest ratings)"):
            st.dataframe(profile_frame(items, ratings, titles, targets, counts, limit=10), hide_index=True, width="stretch")
    elif step == 1:
        st.subheader(STEPS[1])
        st.markdown(
            f"An attacker wants to push {len(targets)} little-known **target items** ({target_names}). "
            f"They create **{fake.n_fake_users} fake users** ({fake.n_fake_users / max(1, n_real):.0%} of the real users). Each fake user gives every target "
            "the top rating and rates some ordinary items with their average score, so that it looks like a real user."
        )
        st.caption("Target item: " + GLOSSARY["target item"])
        pick = st.slider("Look at fake user number", 1, fake.n_fake_users, 1, key="lesson-fake")
        items, ratings = user_profile(fake.users, fake.items, fake.ratings, pick - 1)
        st.dataframe(profile_frame(items, ratings, titles, targets, counts), hide_index=True, width="stretch")
        question(1, f"How many of the {n_real} real users will find at least one target in their top {k} after the attack?",
                 ["almost none (under 5%)", "some (5-30%)", "many (over 30%)"],
                 int(np.digitize(share_reached(ev["attack"].target_ranks, k), [0.05, 0.30])),
                 f"Before the attack {share_reached(ev['origin'].target_ranks, k):.0%} did; after it "
                 f"{share_reached(ev['attack'].target_ranks, k):.0%} do. Next step: who they are.")
    elif step == 2:
        st.subheader(STEPS[2])
        reached = share_reached(ev["attack"].target_ranks, k)
        st.metric(f"real users with a target in their top {k}", f"{reached:.0%}",
                  f"{reached - share_reached(ev['origin'].target_ranks, k):+.0%} from the attack", help=GLOSSARY["HR@K"],
                  delta_color="inverse")  # more users reached is the attack's success: red, not a green "good"
        left, right = st.columns(2)
        left.markdown(f"**Your student (user {user_ids[user]}), before the attack**")
        left.dataframe(top_k_list(titles, top_k_items(models["origin"], split, user, TOP), targets), hide_index=True, width="stretch")
        right.markdown("**... and after the attack**")
        with right:
            student_list_question(2, top_k_list(titles, top_k_items(models["attack"], split, user, TOP), targets),
                                  f"Will your student see a target in their top {TOP} after the attack?",
                                  f"{{n}} of the targets are in their top {TOP} now.", f"No target reached their top {TOP}.")
        hit = np.flatnonzero(((ev["attack"].target_ranks >= 0) & (ev["attack"].target_ranks < TOP)).any(axis=1))
        st.caption(f"{len(hit)} real users now see a target in their top {TOP}" + (f", e.g. users {', '.join(map(str, user_ids[hit[:8]]))}." if len(hit) else "."))
    elif step == 3:
        st.subheader(STEPS[3])
        diag = result.phase("apt").diagnostics[0] if result.phase("apt").diagnostics else {}
        last = diag.get("last_erm") or {}
        rounds = [r for r in diag.get("rounds", []) if isinstance(r, dict) and r.get("influence") is not None]
        n_erm = int(diag.get("n_erm_users", 0))
        st.markdown(
            f"**APT** (adversarial poisoning training) fights fire with fire: while it trains it adds **{n_erm} users of its own** "
            "(*ERM users*), regenerated every few epochs. Each rates items of negative influence $I_j < 0$ on the model's "
            "empirical risk, drawn with probability $\\propto e^{-t I_j}$, around the item's mean plus a lift. APT does not know "
            "the targets: it chooses by influence alone."
        )
        if len(last.get("users", [])) and rounds:
            # the last round's influence is the one the last ERM users (last_erm) were drawn from
            choice = erm_choice(rounds[-1]["influence"], last["users"], last["items"], n_erm)
            left, right = st.columns([3, 2])
            left.plotly_chart(erm_choice_figure(choice, targets, titles, font_scale=chart_scale(), height=360), width="stretch", theme=None)
            right.markdown(
                "**Why that defends (the paper's argument):** a rating with $I_j < 0$ makes the model fit the data better, so ERM "
                "users are poisoning of the defender's own; in the paper's Gaussian model $n^*$ of them raise the number of fake "
                "users the model tolerates by $n^* \\tau / (d \\gamma)$ (Theorem 4.5, Theory page).")
            right.markdown(erm_choice_sentence(choice, targets))
            st.markdown(_erm_on_targets(last, split.train, fake, targets, scenario.erm_stats))
            with st.expander("Look at one ERM user's ratings"):
                pick = st.slider("Look at ERM user number", 1, n_erm, 1, key="lesson-erm")
                items, ratings = user_profile(last["users"], last["items"], last["ratings"], pick - 1)
                st.dataframe(profile_frame(items, ratings, titles, targets, counts), hide_index=True, width="stretch")
                rated = np.isin(last["items"], targets)
                st.caption(f"Across all {n_erm} ERM users, {int(rated.sum())} ratings fall on the target items "
                           f"(mean {float(np.mean(last['ratings'][rated])) if rated.any() else float('nan'):.2f}).")
        st.caption("ERM user: " + GLOSSARY["ERM user"])
        question(3, "Will APT bring the targets back to where they were before the attack?",
                 ["yes, fully", "partly", "no, not at all"],
                 2 - int(np.digitize(np.nan_to_num(_ri(result), nan=0.0), [0.2, 0.9])),
                 f"APT's robustness improvement here: {ri_phrase({r['phase']: r for r in result.rows()}['apt'], explain=True)}. "
                 "The next step shows the numbers.")
    elif step == 4:
        st.subheader(STEPS[4])
        reach = reach_frame(result)
        scale = chart_scale()
        left, right = st.columns(2)
        left.plotly_chart(method_bar_figure(reach, "target_hr", k=k, font_scale=scale, height=400), width="stretch", theme=None)
        right.plotly_chart(method_bar_figure(reach, "share_reached", k=k, font_scale=scale, height=400), width="stretch", theme=None)
        left.markdown(f"**Your student (user {user_ids[user]}) under APT**")
        with left:
            student_list_question(4, top_k_list(titles, top_k_items(models["apt"], split, user, TOP), targets),
                                  f"Under APT, will your student still see a target in their top {TOP}?",
                                  f"{{n}} target(s) still in their top {TOP}.", f"No target in their top {TOP} under APT.")
        right.caption("HR@K: " + GLOSSARY["HR@K"] + " RI: " + RI_GLOSSARY)
    elif step == 5:
        st.subheader(STEPS[5])
        st.markdown(
            "So far APT took its item statistics from the data it sees, poisoned included: that is all a real defender has. "
            "The authors' released code uses **oracle statistics** instead, computed on the clean data before the attack "
            "(the paper's text says the training data's, which may be contaminated). "
            "How much of APT's effect depends on that?"
        )
        st.caption("Oracle statistics: " + GLOSSARY["oracle statistics"])
        other = from_cache_only("lesson-oracle", oracle, data)
        if other is None:
            other = run_cached("lesson-oracle", oracle, lambda sc, pr: run_scenario(sc, pr, cache=artifact_cache()),
                               label="Run APT with oracle statistics", auto=True)
        if other is not None:
            honest, cheat = float(np.mean(result.phase("apt").target_hr)), float(np.mean(other.phase("apt").target_hr))
            # "about the same": within a tenth of the attack's lift over the clean data
            lift = abs(float(np.mean(result.phase("attack").target_hr)) - float(np.mean(result.phase("origin").target_hr)))
            answer = 1 if abs(honest - cheat) <= 0.1 * max(lift, 1e-9) else (0 if cheat < honest else 2)
            if question(5, "With oracle statistics, will APT leave the targets' hit ratio lower than honest APT does?",
                        ["yes, lower (the oracle helps)", "about the same", "no, higher"], answer,
                        f"Honest APT: {honest:.3f}; with oracle statistics: {cheat:.3f}."):
                c = st.columns(4)
                c[0].metric(f"clean data: target HR@{k}", f"{float(np.mean(result.phase('origin').target_hr)):.3f}")
                c[1].metric("attack, no defense", f"{float(np.mean(result.phase('attack').target_hr)):.3f}")
                c[2].metric("APT, observed statistics (honest)", f"{honest:.3f}")
                c[3].metric("APT, oracle statistics", f"{cheat:.3f}")
                gap = honest - cheat
                st.markdown(
                    f"With oracle statistics APT reaches {cheat:.3f}, with honest ones {honest:.3f}: "
                    + (f"the oracle flatters APT by {gap:.3f}. " if gap > 0 else "here the oracle does not help. ")
                    + "Limits to discuss: the oracle numbers need data a defender never has (the authors' released code computes them "
                    "on the clean file; the paper's text on the training data, which may be contaminated); one seed on a small sample "
                    "is noisy (repeat with other seeds on the Defense page); " + _other_attacks_sentence(scenario, data, k)
                    + " Next: an attacker who knows the defender's detector."
                )
    else:
        st.subheader(STEPS[6])
        arms_race_step(scenario, data, result, k)

    st.divider()
    navigation(step, "bottom")


def navigation(step: int, where: str) -> None:
    """Back / Next step buttons; drawn at the top of the step and under it, so that one is always on screen."""
    suffix = "" if where == "bottom" else "-top"
    c = st.columns([1, 1, 4])
    if c[0].button("← Back", key=f"lesson-back{suffix}", disabled=step == 0):
        st.session_state["lesson-step"] = step - 1
        st.rerun()
    if c[1].button("Next step →", key=f"lesson-next{suffix}", type="primary", disabled=step == len(STEPS) - 1):
        st.session_state["lesson-step"] = step + 1
        st.rerun()


def arms_race_step(scenario: Scenario, data, result, k: int) -> None:
    """Step 7: the same data, targets and seed, attacked by the registered ``adaptive`` attack (``subset``
    variants tested against the product's detector before they are injected) against ``remove-cogroup``
    and ``apt-robust``; every number from that run."""
    n_targets = len(result.targets)
    st.markdown(
        f"So far every fake user gave all {n_targets} targets the top rating, which a shilling detector can see: *cogroup* "
        "flags accounts that top-rate the same pairs of items far more often than chance, and the simplest defense "
        "(*remove-cogroup*) trains without whoever it flags. But a detector's code can be read. This attacker tests its fake "
        "users against the detector before injecting them: same number of fake users, but each rates only some of the "
        "targets, and it keeps the strongest version the detector flags none of. Same data, targets and seed as before."
    )
    arms = dataclasses.replace(scenario, attack="adaptive", defenses=("remove-cogroup", "apt-robust"))
    race = from_cache_only("lesson-arms", arms, data)
    if race is None:
        race = run_cached("lesson-arms", arms, lambda sc, pr: run_scenario(sc, pr, cache=artifact_cache()),
                          label="Run the attacker who knows the detector", auto=True)
    if race is None:
        return
    ad = race.phase("attack").diagnostics[0] if race.phase("attack").diagnostics else {}
    n_fake = race.fake_profiles[0].n_fake_users if race.fake_profiles and race.fake_profiles[0] is not None else 0
    hr = {p: float(np.mean(race.phase(p).target_hr)) for p in ("origin", "attack")}
    st.markdown(detector_tries_sentence(ad.get("tried", []), n_targets, n_fake, ad.get("detector", "cogroup"))
                + f" Its fake users lift the targets' HR@{k} from {hr['origin']:.3f} to {hr['attack']:.3f} "
                f"(the attack of step 2: {float(np.mean(result.phase('attack').target_hr)):.3f}).")
    if not ad.get("evaded", True):
        st.warning("Here every version was caught: the attacker keeps the one with the fewest flagged fake users.")
    remove, robust = defense_outcome(race, "remove-cogroup"), defense_outcome(race, "apt-robust")
    rows = {r["phase"]: r for r in race.rows()}
    options = ["removing what the detector flags (remove-cogroup)", "APT-robust", "both", "neither"]
    answer = {(True, False): 0, (False, True): 1, (True, True): 2, (False, False): 3}[(remove.holds, robust.holds)]
    explain = (f"remove-cogroup flagged {remove.flagged_fake} fake and {remove.flagged_real} real users: target HR "
               f"{remove.target_hr:.3f}, {ri_phrase(rows['remove-cogroup'])}. APT-robust's detector flagged {robust.flagged_fake} "
               f"fake and {robust.flagged_real} real users and it dropped {robust.dropped}: target HR {robust.target_hr:.3f}, "
               f"{ri_phrase(rows['apt-robust'], explain=True)}.")
    if question(6, f"Which defense still protects the targets (undoes at least {HOLDS_RI:.0%} of the attack's lift, RI ≥ {HOLDS_RI})?",
                options, answer, explain):
        left, right = st.columns([3, 2])
        left.plotly_chart(method_bar_figure(reach_frame(race), "target_hr", k=k, font_scale=chart_scale(), height=380),
                          width="stretch", theme=None)
        for name, out in (("remove-cogroup", remove), ("APT-robust", robust)):
            right.metric(f"{name}: target HR@{k}", f"{out.target_hr:.3f}", help=f"{out.flagged_fake} fake, {out.flagged_real} real users flagged")
        right.caption(f"RI: {RI_GLOSSARY}")
        held = [n for n, o in (("remove-cogroup", remove), ("APT-robust", robust)) if o.holds]
        st.markdown(
            ("What held here: " + " and ".join(held) + ". " if held else "Neither defense held here. ")
            + "APT-robust does not wait for the flags: its ERM users rate each item around the lower of the item's mean and the "
            "global mean (an item with a suspicious share of top ratings around its ratings below the top), a centre that fake "
            "top ratings cannot raise. The next move is the attacker's again: the subset attack's `shade` and clique-framing "
            "options aim at APT-robust's own rules (try them on the Attack and Detection pages)."
        )


def _erm_on_targets(last: dict, train, fake, targets, erm_stats: str) -> str:
    """What ERM users did on the targets, in words computed from this run (issue 26: no fixed claim)."""
    on_target = np.isin(last["items"], targets)
    real = np.isin(train.items, targets) & (train.users < train.n_real_users)
    fake_on = np.isin(fake.items, targets)
    if not on_target.any():
        return "Here no ERM user rated a target: APT's effect (next step) cannot come from rating them down."
    erm_mean = float(np.mean(last["ratings"][on_target]))
    real_mean = float(np.mean(train.ratings[real])) if real.any() else float("nan")
    seen = np.concatenate([train.ratings[real], fake.ratings[fake_on]])
    seen_mean = float(np.mean(seen)) if len(seen) else float("nan")
    reinforce = erm_mean > real_mean
    verdict = ("above the real users' own mean: on the targets they **reinforce** the attack, so APT's effect (next step) does "
               "not come from rating the targets down" if reinforce else
               "at or below the real users' own mean: on the targets they pull against the attack")
    start = {"observed": f"the poisoned data's item mean ({seen_mean:.2f} over the targets, the fake users' top ratings included)",
             "clean": f"the clean data's item mean ({real_mean:.2f} over the targets)"}.get(erm_stats, f"the {erm_stats} statistics' item mean")
    return (f"They rate the targets {erm_mean:.2f} on average, starting from {start} plus the lift; real users alone rate them "
            f"{real_mean:.2f}. That is {verdict}.")


def _other_attacks_sentence(scenario, data, k: int) -> str:
    """Which attack lifts these targets most on this data, from the cache only (never a fixed claim)."""
    found = {}
    for attack in ("average", "random", "bandwagon", "pga", "tna"):
        variant = dataclasses.replace(scenario, attack=attack, defenses=("none",))
        try:
            other = from_cache_only("lesson-attacks", variant, data)
        except Exception:  # noqa: BLE001 -- a variant this data cannot run is simply not compared
            other = None
        if other is not None:
            found[attack] = float(np.mean(other.phase("attack").target_hr))
    if len(found) < 2:
        return (f"the attack here is the {scenario.attack} attack; which attack is strongest depends on the data and the targets: "
                "compare them on the Attack page.")
    ranked = sorted(found.items(), key=lambda kv: -kv[1])
    listing = ", ".join(f"{a} {v:.3f}" for a, v in ranked)
    return (f"on this data, these targets and {scenario.attack_size:.0%} fake users the attacks reach target HR@{k} {listing} "
            f"(from the cache): the strongest here is {ranked[0][0]}.")


def _ri(result) -> float:
    rows = {r["phase"]: r for r in result.rows()}
    ri = rows["apt"]["ri"]
    return float("nan") if ri is None else float(ri)


guard(body)
