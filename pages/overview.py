"""Overview: what poisoning is, and the one-click demo (clean -> attacked -> defended)."""
from __future__ import annotations

import time


import streamlit as st

from pages._shared.display import download, fmt_frame, results_views
from pages._shared.page_guard import guard
from pages._shared.runs import artifact_cache, run_cached
from pages._shared.settings import chart_scale, settings
from pages._shared.uploads import load_data
from pages._shared.widgets import small_data_controls


def body() -> None:
    st.title("APT Lab: poisoning attacks and defenses for recommenders")
    # The story on the left, the demo's figure on the right: both on one screen at 1280x720.
    intro, demo = st.columns([1, 1], gap="large")
    intro.markdown(
        "A recommender learns from its users' ratings, so anyone who can create accounts can feed it ratings. "
        "A **data-poisoning attack** injects fake user profiles crafted so that the trained model recommends "
        "chosen **target items** to many real users. **Adversarial Poisoning Training (APT)** "
        "(Wu et al., SIGIR 2021) fights fire with fire: during training it injects its own *ERM users*, who rate "
        "items of negative influence on the model's empirical risk, around each item's mean plus a lift; nothing in "
        "that choice points at the attacker's targets. The authors' released code takes each item's rating "
        "statistics from the *clean* data, which no real defender has (the paper's text: the training data, which "
        "may be contaminated); with the statistics an honest defender sees, APT is weaker (the Lesson's last step "
        "measures by how much on this data). **APT-trusted** first finds the coordinated fake accounts (a shilling "
        "detector, from the observed data alone) and takes the statistics, and the training data, from the rest."
    )
    demo.subheader("One-click demo")
    # The model code is imported only now: the title and the story above are on screen before it loads.
    from apt_core.experiments.demo import demo_scenario, demo_steps, run_demo
    from apt_core.plots.explore import hit_ratio_steps_figure

    cfg = settings()
    scenario = demo_scenario(cfg["dataset"], cfg["data_dir"], cfg["seed"], cfg["device"])
    data = load_data(cfg["dataset"], cfg["data_dir"])
    scenario = small_data_controls(scenario, data, "demo")
    from apt_core.experiments.demo import phase_label
    from apt_core.plots.results import popularity_note, ri_phrase

    shown_name = "your uploaded file" if st.session_state.get("dataset") == "uploaded CSV" else data.name  # never a server path
    setup = (
        f"Data set **{shown_name}**; attack **{scenario.attack}** with {scenario.attack_size:.0%} fake users on "
        f"{scenario.n_targets} {scenario.targets if isinstance(scenario.targets, str) else 'chosen'} target items; defense **{scenario.defenses[0]}** (honest: it sees only the "
        f"poisoned data; {scenario.erm_description()})"
        + "".join(f"; beside it **{phase_label(scenario, d)}**" for d in scenario.defenses[1:])
        + f"; HR@{scenario.k}."
    )
    t0 = time.perf_counter()
    with demo:
        result = run_cached("demo", scenario, lambda sc, pr: run_demo(sc, pr, cache=artifact_cache()), label="Run the one-click demo")
    if result is None:
        demo.caption(setup)
        demo.info("Press the button: clean MF, then the attack, then the defense, on the selected data set.")
        return
    elapsed = time.perf_counter() - t0
    steps = demo_steps(result)
    demo.plotly_chart(hit_ratio_steps_figure(steps, scenario.k, font_scale=chart_scale()), width="stretch", theme=None)
    demo.caption(setup)
    cols = st.columns(len(steps))
    for col, (name, value) in zip(cols, steps):
        col.metric(name, f"{value:.3f}" if value is not None else "n/a")
    table, shown, _ = results_views(result)
    rows = {r["phase"]: r for r in result.rows()}
    text = f"The attack moved the targets' HR@{scenario.k} from **{steps[0][1]:.3f}** to **{steps[1][1]:.3f}**"
    for name in scenario.defenses:
        if name != "none":
            text += f"; {phase_label(scenario, name)} brought it to **{rows[name]['target_hr']:.3f}** ({ri_phrase(rows[name], explain=True)})"
    st.markdown(text + ".")
    st.markdown("**Result rows** (target HR, test HR, robustness improvement RI)")
    st.dataframe(shown, hide_index=True, width="stretch", key="demo-table")
    if (pop := popularity_note(table)) is not None:
        st.caption(pop)
    download(fmt_frame(table), "demo_results.csv")
    targets = ", ".join(result.data.title(int(t)) for t in result.targets)
    wall = getattr(result, "wall_seconds", None)
    computed = f"computed in {wall:.1f} s" if wall is not None else "computed"
    st.caption(f"Target items: {targets}. Demo {computed}; this view came from the cache in {elapsed:.2f} s.")


guard(body)
