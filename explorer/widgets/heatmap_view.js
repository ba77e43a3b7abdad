// A matrix drawn on one canvas: title, axis labels, colour bar, outlines, hover and click.
// plotly.js recomputes and redraws a whole SVG heatmap for any change (even moving an outline); here an
// update is one canvas repaint. The element carries `layout` and `data` (what is drawn, as plotly's graph
// div would) so the same page-side code can read either kind of figure, and `aeTexts()` (every text drawn,
// with its corners on the page) so a test can tell clipped or overlapping labels.
// Inside an element with the class `ae-present` (the dashboard's "present" switch) every text, the map and
// its click targets are drawn larger, for a projector.
const FONT = '"Open Sans", verdana, arial, sans-serif';
const INK = "#2a3f5f";
const PRESENT = 1.4; // how much larger texts are drawn in present mode
const LONGEST_LABEL = 18; // characters of a token label drawn on an axis; the hover shows all of it

function parseColor(text) {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (m) return m[1].split(",").slice(0, 3).map(Number);
  const hex = text.replace("#", "");
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function colorAt(scale, t) {
  t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < scale.length; i++) {
    if (t <= scale[i][0]) {
      const [p0, c0] = scale[i - 1], [p1, c1] = scale[i];
      const f = p1 > p0 ? (t - p0) / (p1 - p0) : 0;
      return `rgb(${c0.map((v, k) => Math.round(v + (c1[k] - v) * f)).join(",")})`;
    }
  }
  return `rgb(${scale[scale.length - 1][1].join(",")})`;
}

function matrixOf(model) {
  const [rows, cols] = model.get("shape");
  const view = model.get("z");
  const buffer = view && view.buffer ? view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) : new ArrayBuffer(0);
  const flat = new Float32Array(buffer);
  const z = [];
  for (let r = 0; r < rows; r++) z.push(Array.from(flat.subarray(r * cols, (r + 1) * cols), (v) => Math.round(v * 1e4) / 1e4));
  return z;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => (key in values ? values[key] : ""));
}

// Colour bar ticks at round, distinct values (0.005, 0.010, ... rather than 0.01, 0.01 rounded from quarters). The
// decimals follow the step, and a flat scale keeps two significant digits: a long map's pooled colour scale ends
// near 0.002, which a fixed two decimals would print as 0.
export function niceTicks(lo, hi, count = 4) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [{ value: lo, text: String(parseFloat(lo.toPrecision(2))) }];
  const raw = span / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const mantissa = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw * 0.999);
  const step = mantissa * power;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (mantissa === 2.5 ? 1 : 0));
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-6; k++) {
    ticks.push({ value: k * step, text: (k * step).toFixed(decimals) });
  }
  return ticks;
}

// Every how many labels one is drawn: 1, 2, 5, 10, 20, 50, ... so the ones drawn sit at round positions.
function every(n) {
  if (n <= 1) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(n)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= n);
}

function shortLabel(text) {
  return text.length > LONGEST_LABEL ? text.slice(0, LONGEST_LABEL - 1) + "…" : text;
}

function wrap(ctx, text, size, width) {
  if (!text) return [];
  ctx.font = `${size}px ${FONT}`;
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) { lines.push(line); line = word; } else line = next;
  }
  return line ? [...lines, line] : lines;
}

// Two painters with the same calls: the canvas on screen, and an SVG document for the export button.
function canvasPainter(ctx, texts) {
  return {
    rect(x, y, w, h, color) { ctx.fillStyle = color; ctx.fillRect(x, y, w, h); },
    outline(x, y, w, h, color, width, dash) {
      ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash ? [3, 3] : []);
      ctx.strokeRect(x, y, w, h); ctx.setLineDash([]);
    },
    text(s, x, y, { size = 12, align = "left", baseline = "alphabetic", angle = 0, weight = "", color = INK } = {}) {
      ctx.save(); ctx.translate(x, y); ctx.rotate(angle * Math.PI / 180);
      ctx.fillStyle = color; ctx.font = `${weight} ${size}px ${FONT}`; ctx.textAlign = align; ctx.textBaseline = baseline;
      ctx.fillText(s, 0, 0);
      if (texts) texts.push({ text: s, size, x, y, align, baseline, angle, width: ctx.measureText(s).width });
      ctx.restore();
    },
  };
}

function svgPainter(parts) {
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
  const anchor = { left: "start", right: "end", center: "middle" };
  const shift = { middle: "0.35em", top: "0.8em", alphabetic: "0" };
  return {
    rect(x, y, w, h, color) { parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${color}"/>`); },
    outline(x, y, w, h, color, width, dash) {
      parts.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="none" stroke="${color}" stroke-width="${width}"${dash ? ' stroke-dasharray="3,3"' : ""}/>`);
    },
    text(s, x, y, { size = 12, align = "left", baseline = "alphabetic", angle = 0, weight = "", color = INK } = {}) {
      parts.push(`<text transform="translate(${x},${y}) rotate(${angle})" dy="${shift[baseline]}" text-anchor="${anchor[align]}" ` +
        `font-family='${FONT}' font-size="${size}"${weight ? ` font-weight="${weight}"` : ""} fill="${color}">${esc(s)}</text>`);
    },
  };
}

// The four corners of a drawn text on the page (for aeTexts): its box before rotation, turned about its anchor.
function corners(t, origin) {
  const x0 = t.align === "right" ? -t.width : t.align === "center" ? -t.width / 2 : 0;
  const y0 = t.baseline === "middle" ? -t.size / 2 : t.baseline === "top" ? 0 : -0.8 * t.size;
  const a = t.angle * Math.PI / 180, cos = Math.cos(a), sin = Math.sin(a);
  return [[x0, y0], [x0 + t.width, y0], [x0 + t.width, y0 + t.size], [x0, y0 + t.size]].map(([x, y]) =>
    [origin.x + t.x + x * cos - y * sin, origin.y + t.y + x * sin + y * cos]);
}

function render({ model, el }) {
  el.classList.add("ae-heatmap");
  const canvas = document.createElement("canvas");
  const overlay = document.createElement("canvas"); // the hovered cell and its labels, over the map
  overlay.className = "ae-heatmap-overlay";
  const tip = document.createElement("div");
  tip.className = "ae-heatmap-tip";
  el.append(canvas, overlay, tip);
  let geometry = null; // where the cells are, in CSS pixels of the canvas
  let texts = [];

  function describe() {
    const name = model.get("name");
    if (name) el.dataset.name = name;
    el.layout = { meta: name, title: { text: model.get("title") }, shapes: model.get("outlines"),
                  empty: model.get("empty_text"), stale: model.get("stale") };
    el.data = [{ type: "heatmap", x: model.get("x"), y: model.get("y"), z: matrixOf(model) }];
  }

  function sizes() {
    const big = !!el.closest(".ae-present"), grow = big ? PRESENT : 1;
    return { big, tick: Math.round(Math.max(model.get("tick_size") * grow, big ? 15 : 0)), title: Math.round(17 * grow),
             axis: Math.round(14 * grow), bar: Math.round(11 * grow), height: Math.round(model.get("height") * (big ? 1.3 : 1)) };
  }

  function draw(painter = null) { // long: one pass that lays out and paints the whole map, as plotly would
    describe();
    const z = el.data[0].z, xs = model.get("x").map(shortLabel), ys = model.get("y").map(shortLabel);
    const rows = z.length, cols = rows ? z[0].length : 0;
    const size = sizes(), tick = size.tick;
    const fixed = model.get("width");
    const width = fixed ? Math.min(Math.round(fixed * (size.big ? 1.2 : 1)), el.clientWidth || Infinity) : el.clientWidth || 600;
    const empty = !rows || !cols;
    const ctx = canvas.getContext("2d");
    const emptyLines = empty ? wrap(ctx, model.get("empty_text"), size.axis, width - 16) : [];
    const height = empty ? Math.round(Math.max(2, emptyLines.length) * size.axis * 1.3 + 16) : size.height;
    if (!painter) {
      const ratio = window.devicePixelRatio || 1;
      for (const c of [canvas, overlay]) {
        c.width = Math.round(width * ratio);
        c.height = Math.round(height * ratio);
        c.style.width = `${width}px`;
        c.style.height = `${height}px`;
      }
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      texts = [];
      painter = canvasPainter(ctx, texts);
    }
    painter.rect(0, 0, width, height, "#fff");
    if (empty) { // nothing yet: a line saying what will appear here, instead of empty axes
      geometry = null;
      emptyLines.forEach((line, i) => painter.text(line, 8, size.axis * (1.4 + 1.3 * i), { size: size.axis, color: "#57606a" }));
      return;
    }
    ctx.font = `${tick}px ${FONT}`;
    const yLabelWidth = Math.max(0, ...ys.map((s) => ctx.measureText(s).width));
    const xLabelWidth = Math.max(0, ...xs.map((s) => ctx.measureText(s).width));
    const angle = model.get("x_angle"), turn = Math.abs(angle) * Math.PI / 180;
    const xLabelHeight = angle ? Math.sin(turn) * xLabelWidth + Math.cos(turn) * tick + 4 : tick + 4;
    const zmin = model.get("zmin"), zmax = model.get("zmax"), span = zmax - zmin || 1;
    const ticks = niceTicks(zmin, zmax);
    let bar = 0;
    if (model.get("colorbar_title")) {
      ctx.font = `${size.bar}px ${FONT}`;
      const tickWidth = Math.max(...ticks.map((t) => ctx.measureText(t.text).width));
      bar = 18 + Math.max(12 + 4 + tickWidth, ctx.measureText(model.get("colorbar_title")).width) + 8;
    }
    // The title keeps clear of the colour bar's column, whose title stands level with the title's last line.
    const titleLines = wrap(ctx, model.get("title"), size.title, width - 16 - bar);
    const axisTitle = model.get("y_title") ? size.axis + 10 : 0;
    // A label turned by the angle reaches left of its column by its width times the cosine: room for the first.
    const left = Math.max(8 + axisTitle + yLabelWidth + 6, angle ? Math.cos(turn) * xLabelWidth + 4 : 0);
    const top = Math.max(titleLines.length ? 10 + titleLines.length * size.title * 1.25 + 4 : 10,
                         bar ? size.bar * 1.3 + 12 : 0);
    const bottom = xLabelHeight + 8 + (model.get("x_title") ? size.axis + 12 : 0);
    const plotW = Math.max(20, width - left - 12 - bar), plotH = Math.max(20, height - top - bottom);
    const cw = plotW / Math.max(1, cols), ch = plotH / Math.max(1, rows);
    geometry = { left, top, cw, ch, rows, cols, width, height, tick };
    const scale = model.get("colorscale").map(([p, c]) => [p, parseColor(c)]);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        // a hair wider than the cell, so that no seam shows between neighbours
        painter.rect(left + c * cw, top + r * ch, cw + 0.5, ch + 0.5, colorAt(scale, (z[r][c] - zmin) / span));
      }
    }
    // Labels far enough apart not to touch (a turned label needs its height over the sine of its angle).
    const everyY = every(Math.ceil(tick * 1.25 / ch));
    const everyX = every(Math.ceil((angle ? tick * 1.3 / Math.sin(turn) : xLabelWidth + 8) / cw));
    geometry.everyX = everyX; geometry.everyY = everyY;
    ys.forEach((s, r) => {
      if (r % everyY === 0) painter.text(s, left - 6, top + (r + 0.5) * ch, { size: tick, align: "right", baseline: "middle" });
    });
    xs.forEach((s, c) => {
      if (c % everyX === 0) {
        painter.text(s, left + (c + 0.5) * cw, top + plotH + 6, angle ? { size: tick, align: "right", baseline: "middle", angle }
          : { size: tick, align: "center", baseline: "top" });
      }
    });
    if (model.get("x_title")) painter.text(model.get("x_title"), left + plotW / 2, height - 8, { size: size.axis, align: "center" });
    if (model.get("y_title")) painter.text(model.get("y_title"), 8 + size.axis / 2, top + plotH / 2, { size: size.axis, align: "center", baseline: "middle", angle: -90 });
    titleLines.forEach((line, i) => painter.text(line, 8, 10 + size.title * (1 + 1.25 * i), { size: size.title }));
    // outlines, in cell units: x0..x1 columns, y0..y1 rows, cell edges at -0.5, 0.5, ...
    for (const o of model.get("outlines")) {
      painter.outline(left + (o.x0 + 0.5) * cw, top + (o.y0 + 0.5) * ch, (o.x1 - o.x0) * cw, (o.y1 - o.y0) * ch,
        o.color || "#d62728", o.width || 2, o.dash === "dot");
    }
    if (bar) {
      const bx = left + plotW + 18, bw = 12, by = top, bh = Math.min(plotH, 260), steps = 64;
      for (let i = 0; i < steps; i++) painter.rect(bx, by + bh * i / steps, bw, bh / steps + 0.5, colorAt(scale, 1 - (i + 0.5) / steps));
      for (const t of ticks) {
        painter.text(t.text, bx + bw + 4, by + bh - bh * (t.value - zmin) / span, { size: size.bar, baseline: "middle" });
      }
      painter.text(model.get("colorbar_title"), bx, by - 6 - size.bar * 0.3, { size: size.bar });
    }
    if (model.get("stale")) { // the map no longer matches the text: greyed, and said so
      painter.rect(left, top, plotW, plotH, "rgba(255,255,255,0.7)");
      const lines = wrap(ctx, model.get("stale"), size.axis, plotW - 24);
      const boxH = lines.length * size.axis * 1.3 + 12;
      ctx.font = `${size.axis}px ${FONT}`;
      const boxW = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 20;
      const bx = left + (plotW - boxW) / 2, by = top + Math.min(plotH / 2, 80) - boxH / 2;
      painter.rect(bx, by, boxW, boxH, "#fff8c5");
      painter.outline(bx, by, boxW, boxH, "#9a6700", 1, false);
      lines.forEach((line, i) => painter.text(line, left + plotW / 2, by + 6 + size.axis * (1 + 1.3 * i) - size.axis * 0.2,
        { size: size.axis, align: "center", color: "#6e4a00" }));
    }
  }

  function cellAt(event) {
    if (!geometry) return null;
    const rect = canvas.getBoundingClientRect();
    const c = Math.floor((event.clientX - rect.left - geometry.left) / geometry.cw);
    const r = Math.floor((event.clientY - rect.top - geometry.top) / geometry.ch);
    return r >= 0 && c >= 0 && r < geometry.rows && c < geometry.cols ? [r, c] : null;
  }

  // The hovered cell outlined, with its row's and column's labels written out (long axes draw only some).
  function highlight(cell) {
    const ctx = overlay.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    if (!cell || !geometry) return;
    const [r, c] = cell, { left, top, cw, ch, tick } = geometry;
    const painter = canvasPainter(ctx, null);
    painter.outline(left + c * cw, top + r * ch, Math.max(cw, 2), Math.max(ch, 2), "#111", 1.5, false);
    const label = (text, x, y, options) => {
      ctx.font = `bold ${tick}px ${FONT}`;
      const w = ctx.measureText(text).width + 6;
      ctx.save(); ctx.translate(x, y); ctx.rotate((options.angle || 0) * Math.PI / 180);
      const x0 = options.align === "right" ? -w + 3 : -w / 2;
      ctx.fillStyle = "rgba(255,255,255,0.95)"; ctx.fillRect(x0 - 3, -tick * 0.65, w, tick * 1.3);
      ctx.restore();
      painter.text(text, x, y, { ...options, size: tick, weight: "bold" });
    };
    const angle = model.get("x_angle");
    label(shortLabel(model.get("y")[r] || ""), left - 6, top + (r + 0.5) * ch, { align: "right", baseline: "middle" });
    const xText = shortLabel(model.get("x")[c] || ""), xAt = left + (c + 0.5) * cw, yAt = top + geometry.rows * ch + 6;
    label(xText, xAt, angle ? yAt : yAt + tick * 0.5, angle ? { align: "right", baseline: "middle", angle } : { align: "center", baseline: "middle" });
  }

  canvas.addEventListener("mousemove", (event) => {
    const cell = cellAt(event);
    highlight(cell);
    if (!cell) { tip.style.display = "none"; return; }
    const [r, c] = cell;
    const value = el.data[0].z[r][c];
    const values = { x: model.get("x")[c], y: model.get("y")[r], z: value.toFixed(model.get("hover_decimals")) };
    // Labels are text (a token may be "<img onerror=...>"): only the template's own <br> become line breaks.
    const lines = model.get("hover").split("<br>").map((line) => fill(line, values));
    tip.replaceChildren(...lines.flatMap((line, i) => (i ? [document.createElement("br"), line] : [line])));
    tip.style.fontSize = `${sizes().big ? 17 : 12}px`;
    tip.style.display = "block";
    // Fixed, so no box around the map clips it; on the cursor's other side near the window's edge. A page box
    // with `contain` (Voila's scrolling panel) is where "fixed" is measured from: the shift below corrects for it.
    const w = tip.offsetWidth, h = tip.offsetHeight;
    const x = Math.max(2, event.clientX + 14 + w > window.innerWidth - 4 ? event.clientX - 14 - w : event.clientX + 14);
    const y = Math.max(2, event.clientY + 10 + h > window.innerHeight - 4 ? event.clientY - 10 - h : event.clientY + 10);
    tip.style.left = `${x}px`;
    tip.style.top = `${y}px`;
    const placed = tip.getBoundingClientRect();
    tip.style.left = `${2 * x - placed.left}px`;
    tip.style.top = `${2 * y - placed.top}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; highlight(null); });
  canvas.addEventListener("click", (event) => {
    const cell = cellAt(event);
    if (cell) model.send({ event: "click", row: cell[0], col: cell[1] });
  });

  // For the page: the plot area on screen, the texts drawn, and the figure as PNG or SVG (the export buttons).
  el.aePlotArea = () => {
    const rect = canvas.getBoundingClientRect();
    if (!geometry) return { x: rect.left, y: rect.top, width: 0, height: 0 };
    return { x: rect.left + geometry.left, y: rect.top + geometry.top, width: geometry.cw * geometry.cols,
             height: geometry.ch * geometry.rows };
  };
  el.aeTexts = () => {
    const rect = canvas.getBoundingClientRect();
    const box = { left: rect.left, top: rect.top, right: rect.right, bottom: rect.bottom };
    return texts.map((t) => ({ text: t.text, size: t.size, corners: corners(t, { x: rect.left, y: rect.top }), box }));
  };
  el.aeDownload = (format, filename) => {
    const link = document.createElement("a");
    link.download = `${filename}.${format}`;
    if (format === "svg") {
      const parts = [];
      draw(svgPainter(parts));
      const { width, height } = geometry || { width: canvas.width, height: canvas.height };
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join("")}</svg>`;
      link.href = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    } else {
      link.href = canvas.toDataURL("image/png");
    }
    document.body.append(link);
    link.click();
    link.remove();
  };

  let queued = false;
  const redraw = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; draw(); });
  };
  model.on("change", redraw);
  window.addEventListener("ae-present", redraw);
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    if (el.clientWidth && el.clientWidth !== lastWidth) { lastWidth = el.clientWidth; redraw(); }
  });
  observer.observe(el);
  draw();
  return () => { observer.disconnect(); model.off("change", redraw); window.removeEventListener("ae-present", redraw); };
}

export default { render };
