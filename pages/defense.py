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
from apt_core.plots.results import popularity_note
from apt_core.reporting.paper import paper_note
from pages._shared.settings import chart_scale, presenter, settings
from pages._shared.uploads import load_data
from pages._shared.url_state import url_state
from pages._shared.widgets import ERM_SHARES, attack_controls, param_controls, share_slider



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
    # The defense's controls beside the figure they move (one screen at 1280x720, projector included).
    controls, chart = st.columns([1, 2], gap="medium")
    c = [controls] * 4
    default = [d for d in ("apt", "at") if d in names] or names[:1]
    chosen = c[0].multiselect("Defenses", names or ["none"], default=default or ["none"], key="def-defenses", help="; ".join(f"{n}: {DEFENSES[n].summary}" for n in DEFENSES))
    # n* = round(share x real users) (docs/algorithms.md): the fake users do not enlarge the budget.
    erm_help = GLOSSARY["ERM user"] + f" Their number is round(share x {data.n_users} real users), e.g. 5% = {round(0.05 * data.n_users)}."
    shares = list(live_spec().erm_fractions) if live else ERM_SHARES  # live: the precomputed grid's values
    erm = share_slider(c[1], "ERM users (APT), share of real users", shares, 0.05, "def-erm", erm_help)
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
    with controls:
        defense_params = param_controls(list(chosen), "def", "Advanced: defense parameters")
    if defense_params is None:
        return
    scenario = dataclasses.replace(base, defenses=tuple(chosen) or ("none",), erm_fraction=float(erm), erm_stats=stats, seeds=int(seeds),
                                   params={**dict(base.params), **defense_params})
    result = from_cache_only("defense", scenario, data)
    if result is None:
        with controls:  # its button and progress bar stay beside the figure
            result = run_cached("defense", scenario, run_defense, label="Run attack and defenses", auto=live)
    if not live:
        done = result or (last_shown("defense") or (None, None))[1]
        fits = 2 + len(scenario.defenses)
        offer_grid(cfg, (done.wall_seconds / fits) if done is not None and getattr(done, "wall_seconds", None) else None)
    if result is None:
        previous = last_shown("defense")
        if previous is not None:
            chart.info("Press the button to compute these settings. Until then the previous result stays here, greyed out.")
            with chart, stale_container():
                show_result(previous[1], previous[0])
        else:
            chart.info("Press the button to run clean MF, the attack and each chosen defense (seed by seed).")
        return
    previous = last_shown("defense")
    if previous is not None and previous[0] != scenario and not live:
        with st.expander("Before / after: the previous settings against these", expanded=True):
            st.dataframe(before_after_frame(previous[1], result), hide_index=True, width="stretch")
    remember("defense", scenario, result)
    show_result(result, scenario, chart)


def show_result(result, scenario: Scenario, chart=None) -> None:
    """The result; its main figure (target HR per method) into ``chart`` (the column beside the controls), the rest below."""
    k = scenario.k
    scale = chart_scale()
    height = 380 if presenter() else 420  # presenter mode's larger controls leave less room above the fold
    table, shown, fig = results_views(result, scale)
    reach = per_result(result, "reach", lambda: reach_frame(result))
    (chart or st).plotly_chart(per_result(result, f"bar-hr-{scale}", lambda: method_bar_figure(reach, "target_hr", k=k, font_scale=scale, height=height)),
                               width="stretch", theme=None, key="def-bar-hr")
    st.plotly_chart(per_result(result, f"bar-reach-{scale}", lambda: method_bar_figure(reach, "share_reached", k=k, font_scale=scale, height=height)),
                    width="stretch", theme=None, key="def-bar-reach")
    sd = f"mean ± sd over {scenario.seeds} seeds" if scenario.seeds > 1 else "one seed"
    st.subheader(f"Target HR@{k} and test HR@{k} ({sd})")
    def table_view():
        view = shown
        if scenario.seeds == 1:  # a spread over one seed is not a spread
            view = view.assign(**{"target HR": [v.split(" ± ")[0] for v in view["target HR"]], "test HR": [v.split(" ± ")[0] for v in view["test HR"]]})
        # APT's row names its statistics: an honest (observed) APT and the authors' oracle differ most of all.
        stats = f" ({scenario.erm_stats} statistics)"
        view = view.assign(phase=[v + stats if v in ("APT", "APT-rand") else v for v in view["phase"]])
        return as_arrow(view.rename(columns={"phase": "method"}))

    st.dataframe(per_result(result, "table", table_view), hide_index=True, width="stretch", key="def-table")
    st.caption("HR@K: " + GLOSSARY["HR@K"] + " RI: " + RI_GLOSSARY + " Stars on APT against the best baseline: " + STARS_LEGEND + ". "
               + paper_note(result.data.name, scenario.targets if isinstance(scenario.targets, str) else "chosen", scenario.attack_size, scenario.erm_stats))
    if (pop := popularity_note(table)) is not None:
        st.caption(pop)
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
        st.plotly_chart(per_result(result, f"influence-{chosen_round}-{scale}", lambda: influence_ranking_figure(
            infl, result.targets, titles, title=f"APT influence ranking, round {chosen_round} (most negative first; targets marked)", font_scale=scale)),
            width="stretch", theme=None)
        ranks = per_result(result, "influence-ranks", lambda: influence_target_ranks(rounds, result.targets))
        st.plotly_chart(per_result(result, f"influence-rounds-{scale}", lambda: influence_rounds_figure(
            ranks, [titles[int(t)] for t in result.targets], result.data.n_items, font_scale=scale)), width="stretch", theme=None)
        st.caption(
            "What to look for: where the attacked targets fall. Among the most negative entries, ERM users rate them, around "
            "the item's mean plus a lift; with observed statistics that mean includes the fake users' top ratings, so this can "
            "reinforce the attack rather than dilute it. At the positive end (LiSSA can put a target there) ERM users never "
            f"rate it. Ranks ({scenario.erm_stats} statistics) in round "
            f"{chosen_round}: " + ", ".join(f"{titles[int(t)]}: {r + 1}" for t, r in zip(result.targets, ranks[chosen_round - 1]))
        )


guard(body)
