"""Real-browser test: Playwright drives Debian's Chromium against a live `streamlit run app.py`.

Runs the one-click demo and the Defense page on the sample data and checks that the HR
table and a box plot appear.  ``test_screenshots_every_page`` (slow) saves a tall screenshot
of every page at projector size into ``$APT_SCREENSHOTS`` (default: a temporary folder) for people to look at.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_support import PAGES, chromium, click_run_and_settle, need_browser, new_context, serve
from browser_support import no_exception as _no_exception
from browser_support import open_page as _open
from browser_support import settle as _settle

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    need_browser()
    with serve(tmp_path_factory.mktemp("browser")) as served:
        yield served.url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_one_click_demo_shows_hr_table_and_chart(server, browser):
    page = _open(browser, server)
    page.get_by_role("button", name="Run the one-click demo").click()
    page.wait_for_selector('[data-testid="stDataFrame"]')
    page.wait_for_selector(".js-plotly-plot")
    _no_exception(page)
    assert page.locator('[data-testid="stMetric"]').count() >= 2
    assert "clean MF" in page.locator('[data-testid="stMetric"]').first.inner_text()
    page.close()


def _bar_labels(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot .bartext')).map(e => e.textContent)")


def test_lesson_end_to_end(server, browser):
    """Seven steps, one click each; every step with a result asks first and reveals; the default
    student is one the attack reaches; "Next step" is on the first screen at 1280x720; the last step
    (the attacker who knows the detector) runs and reveals its numbers."""
    page = _open(browser, server, "Lesson", height=720, width=1280)
    page.wait_for_selector('button:has-text("Next step")')
    top = page.locator(".st-key-lesson-next-top button").first.bounding_box()
    assert top is not None and 0 <= top["y"] and top["y"] + top["height"] <= 720
    for step in range(7):
        heading = f'[data-testid="stHeading"]:has-text("{step + 1}. ")'
        for _ in range(5):  # a click that lands during a rerun is dropped: click again
            try:
                page.wait_for_selector(heading, timeout=40_000)
                break
            except Exception:  # noqa: BLE001 -- playwright's TimeoutError
                page.locator(".st-key-lesson-next button").first.click()
        page.wait_for_selector(heading)
        if step >= 1:  # steps 2-7 each have a predict-first question (6's after the oracle run, 7's after its own)
            page.wait_for_selector(f".st-key-lesson-guess-{step}", timeout=240_000)
            page.locator(f'.st-key-lesson-guess-{step} [role="radiogroup"] label').first.click()
            page.locator(f".st-key-lesson-reveal-{step} button").first.click()
            page.wait_for_selector('[data-testid="stAlertContentSuccess"]')
            if step == 2:  # the default student: the attack put a target into their top 10
                assert "in their top 10 now" in page.locator('[data-testid="stAlertContentSuccess"]').first.inner_text()
        _no_exception(page)
        if step == 3:  # why ERM users defend: the influence picture beside its sentence
            assert page.locator('.js-plotly-plot:has-text("by influence")').count() == 1
        if step == 5:
            page.wait_for_selector('[data-testid="stMetric"]:has-text("oracle statistics")')
        if step < 6:
            page.locator(".st-key-lesson-next button").first.click()
    page.wait_for_selector('[data-testid="stMetric"]:has-text("APT-robust: target HR")')
    assert page.locator(".st-key-lesson-next button").first.is_disabled()
    _no_exception(page)
    page.close()


def test_defense_view_moves_without_a_click_survives_pages_and_reopens_from_its_url(server, browser):
    """One visit of the Defense page at 1280x720 (each visit draws the whole page again; they were five tests):

    1. the main figure and the ERM-users slider are on the first screen (``test_main_figure_and_its_control_on_one_screen``
       checks the other pages and presenter mode);
    2. the sample data's controls are live: the HR table and the bar chart come without a Run click, and the
       paper's rank-shift view (an expander) draws its box plot;
    3. the ERM-users slider moves its figure without a click (no Run button appears);
    4. with the statistics set to clean (oracle), the view (both controls) survives a visit to Attack and
       the way back, through the sidebar and through the browser's Back;
    5. the page's URL, copied into another browser session, reopens the same view;
    6. there, with the results on screen, a bad upload clears them (:func:`_bad_upload_clears_old_results`).
    """
    page = _open(browser, server, "Defense", height=720, width=1280)
    page.wait_for_selector(".js-plotly-plot .bartext")
    check_main_figure_and_control(page, "defense", presenter=False)
    page.wait_for_selector('[data-testid="stDataFrame"]')
    page.wait_for_selector(".js-plotly-plot .barlayer")
    page.get_by_text("The paper's view: rank shift").click()
    page.wait_for_selector(".js-plotly-plot .boxlayer .trace")
    assert page.locator(".js-plotly-plot .boxlayer .trace").count() >= 1, "the rank-shift view has no box plot"
    _no_exception(page)
    labels = _bar_labels(page)
    before = page.evaluate("() => location.search")
    slider = page.locator('[data-testid="stSlider"]:has-text("ERM users")').get_by_role("slider")
    slider.focus()
    slider.press("ArrowRight")  # 5% -> the next grid value
    page.wait_for_function("(old) => { const now = Array.from(document.querySelectorAll('.js-plotly-plot .bartext')).map(e => e.textContent); "
                           "return now.length > 0 && JSON.stringify(now) !== JSON.stringify(old); }", arg=labels, timeout=240_000)
    assert page.get_by_role("button", name="Run attack and defenses").count() == 0, "the slider's new value needed a click"
    page.wait_for_function("(old) => location.search.includes('def-erm=') && location.search !== old", arg=before, timeout=120_000)
    page.get_by_text("clean (oracle)").click()
    page.wait_for_function("() => location.search.includes('def-stats=%22clean%22')", timeout=120_000)
    _settle(page)
    _no_exception(page)
    view = page.evaluate("() => location.search")
    url = page.url
    erm = slider.get_attribute("aria-valuetext") or slider.get_attribute("aria-valuenow")

    def same_view(on, how: str, same_query: bool = True) -> None:
        on.wait_for_selector('h1:has-text("Defense")', timeout=300_000)
        if same_query:
            on.wait_for_function("(q) => location.search === q", arg=view, timeout=60_000)
        on.locator('[data-testid="stRadio"] input[type="radio"]:checked').first.wait_for(state="attached")
        assert "clean" in on.locator('[data-testid="stRadio"] label:has(input:checked)').inner_text(), f"statistics lost {how}"
        now = on.locator('[data-testid="stSlider"]:has-text("ERM users")').get_by_role("slider")
        assert (now.get_attribute("aria-valuetext") or now.get_attribute("aria-valuenow")) == erm, f"ERM users lost {how}"

    page.locator('[data-testid="stSidebarNavLink"]:has-text("Attack")').first.click()
    page.wait_for_selector('h1:has-text("Attack")')
    _settle(page)
    page.locator('[data-testid="stSidebarNavLink"]:has-text("Defense")').first.click()
    same_view(page, "after Attack and the sidebar back")
    page.locator('[data-testid="stSidebarNavLink"]:has-text("Attack")').first.click()
    page.wait_for_selector('h1:has-text("Attack")')
    _settle(page)
    page.go_back()
    same_view(page, "after Attack and the browser's Back")
    _no_exception(page)
    page.close()
    context = new_context(browser, height=1600, width=1280)  # another browser session
    other = context.new_page()
    other.set_default_timeout(240_000)
    other.goto(url)
    same_view(other, "in the copied URL", same_query=False)  # the controls are what the link must carry
    other.wait_for_selector(".js-plotly-plot .bartext")
    _no_exception(other)
    _bad_upload_clears_old_results(other)
    context.close()


def _bad_upload_clears_old_results(page) -> None:
    """On a Defense page showing results, choose an uploaded CSV and upload a bad file: the message, and no old figure or table."""
    page.wait_for_selector(".js-plotly-plot .bartext")  # results of the sample data on screen
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]:has-text("Data set")').click()
    page.get_by_role("option", name="uploaded CSV").click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"user,item,rating\n1,2,3\n1,3,not-a-number\n"}])
    page.wait_for_selector("text=The uploaded rating file cannot be used")
    page.wait_for_selector("text=Fix the file")
    # Streamlit keeps the previous run's elements (faded) until the script run that shows the
    # message is over; what the user is left with is the page after that run.
    _settle(page, 120)
    main = page.locator('[data-testid="stMain"]')
    assert main.locator(".js-plotly-plot").count() == 0, "a figure of the old results is still on the page after a bad upload"
    assert main.locator('[data-testid="stDataFrame"]').count() == 0, "a table of the old results is still on the page after a bad upload"
    _no_exception(page)


def test_cancel_stops_a_running_defense(server, browser):
    """Cancel during a run: the run stops, the page says so, no result table appears.  (After the Defense
    view test, as before the merge: the page's default result is on screen when the 10-seed run starts.)"""
    page = _open(browser, server, "Defense")
    seeds = page.get_by_role("spinbutton", name="Seeds (repetitions)")
    # A distinct scenario (not in the cache), as long as the page allows: on an idle machine a
    # 4-seed run finished before the click (the button was gone; the click waited 180 s).
    seeds.fill("10")  # live controls start it at once
    seeds.press("Enter")
    page.wait_for_selector('[data-testid="stProgress"]')
    # A click that lands while Streamlit redraws the button is lost (as a person's would be):
    # click again while the run is still going, as the Lesson test does with "Next step".
    cancel, message = page.get_by_role("button", name="Cancel"), page.locator("text=The previous run was cancelled")
    for _ in range(20):
        if cancel.count():
            cancel.first.click(force=True, timeout=10000)
        try:
            message.wait_for(state="visible", timeout=5000)
            break
        except Exception:  # noqa: BLE001 -- playwright's TimeoutError: not cancelled yet, click again
            continue
    message.wait_for(state="visible", timeout=30000)
    _no_exception(page)
    # The cancelled run shows no result of its own: only the previous one, greyed out.
    fresh = '[data-testid="stDataFrame"]:not(.st-key-stale-result [data-testid="stDataFrame"])'
    assert page.locator(fresh).count() == 0
    # The cancel message can render before the rerun has drawn the Run button again.
    run_button = page.get_by_role("button", name="Run attack and defenses")
    run_button.wait_for(state="visible", timeout=15000)
    assert run_button.count() == 1
    assert page.locator(fresh).count() == 0
    page.close()


#: each page's main figure is its first chart; the control that moves it (None: the sidebar's data set)
MAIN_CONTROL = {"overview": None, "data": None, "attack": "Attack size", "defense": "ERM users", "sweeps": "Sweep over",
                "profiles": "Attack size", "detection": "Detectors", "theory": "ERM users n*"}


def main_figure_and_control(page, control: str | None) -> tuple[dict, dict | None]:
    """Bounding boxes (viewport px) of the page's main figure and of the control that moves it."""
    figure = page.locator('[data-testid="stMain"] .js-plotly-plot').first.bounding_box()
    box = None
    if control:
        box = page.locator(f'[data-testid="stMain"] [data-testid="stElementContainer"]:has(label:has-text("{control}"))').first.bounding_box()
    return figure, box


def check_main_figure_and_control(page, name: str, presenter: bool) -> None:
    """At 1280x720 the page's main figure and the control that moves it are both on the first screen;
    presenter mode's tick labels are large; the sidebar's switch shows the mode the page is in."""
    page.wait_for_selector('[data-testid="stMain"] .js-plotly-plot .main-svg', timeout=240_000)
    figure, control = main_figure_and_control(page, MAIN_CONTROL[name])
    assert figure is not None and figure["y"] >= 0 and figure["y"] + figure["height"] <= 720, (name, "main figure", figure)
    assert control is not None and control["y"] >= 0 and control["y"] + control["height"] <= 720, (name, "its control", control)
    if presenter:
        ticks = page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=\"stMain\"] .js-plotly-plot .xtick text'))"
                              ".map(e => parseFloat(getComputedStyle(e).fontSize))")
        assert ticks and min(ticks) >= 18
    # the sidebar's switch shows the mode the page is in (it was drawn off after a page switch)
    assert page.locator('[data-testid="stSidebar"] input[type="checkbox"]').first.is_checked() == presenter


@pytest.mark.parametrize("name, presenter", [("defense", True), ("attack", False), ("attack", True), ("theory", False), ("theory", True)],
                         ids=["defense-presenter", "attack-normal", "attack-presenter", "theory-normal", "theory-presenter"])
def test_main_figure_and_its_control_on_one_screen(server, browser, name, presenter):
    """At 1280x720 the page's main figure and the control that moves it are both on the first screen
    (the pages that the other browser tests compute anyway; the slow screenshot test checks every page).
    The Defense page in normal mode is checked by the Defense view test's visit."""
    page = _open(browser, server + ("/?presenter=true" if presenter else ""), name.capitalize(), height=720, width=1280)
    check_main_figure_and_control(page, name, presenter)
    _no_exception(page)
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("presenter", [False, True], ids=["normal", "presenter"])
def test_screenshots_every_page(server, browser, presenter, tmp_path):
    """Screenshots at projector size (1280x720) of each page after its figures appear, for a
    person to look at: the first screen (what the projector shows) and the whole page.
    Saved into ``$APT_SCREENSHOTS`` when set, else a temporary folder."""
    out = Path(os.environ.get("APT_SCREENSHOTS") or tmp_path) / ("presenter" if presenter else "normal")
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(PAGES):
        page = _open(browser, server + ("/?presenter=true" if presenter else ""), name.capitalize(), height=720, width=1280)
        _settle(page)
        click_run_and_settle(page)
        page.screenshot(path=str(out / f"{i}_{name}_screen.png"))
        assert page.locator('[data-testid="stSidebar"] input[type="checkbox"]').first.is_checked() == presenter, name
        if name in MAIN_CONTROL:  # the main figure and its control on this first screen
            figure, control = main_figure_and_control(page, MAIN_CONTROL[name])
            assert figure is not None and figure["y"] + figure["height"] <= 720, (name, figure)
            assert control is None or control["y"] + control["height"] <= 720, (name, control)
        # Streamlit scrolls inside its main pane, so a "full page" shot is the first screen
        # again: the whole page needs a viewport as tall as the content.
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        page.set_viewport_size({"width": 1280, "height": min(12000, max(720, int(height) + 80))})
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / f"{i}_{name}_full.png"))
        _no_exception(page)
        page.close()
