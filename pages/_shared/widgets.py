"""Controls shared by several pages: the attack's settings, the adaptive K / target count on small
data, and one widget per declared hyper-parameter (generated from :mod:`apt_core.params`)."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import streamlit as st

from pages._shared.glossary import GLOSSARY
from pages._shared.grid_panel import is_live, live_spec
from pages._shared.settings import kept_value, presenter, settings
from pages._shared.url_state import url_state


def attack_controls(data, prefix: str = "atk"):
    """Widgets shared by the Attack and Profiles pages; returns the scenario they describe."""
    from apt_core.attacks import ATTACKS, attack_names
    from apt_core.experiments.pipeline import Scenario
    from apt_core.models.victims import victim_labels

    cfg = settings()
    live = is_live(cfg)
    url_state([f"{prefix}-attack", f"{prefix}-size", f"{prefix}-filler", f"{prefix}-mode", f"{prefix}-victim", f"{prefix}-chosen"])
    names = [a for a in attack_names() if a != "none"]
    if not names:
        st.warning("No attack is available yet.")
        return None
    c = st.columns(4 if presenter() else 5)
    attack = c[0].selectbox("Attack", names, index=names.index("average") if "average" in names else 0, key=f"{prefix}-attack", help="; ".join(f"{n}: {ATTACKS[n].summary}" for n in names))
    # Live: snap to the precomputed grid (apt_core.experiments.grid), a move is a cache read; otherwise
    # steps of 0.5%.  Both show percent (a plain slider showed 0.030 after an upload).
    sizes = list(live_spec().sizes) if live else ATTACK_SIZES
    size = c[1].select_slider("Attack size (fake users, share of real users)", sizes, value=_snap(f"{prefix}-size", sizes, 0.03),
                              format_func=percent_text, key=f"{prefix}-size", help=GLOSSARY["attack size"])
    victims = victim_labels()  # the victims registry, read now: a registered plug-in victim is listed
    if presenter():  # advanced controls: the fake profiles' length and the victim model, named in one caption
        filler = int(kept_value(f"{prefix}-filler", 0, 0, max(1, int(data.n_items) - 10)))  # a link's value, clamped as the widget would
        victim = kept_value(f"{prefix}-victim", "mf")
        c[2].caption(f"Filler items per fake user: {'average profile length' if not filler else filler}; "
                     f"victim model: {victims.get(victim, victim)}")
    else:
        filler = c[2].number_input("Filler items per fake user", 0, max(1, int(data.n_items) - 10), 0, key=f"{prefix}-filler",
                                   help="Items a fake user rates besides the targets, so that the profile looks like a real one. "
                                        "0 = the data set's average profile length.")
    # The tiers of apt_core.data.split.select_targets (the least popular fifth: issue 25's third tier).
    modes = ["unpopular", "tail", "random", "chosen by title"]
    counts = data.interactions.item_counts
    if int(((counts >= 1) & (counts < 5)).sum()) < 5:  # too few unpopular items (an upload): offer what exists
        modes = ["tail", "random", "chosen by title"]
        if st.session_state.get(f"{prefix}-mode") not in modes:
            st.session_state.pop(f"{prefix}-mode", None)
    mode = c[3].selectbox("Target items", modes, key=f"{prefix}-mode", format_func=lambda m: TARGET_MODE_LABELS.get(m, m),
                          help=GLOSSARY["target item"] + " 'unpopular': items with 1 to 4 ratings; 'least popular fifth': the fifth of "
                               "the rated items with the fewest ratings; 'random': any item." + (
                               " This data set has too few items with 1 to 4 ratings for 'unpopular' targets." if modes[0] == "tail" else ""))
    targets: str | tuple = mode
    if not presenter():
        victim = c[4].selectbox(
            "Victim model", list(victims), key=f"{prefix}-victim", format_func=victims.get,
            help="The recommender that is attacked and defended. MF: explicit ratings, the APT paper's victim. "
                 "The neural victims (LightGCN: BPR, NeuMF: log loss, and any registered one) read every rating as an "
                 "interaction, as their papers do; they take tens of seconds per fit on ML-100K on a CPU.")
    if mode == "chosen by title":
        counts = data.interactions.item_counts
        order = np.argsort(counts)  # unpopular first: the interesting targets
        labels = {int(i): f"{data.title(int(i))} ({int(counts[i])} ratings)" for i in order}
        chosen = st.multiselect("Choose target items", list(labels), format_func=lambda i: labels[i], max_selections=10, key=f"{prefix}-chosen")
        if not chosen:
            st.info("Choose at least one target item.")
            return None
        targets = tuple(v.item() if hasattr(v, "item") else v for v in data.item_ids[np.asarray(chosen)])
    params = param_controls([attack], prefix, f"Advanced: {attack} parameters")
    if params is None:
        return None
    scenario = Scenario(
        dataset=cfg["dataset"], data_dir=cfg["data_dir"], attack=attack, attack_size=float(size),
        filler=int(filler) or None, targets=targets, seed=cfg["seed"], device=cfg["device"], victim=victim, params=params,
    )
    return small_data_controls(scenario, data, prefix)


#: the target modes' words on the pages
TARGET_MODE_LABELS = {"tail": "least popular fifth (tail)"}
#: the attack sizes offered off the precomputed grid: 0.5% to 20% in steps of 0.5%
ATTACK_SIZES = [round(0.005 * i, 3) for i in range(1, 41)]
#: the ERM shares offered off the grid: 0% to 20% in steps of 1%
ERM_SHARES = [round(0.01 * i, 2) for i in range(0, 21)]


def percent_text(share: float) -> str:
    """A share as a percentage for a slider's label: 0.03 -> "3%", 0.005 -> "0.5%"."""
    return f"{share * 100:.4g}%"


def _snap(key: str, options: list, default):
    """The default of a select slider over ``options``; a kept value (session, URL) that is not an option is dropped first."""
    if key in st.session_state and st.session_state[key] not in options:
        st.session_state.pop(key)
    return default if default in options else options[0]


def share_slider(container, label: str, options: list, default: float, key: str, help: str | None = None) -> float:
    """A select slider over shares, shown in percent (the Defense page's ERM share)."""
    return container.select_slider(label, options, value=_snap(key, options, default), format_func=percent_text, key=key, help=help)


def small_data_controls(scenario, data, prefix: str):
    """On a small data set: K and the number of targets adapt (the page says so), with a control for each."""
    from apt_core.experiments.demo import adapt_to_data

    adapted, notes = adapt_to_data(scenario, data)
    if not notes and int(data.n_items) >= 300:
        return scenario
    for note in notes:
        st.info(note)
    n_items = int(data.n_items)
    c = st.columns(2)
    k = c[0].number_input("K: length of the recommendation list that is measured", 1, max(1, n_items - 1), adapted.k, key=f"{prefix}-k",
                          help=GLOSSARY["HR@K"])
    if isinstance(adapted.targets, str):
        n_targets = c[1].number_input("Number of target items", 1, max(1, n_items // 2), adapted.n_targets, key=f"{prefix}-ntargets",
                                      help=GLOSSARY["target item"])
        adapted = dataclasses.replace(adapted, n_targets=int(n_targets))
    return dataclasses.replace(adapted, k=int(k))


def param_controls(names: list[str], prefix: str, title: str = "Advanced: parameters") -> dict | None:
    """An expander with one widget per declared hyper-parameter of the methods ``names`` (attacks, defenses, detectors).

    Generated from the declarations (:mod:`apt_core.params`), so a registered method gets its
    controls without page code.  Returns ``{"NAME.PARAM": value}`` for the values changed from
    the default (what ``Scenario.params`` takes), or None when a typed value is invalid (the
    message is shown in place of a traceback).
    """
    from apt_core.attacks import ATTACKS
    from apt_core.defenses import DEFENSES
    from apt_core.detection import DETECTORS
    from apt_core.errors import ConfigError

    classes = [(n, ATTACKS.get(n) or DEFENSES.get(n) or DETECTORS.get(n)) for n in names]
    classes = [(n, c) for n, c in classes if c is not None and c.params]
    out: dict = {}
    if not classes:
        return out
    if presenter():
        # Hidden on the projector; the values set before still count (kept, not reset).
        for name, cls in classes:
            for p in cls.params:
                try:
                    value = _param_value(p, kept_value(f"{prefix}-param-{name}-{p.name}", None), name)
                except ConfigError:
                    continue  # an invalid hidden value counts as the default (the expander shows the error)
                if value != p.default:
                    out[f"{name}.{p.name}"] = value
        if out:
            st.caption(f"{title}: {len(out)} changed from the defaults ({', '.join(out)}); presenter mode hides them.")
        return out
    ok = True
    with st.expander(title, expanded=False):
        st.caption("Every hyper-parameter the method declares. "
                   "Blank or 'default' keeps the default; changed values are part of the cache key and the run history.")
        for name, cls in classes:
            st.markdown(f"**{name}** — {cls.summary}")
            cols = st.columns(3)
            for i, p in enumerate(cls.params):
                key = f"{prefix}-param-{name}-{p.name}"
                paper = "" if p.paper is None else f" Paper: {p.paper}."
                help_text = f"{p.help}. Allowed: {p.range_text()}.{paper}"
                col = cols[i % 3]
                if p.type is bool:
                    raw = col.checkbox(p.name, value=bool(p.default), key=key, help=help_text)
                elif p.choices is not None:
                    options = (["default"] if p.optional else []) + list(p.choices)
                    raw = col.selectbox(p.name, options, index=options.index("default" if p.default is None else p.default), key=key, help=help_text)
                else:
                    raw = col.text_input(p.name, value="" if p.default is None else str(p.default), key=key, help=help_text,
                                         placeholder="default")
                try:
                    value = _param_value(p, raw, name)
                except ConfigError as exc:
                    col.error(str(exc))
                    ok = False
                    continue
                if value != p.default:
                    out[f"{name}.{p.name}"] = value
    return out if ok else None


def _param_value(p, raw: Any, name: str) -> Any:
    """A parameter's widget value (checkbox, select box or typed text) as the scenario takes it;
    raises ConfigError for text that does not parse.  Blank or "default" is the default."""
    if raw is None:
        return p.default
    if p.type is bool:
        return bool(raw)
    if p.choices is not None:
        return None if raw == "default" else raw
    text = str(raw).strip()
    if not text or text.lower() == "default":
        return p.default
    return p.parse(text, name)
