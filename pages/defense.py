"""Defense: train defenses on the poisoned data; the paper's Table 2/3 view and Fig. 1."""
from __future__ import annotations

import dataclasses

import streamlit as st

from apt_core.defenses import DEFENSES, defense_names
from apt_core.experiments.pipeline import Scenario
from apt_core.plots.explore import influence_ranking_figure, influence_rounds, influence_rounds_figure, influence_target_ranks
from apt_core.plots.results import RI_GLOSSARY, before_after_frame, method_bar_figure, reach_frame, reached_users_frame
from apt_core.stats import STARS_LEGEND
from apt_core.storage.history import run_and_record
from pages._shared.display import as_arrow, download, fmt_frame, per_result, results_views
from pages._shared.glossary import GLOSSARY
from pages._shared.grid_panel import grid_panel, is_live, live_spec, offer_grid
from pages._shared.history_glue import history_label
from pages._shared.page_guard import guard
from pages._shared.runs import artifact_cache, from_cache_only, last_shown, remember, run_cached, stale_container
from pages._shared.settings import presenter, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import attack_controls, param_controls

PAPER_NOTE = (
    "Paper (ML-100K, unpopular targets, 3% attack, 5% ERM users): attack HR@50 0.52-0.99, APT 0.0002-0.0019, "
    "AT 0.43-0.93 (Table 2). Our numbers come from the run above; compare, do not expect equality."
)


def run_defense(scenario: Scenario, progress) -> object:
    """The library's run-and-record, labelled with this page and its controls (the History page links back).

    A history that cannot be written is a warning (shown beside the result by ``run_cached``), never a lost result.
    """
    result, _run_id = run_and_record(scenario, progress, cache=artifact_cache(), label=history_label("defense"))
    return result


def body() -> None:
    st.title("Defense")
    st.caption("Each defense trains the victim model on the poisoned data; origin = the plain victim (MF by default) on clean data, attack = the plain victim on poisoned data.")
    cfg = settings()
    data = load_data(cfg["dataset"], cfg["data_dir"])
    live = is_live(cfg)
    if live:
        grid_panel(cfg)
    url_state(["def-defenses", "def-erm", "def-stats", "def-seeds"])
    base = attack_controls(data, prefix="def")
    if base is None:
        return
    names = [d for d in defense_names() if d != "none"]
    c = st.columns(4)
    default = [d for d in ("apt", "at") if d in names] or names[:1]
    chosen = c[0].multiselect("Defenses", names or ["none"], default=default or ["none"], key="def-defenses", help="; ".join(f"{n}: {DEFENSES[n].summary}" for n in DEFENSES))
    # n* = round(share x real users) (docs/algorithms.md): the fake users do not enlarge the budget.
    erm_help = GLOSSARY["ERM user"] + f" Their number is round(share x {data.n_users} real users), e.g. 5% = {round(0.05 * data.n_users)}."
    if live:
        shares = list(live_spec().erm_fractions)
        if st.session_state.get("def-erm") not in shares:
            st.session_state.pop("def-erm", None)
        erm = c[1].select_slider("ERM users (APT), share of real users", shares, value=0.05 if 0.05 in shares else shares[0],
                                 format_func=lambda v: f"{v:.0%}", key="def-erm", help=erm_help)
    else:
        erm = c[1].slider("ERM users (APT), share of real users", 0.0, 0.20, 0.05, 0.01, key="def-erm", help=erm_help)
    stats = c[2].radio("ERM item statistics", ["observed", "clean", "trusted"], key="def-stats",
                       format_func=lambda s: {"observed": "observed (honest)", "clean": "clean (oracle)", "trusted": "trusted (honest, detector-filtered)"}[s],
                       help="observed: what an honest defender sees (the poisoned data). clean: " + GLOSSARY["oracle statistics"]
                       + " trusted: observed, without the users the cogroup shilling detector flags (honest).")
    if presenter():
        seeds = 1
    else:
        seeds = c[3].number_input("Seeds (repetitions)", 1, 10, 1, key="def-seeds", help="Repeat with seeds s, s+1, ...: mean ± sd and a significance test.")
    if not names:
        st.info("Only plain MF ('none') is registered so far: the table compares origin and attack.")
    defense_params = param_controls(list(chosen), "def", "Advanced: defense parameters")
    if defense_params is None:
        return
    scenario = dataclasses.replace(base, defenses=tuple(chosen) or ("none",), erm_fraction=float(erm), erm_stats=stats, seeds=int(seeds),
                                   params={**dict(base.params), **defense_params})
    result = from_cache_only("defense", scenario, data)
    if result is None:
        result = run_cached("defense", scenario, run_defense, label="Run attack and defenses", auto=live)
    if not live:
        done = result or (last_shown("defense") or (None, None))[1]
        fits = 2 + len(scenario.defenses)
        offer_grid(cfg, (done.wall_seconds / fits) if done is not None and getattr(done, "wall_seconds", None) else None)
    if result is None:
        previous = last_shown("defense")
        if previous is not None:
            st.info("Press the button to compute these settings. Until then the previous result stays below, greyed out.")
            with stale_container():
                show_result(previous[1], previous[0])
        else:
            st.info("Press the button to run clean MF, the attack and each chosen defense (seed by seed).")
        return
    previous = last_shown("defense")
    if previous is not None and previous[0] != scenario and not live:
        with st.expander("Before / after: the previous settings against these", expanded=True):
            st.dataframe(before_after_frame(previous[1], result), hide_index=True, width="stretch")
    remember("defense", scenario, result)
    show_result(result, scenario)


def show_result(result, scenario: Scenario) -> None:
    k = scenario.k
    table, shown, fig = results_views(result)
    reach = per_result(result, "reach", lambda: reach_frame(result))
    left, right = st.columns(2)
    left.plotly_chart(per_result(result, "bar-hr", lambda: method_bar_figure(reach, "target_hr", k=k)), width="stretch", theme=None, key="def-bar-hr")
    right.plotly_chart(per_result(result, "bar-reach", lambda: method_bar_figure(reach, "share_reached", k=k)), width="stretch", theme=None,
                       key="def-bar-reach")
    sd = f"mean ± sd over {scenario.seeds} seeds" if scenario.seeds > 1 else "one seed"
    st.subheader(f"Target HR@{k} and test HR@{k} ({sd})")
    def table_view():
        view = shown
        if scenario.seeds == 1:  # a spread over one seed is not a spread
            view = view.assign(**{"target HR": [v.split(" ± ")[0] for v in view["target HR"]], "test HR": [v.split(" ± ")[0] for v in view["test HR"]]})
        return as_arrow(view.rename(columns={"phase": "method"}))

    st.dataframe(per_result(result, "table", table_view), hide_index=True, width="stretch", key="def-table")
    st.caption("HR@K: " + GLOSSARY["HR@K"] + " RI: " + RI_GLOSSARY + " Stars on APT against the best baseline: " + STARS_LEGEND + ". " + PAPER_NOTE)
    download(fmt_frame(table), "defense_results.csv")
    st.subheader("Who did the attack reach?")
    users = per_result(result, "reached-users", lambda: reached_users_frame(result))
    st.caption(f"{len(users)} real users have a target item in their top-{k} under the attack; for each method, the targets still in their list.")
    st.dataframe(per_result(result, "reached-users-arrow", lambda: as_arrow(users)), hide_index=True, width="stretch", height=280)
    with st.expander("The paper's view: rank shift of the targets (Fig. 1)"):
        st.plotly_chart(fig, width="stretch", theme=None)

    if "apt" in scenario.defenses:
        st.subheader("APT: influence ranking")
        diag = result.phase("apt").diagnostics[0] if result.phase("apt").diagnostics else {}
        rounds = influence_rounds(diag)
        if not rounds:
            st.info("This run kept no influence values to show.")
            return
        titles = per_result(result, "titles", lambda: [result.data.title(i) for i in range(result.data.n_items)])
        chosen_round = st.slider("Regeneration round", 1, len(rounds), len(rounds), key="def-round") if len(rounds) > 1 else 1
        infl = rounds[chosen_round - 1]
        st.plotly_chart(per_result(result, f"influence-{chosen_round}", lambda: influence_ranking_figure(
            infl, result.targets, titles, title=f"APT influence ranking, round {chosen_round} (most negative first; targets marked)")),
            width="stretch", theme=None)
        ranks = per_result(result, "influence-ranks", lambda: influence_target_ranks(rounds, result.targets))
        st.plotly_chart(per_result(result, "influence-rounds", lambda: influence_rounds_figure(
            ranks, [titles[int(t)] for t in result.targets], result.data.n_items)), width="stretch", theme=None)
        st.caption(
            "What to look for: after one or two regenerations the attacked targets should be among the ~50 most negative "
            "entries (ERM users then rate them, which dilutes the attack). Ranks in round "
            f"{chosen_round}: " + ", ".join(f"{titles[int(t)]}: {r + 1}" for t, r in zip(result.targets, ranks[chosen_round - 1]))
        )


guard(body)
