"""Present mode for a projector: a link with present=1 opens the dashboard with larger text, maps and buttons,
the switch on the page turns it off and on, and a copied link keeps it."""

from __future__ import annotations

from tests.browser.helpers import FIND_PLOT, open_dashboard

HEAD = "ae-pretrained-head"

SIZES = f"""() => {{
    const map = ({FIND_PLOT})('{HEAD}');
    const ticks = map.aeTexts().filter(t => t.text === 'animal').map(t => t.size);
    const label = getComputedStyle(document.querySelector('.ae-pretrained .widget-label:not([style*="none"])'));
    const button = document.querySelector('.ae-pretrained-load').getBoundingClientRect();
    return {{tick: Math.min(...ticks), label: parseFloat(label.fontSize), button: button.height,
             height: map.getBoundingClientRect().height}};
}}"""


def test_present_in_the_link_enlarges_text_maps_and_buttons_and_the_switch_turns_it_off(page, dashboard_url):
    open_dashboard(page, dashboard_url, "tab=pretrained&present=1")
    page.wait_for_function(f"() => {{ const p = ({FIND_PLOT})('{HEAD}');"
                           " return p && p.data[0].x.includes('animal') && !!document.querySelector('.ae-app.ae-present'); }",
                           timeout=120_000)
    page.wait_for_timeout(1000)
    big = page.evaluate(SIZES)
    assert big["tick"] >= 15 and big["label"] >= 17 and big["button"] >= 36
    page.locator(".ae-present-switch").click()
    page.wait_for_function("() => !document.querySelector('.ae-app.ae-present')")
    page.wait_for_timeout(1000)
    small = page.evaluate(SIZES)
    assert small["tick"] < big["tick"] and small["label"] < big["label"] and small["height"] < big["height"]
    page.locator(".ae-present-switch").click()
    page.wait_for_function("() => !!document.querySelector('.ae-app.ae-present')")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator(".ae-pretrained .ae-copy-link button").click()
    page.wait_for_function("() => document.querySelector('.ae-pretrained .ae-copy-link-url').value.includes('present=1')")
