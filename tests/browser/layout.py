"""What a student in the back row would stumble on, measured in the page: texts clipped or on top of each other,
tooltips cut off, figures running out of their box, and (in present mode) texts smaller than 11 px.

``layout_problems(page, panel, least_px)`` returns a list of sentences (empty when the tab is fine). It reads:
- every text of the panel's controls (labels, buttons, readouts, explanations) that is cut (an ellipsis, or hidden
  by a box with ``overflow: hidden``);
- the titles, axis titles, tick labels, legends and colour bars of plotly figures, turned as drawn (a rotated tick
  label is a rotated box), clipped by their figure or overlapping each other;
- the same for canvas maps, which list the texts they draw (``aeTexts()``);
- the tooltip of each canvas map, hovered at its far corner, which must stay inside the window;
- with ``least_px``, the size of every text on the panel (HTML, SVG and canvas).
"""

from __future__ import annotations

LAYOUT_PROBLEMS = r"""([panelClass, leastPx]) => {
  const problems = [];
  const root = document.querySelector(`.${panelClass}`);
  if (!root) return [`no panel .${panelClass}`];
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const shown = (text) => text.replace(/\s+/g, " ").trim().slice(0, 40);
  const rectOf = (r) => ({ left: r.left, top: r.top, right: r.right, bottom: r.bottom });
  // The part of the page an element can show: boxes with overflow hidden cut it (scrolling boxes do not: their
  // content is reachable), fixed elements only by the window.
  function clipOf(el) {
    let clip = { left: -1e9, top: -1e9, right: 1e9, bottom: 1e9 };
    if (getComputedStyle(el).position === "fixed") {
      return { left: 0, top: 0, right: window.innerWidth, bottom: window.innerHeight };
    }
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const style = getComputedStyle(a);
      // A scrolling box (the page's own) reaches all of its content: what lies outside its view is not cut.
      if (style.position === "fixed" || [style.overflowX, style.overflowY].some((v) => v === "auto" || v === "scroll")) break;
      const cuts = (v) => v === "hidden" || v === "clip";
      if (cuts(style.overflowX) || cuts(style.overflowY)) {
        const r = a.getBoundingClientRect();
        if (cuts(style.overflowX)) { clip.left = Math.max(clip.left, r.left); clip.right = Math.min(clip.right, r.right); }
        if (cuts(style.overflowY)) { clip.top = Math.max(clip.top, r.top); clip.bottom = Math.min(clip.bottom, r.bottom); }
      }
    }
    return clip;
  }
  const outside = (points, box, slack = 1.5) => points.some(([x, y]) =>
    x < box.left - slack || x > box.right + slack || y < box.top - slack || y > box.bottom + slack);
  const within = (a, b) => ({ left: Math.max(a.left, b.left), top: Math.max(a.top, b.top),
                              right: Math.min(a.right, b.right), bottom: Math.min(a.bottom, b.bottom) });
  const where = (points, box) => `(x ${Math.round(Math.min(...points.map((p) => p[0])))}-` +
    `${Math.round(Math.max(...points.map((p) => p[0])))}, y ${Math.round(Math.min(...points.map((p) => p[1])))}-` +
    `${Math.round(Math.max(...points.map((p) => p[1])))} in x ${Math.round(box.left)}-${Math.round(box.right)}, ` +
    `y ${Math.round(box.top)}-${Math.round(box.bottom)})`;
  const corners = (r) => [[r.left, r.top], [r.right, r.top], [r.right, r.bottom], [r.left, r.bottom]];
  // Two convex quadrilaterals overlap by more than `margin` px (separating axes).
  function overlap(a, b, margin = 1) {
    for (const poly of [a, b]) {
      for (let i = 0; i < poly.length; i++) {
        const [x1, y1] = poly[i], [x2, y2] = poly[(i + 1) % poly.length];
        const nx = y2 - y1, ny = x1 - x2, len = Math.hypot(nx, ny) || 1;
        const pa = a.map((p) => (p[0] * nx + p[1] * ny) / len), pb = b.map((p) => (p[0] * nx + p[1] * ny) / len);
        if (Math.max(...pa) - margin <= Math.min(...pb) || Math.max(...pb) - margin <= Math.min(...pa)) return false;
      }
    }
    return true;
  }
  function crowded(texts, where) {
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        if (overlap(texts[i].corners, texts[j].corners)) {
          problems.push(`${where}: '${shown(texts[i].text)}' overlaps '${shown(texts[j].text)}'`);
          return;  // one pair per figure says enough
        }
      }
    }
  }
  // A text drawn in SVG as its four corners on the page, turned as drawn, trimmed to the glyphs' height.
  function svgCorners(t) {
    const box = t.getBBox(), m = t.getScreenCTM();
    if (!m || !box.width) return null;
    const trim = box.height * 0.15;
    return [[box.x, box.y + trim], [box.x + box.width, box.y + trim], [box.x + box.width, box.y + box.height - trim],
            [box.x, box.y + box.height - trim]].map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]);
  }

  // 1. The controls' words (and the tabs' titles): cut by an ellipsis or a box too small for them. A short value
  // in a text box (a number, "0.20, 0.10") must show whole too; longer text (a path, a sentence) may scroll.
  const controls = [...root.querySelectorAll(".widget-label, .widget-label-basic, .widget-button, .widget-toggle-button, " +
                                              ".widget-readout, " +
                                              ".widget-html-content, .ae-status, input[type=text], input[type=number]"),
                    ...document.querySelectorAll(".ae-app .lm-TabBar-tabLabel, .ae-present-switch")];
  for (const el of controls) {
    const words = el.tagName === "INPUT" ? el.value : el.textContent;
    if (!visible(el) || !words.trim() || (el.tagName === "INPUT" && words.length > 12)) continue;
    const style = getComputedStyle(el);
    if (el.scrollWidth > el.clientWidth + 1 && style.overflowX !== "visible" && style.overflowX !== "auto") {
      problems.push(`control text cut: '${shown(words)}' (${el.scrollWidth} px in ${el.clientWidth} px)`);
    }
  }
  // 2. plotly figures: titles, axis titles, tick labels, legends, colour bars.
  for (const plot of root.querySelectorAll(".js-plotly-plot")) {
    if (!visible(plot)) continue;
    const name = (plot.layout && plot.layout.meta) || "a figure";
    const box = (plot.closest(".ae-plot") || plot).getBoundingClientRect();
    const clip = within(rectOf(box), clipOf(plot));
    const texts = [];
    const selector = ".gtitle, .g-xtitle text, .g-ytitle text, .xtick text, .ytick text, .legendtext, " +
                     ".annotation-text, .colorbar text, .cbtitle text";
    for (const t of plot.querySelectorAll(selector)) {
      if (!visible(t) || !t.textContent.trim() || getComputedStyle(t).opacity === "0") continue;
      const c = svgCorners(t);
      if (!c) continue;
      if (outside(c, clip)) problems.push(`${name}: '${shown(t.textContent)}' is cut off by its figure ${where(c, clip)}`);
      texts.push({ text: t.textContent, corners: c });
    }
    crowded(texts, name);
  }
  // 3. Canvas maps list what they drew.
  for (const map of root.querySelectorAll(".ae-heatmap")) {
    if (!visible(map) || !map.aeTexts) continue;
    const name = (map.layout && map.layout.meta) || "a map";
    const texts = map.aeTexts();
    const clip = within(rectOf(map.getBoundingClientRect()), clipOf(map.querySelector("canvas")));
    for (const t of texts) {
      const box = within(clip, t.box);
      if (outside(t.corners, box)) problems.push(`${name}: '${shown(t.text)}' is cut off by its map ${where(t.corners, box)}`);
    }
    crowded(texts, name);
  }
  // 4. Figures wider than the page: the panel scrolls sideways, the right side is out of sight.
  const page = document.querySelector("#rendered_cells") || document.scrollingElement;
  if (page.scrollWidth > page.clientWidth + 1) problems.push(`the page scrolls sideways (${page.scrollWidth} px in ${page.clientWidth} px)`);
  for (const fig of root.querySelectorAll(".ae-plot, .ae-heatmap")) {
    if (!visible(fig)) continue;
    const inner = fig.querySelector(".main-svg, canvas");
    if (inner && inner.getBoundingClientRect().right > fig.getBoundingClientRect().right + 1) {
      problems.push(`${(fig.layout && fig.layout.meta) || fig.className}: drawn wider than its box`);
    }
  }
  // 5. In present mode, every text at least leastPx.
  if (leastPx) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    const small = new Set();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const el = node.parentElement;
      if (!node.textContent.trim() || !el || !visible(el) || el.closest("option, script, style, .ae-heatmap-tip")) continue;
      const size = parseFloat(getComputedStyle(el).fontSize);
      if (size < leastPx - 0.01) small.add(`'${shown(node.textContent)}' at ${size.toFixed(1)} px`);
    }
    for (const map of root.querySelectorAll(".ae-heatmap")) {
      if (!visible(map) || !map.aeTexts) continue;
      for (const t of map.aeTexts()) if (t.size < leastPx - 0.01) small.add(`'${shown(t.text)}' at ${t.size} px on a map`);
    }
    if (small.size) problems.push(`texts under ${leastPx} px: ${[...small].slice(0, 6).join(", ")}`);
  }
  return problems;
}"""

# Each canvas map with cells on the panel, scrolled into view: where the middle of its last cell (bottom right) is,
# where a tooltip runs out of room.
FAR_CORNER = """([panelClass, index]) => {
    const maps = [...document.querySelectorAll(`.${panelClass} .ae-heatmap`)]
        .filter(m => m.getClientRects().length && m.aePlotArea && m.aePlotArea().width > 0);
    if (index >= maps.length) return null;
    const m = maps[index];
    m.scrollIntoView({block: "center"});
    const a = m.aePlotArea(), d = m.data[0];
    const cw = a.width / d.z[0].length, ch = a.height / d.z.length;
    return {name: m.layout.meta, x: a.x + a.width - cw / 2, y: a.y + a.height - ch / 2};
}"""

TIP_PLACE = """() => { const tips = [...document.querySelectorAll('.ae-heatmap-tip')].filter(t => t.style.display === 'block');
    return tips.map(t => { const r = t.getBoundingClientRect(); const cs = getComputedStyle(t);
        return {left: r.left, top: r.top, right: r.right, bottom: r.bottom, fixed: cs.position === 'fixed',
                text: t.textContent}; }); }"""


def layout_problems(page, panel: str, least_px: float | None = None) -> list[str]:
    """Everything clipped, overlapping or (with ``least_px``) too small in the tab whose panel has class ``panel``."""
    problems = page.evaluate(LAYOUT_PROBLEMS, [panel, least_px or 0])
    return problems + tooltip_problems(page, panel)


def tooltip_problems(page, panel: str) -> list[str]:
    """Hover each canvas map at its far corner: its tooltip must show whole, inside the window and its boxes."""
    problems, index = [], 0
    while (corner := page.evaluate(FAR_CORNER, [panel, index])) is not None:
        index += 1
        page.wait_for_timeout(100)  # the scroll settles
        corner = page.evaluate(FAR_CORNER, [panel, index - 1])
        page.mouse.move(corner["x"] - 3, corner["y"] - 3)
        page.mouse.move(corner["x"], corner["y"])
        page.wait_for_timeout(80)
        size = page.viewport_size
        tips = page.evaluate(TIP_PLACE)
        if not tips:
            problems.append(f"{corner['name']}: no tooltip at its last cell")
            continue
        tip = tips[0]
        cut = page.evaluate("""(tip) => { const t = [...document.querySelectorAll('.ae-heatmap-tip')]
            .find(e => e.style.display === 'block');
            if (getComputedStyle(t).position === 'fixed') return false;
            for (let a = t.parentElement; a && a !== document.body; a = a.parentElement) {
                const s = getComputedStyle(a);
                if ([s.overflowX, s.overflowY].some(v => v === 'auto' || v === 'scroll')) break;
                if (['hidden', 'clip'].includes(s.overflowX) || ['hidden', 'clip'].includes(s.overflowY)) {
                    const r = a.getBoundingClientRect();
                    if (tip.left < r.left || tip.right > r.right || tip.top < r.top || tip.bottom > r.bottom) return true;
                }
            }
            return false; }""", tip)
        if cut or tip["left"] < 0 or tip["top"] < 0 or tip["right"] > size["width"] or tip["bottom"] > size["height"]:
            problems.append(f"{corner['name']}: its tooltip '{tip['text'][:30]}' is cut off")
    page.mouse.move(1, 1)
    return problems
