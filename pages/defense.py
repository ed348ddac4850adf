"""Defense: train defenses on the poisoned data; the paper's Table 2/3 view and Fig. 1."""
from __future__ import annotations

import dataclasses

import numpy as np
import streamlit as st

from apt_core.defenses import DEFENSES, defense_names
from apt_core.experiment import Scenario, run_scenario
from apt_core.plots.explore import influence_ranking_figure, influence_rounds_figure
from apt_core.stats import STARS_LEGEND
from pages._common import artifact_cache, attack_controls, download, fmt_frame, guard, load_data, param_controls, results_views, run_cached, settings

PAPER_NOTE = (
    "Paper (ML-100K, unpopular targets, 3% attack, 5% ERM users): attack HR@50 0.52-0.99, APT 0.0002-0.0019, "
    "AT 0.43-0.93 (Table 2). Our numbers come from the run above; compare, do not expect equality."
)


def run_and_record(scenario: Scenario, progress) -> object:
    """Run the scenario, then keep it in the run history; a history failure is reported, not hidden.

    The result is returned (and shown) either way; the note is kept on the result so the
    page can say why the run is missing from the History page.
    """
    result = run_scenario(scenario, progress, cache=artifact_cache())
    try:
        from apt_core.store import RunStore

        RunStore().record(result, label="dashboard")
    except Exception as exc:  # noqa: BLE001 -- history is a convenience; the result is still shown
        result.history_note = f"This run was not recorded in the history: {exc}"
    return result


def influence_rounds(diagnostics: dict) -> list[np.ndarray]:
    """The influence vector of every regeneration round kept in APT's diagnostics."""
    out = []
    for r in diagnostics.get("rounds", []) or []:
        if isinstance(r, dict) and r.get("influence") is not None:
            arr = np.asarray(r["influence"], dtype=float).ravel()
            if arr.size:
                out.append(arr)
    return out


def body() -> None:
    st.title("Defense")
    st.caption("Each defense trains the victim model on the poisoned data; origin = the plain victim (MF by default) on clean data, attack = the plain victim on poisoned data.")
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    base = attack_controls(data, prefix="def")
    if base is None:
        return
    names = [d for d in defense_names() if d != "none"]
    c = st.columns(4)
    default = [d for d in ("apt", "at") if d in names] or names[:1]
    chosen = c[0].multiselect("Defenses", names or ["none"], default=default or ["none"], key="def-defenses", help="; ".join(f"{n}: {DEFENSES[n].summary}" for n in DEFENSES))
    erm = c[1].slider("ERM users (APT), share of real users", 0.0, 0.20, 0.05, 0.01, key="def-erm")
    stats = c[2].radio("ERM item statistics", ["observed", "clean", "trusted"], key="def-stats", help="observed: what an honest defender sees (poisoned data). clean: the authors' oracle (statistics before poisoning). trusted: observed, without the users the cogroup shilling detector flags (honest).")
    seeds = c[3].number_input("Seeds (repetitions)", 1, 10, 1, key="def-seeds")
    if not names:
        st.info("Only plain MF ('none') is registered so far: the table compares origin and attack.")
    defense_params = param_controls(list(chosen), "def", "Advanced: defense parameters")
    if defense_params is None:
        return
    scenario = dataclasses.replace(base, defenses=tuple(chosen) or ("none",), erm_fraction=float(erm), erm_stats=stats, seeds=int(seeds),
                                   params={**dict(base.params), **defense_params})
    result = run_cached("defense", scenario, run_and_record, label="Run attack and defenses")
    if result is None:
        st.info("Press the button to run clean MF, the attack and each chosen defense (seed by seed).")
        return
    if getattr(result, "history_note", None):
        st.warning(result.history_note)
    table, shown, fig = results_views(result)
    st.subheader(f"Target HR@{scenario.k} and test HR@{scenario.k} (mean ± sd over {scenario.seeds} seed(s))")
    st.dataframe(shown, hide_index=True, width="stretch", key="def-table")
    st.caption("RI = 1 − (HR_defense − HR_origin)/(HR_attack − HR_origin). Stars on APT against the best baseline: " + STARS_LEGEND + ". " + PAPER_NOTE)
    download(fmt_frame(table), "defense_results.csv")
    st.plotly_chart(fig, width="stretch")

    if "apt" in scenario.defenses:
        st.subheader("APT: influence ranking")
        diag = result.phase("apt").diagnostics[0] if result.phase("apt").diagnostics else {}
        rounds = influence_rounds(diag)
        if not rounds:
            st.info("APT's diagnostics carry no influence vectors for this run; keys present: " + (", ".join(sorted(diag)) or "none"))
            return
        titles = [result.data.title(i) for i in range(result.data.n_items)]
        chosen_round = st.slider("Regeneration round", 1, len(rounds), len(rounds), key="def-round") if len(rounds) > 1 else 1
        infl = rounds[chosen_round - 1]
        st.plotly_chart(influence_ranking_figure(infl, result.targets, titles, title=f"APT influence ranking, round {chosen_round} (most negative first; targets marked)"), width="stretch")
        ranks = [[int(np.argsort(np.argsort(v, kind="stable"), kind="stable")[t]) for t in result.targets] for v in rounds]
        st.plotly_chart(influence_rounds_figure(ranks, [titles[int(t)] for t in result.targets], result.data.n_items), width="stretch")
        st.caption(
            "What to look for: after one or two regenerations the attacked targets should be among the ~50 most negative "
            "entries (ERM users then rate them, which dilutes the attack). Ranks in round "
            f"{chosen_round}: " + ", ".join(f"{titles[int(t)]}: {r + 1}" for t, r in zip(result.targets, ranks[chosen_round - 1]))
        )


guard(body)
