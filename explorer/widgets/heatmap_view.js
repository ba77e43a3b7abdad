// A matrix drawn on one canvas: title, axis labels, colour bar, outlines, hover and click.
// plotly.js recomputes and redraws a whole SVG heatmap for any change (even moving an outline); here an
// update is one canvas repaint. The element carries `layout` and `data` (what is drawn, as plotly's graph
// div would) so the same page-side code can read either kind of figure.
const FONT = '"Open Sans", verdana, arial, sans-serif';
const INK = "#2a3f5f";

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

// Two painters with the same calls: the canvas on screen, and an SVG document for the export button.
function canvasPainter(ctx) {
  return {
    rect(x, y, w, h, color) { ctx.fillStyle = color; ctx.fillRect(x, y, w, h); },
    outline(x, y, w, h, color, width, dash) {
      ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash ? [3, 3] : []);
      ctx.strokeRect(x, y, w, h); ctx.setLineDash([]);
    },
    text(s, x, y, { size = 12, align = "left", baseline = "alphabetic", angle = 0 } = {}) {
      ctx.save(); ctx.translate(x, y); ctx.rotate(angle * Math.PI / 180);
      ctx.fillStyle = INK; ctx.font = `${size}px ${FONT}`; ctx.textAlign = align; ctx.textBaseline = baseline;
      ctx.fillText(s, 0, 0); ctx.restore();
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
    text(s, x, y, { size = 12, align = "left", baseline = "alphabetic", angle = 0 } = {}) {
      parts.push(`<text transform="translate(${x},${y}) rotate(${angle})" dy="${shift[baseline]}" text-anchor="${anchor[align]}" ` +
        `font-family='${FONT}' font-size="${size}" fill="${INK}">${esc(s)}</text>`);
    },
  };
}

function render({ model, el }) {
  el.classList.add("ae-heatmap");
  const canvas = document.createElement("canvas");
  const tip = document.createElement("div");
  tip.className = "ae-heatmap-tip";
  el.append(canvas, tip);
  let geometry = null; // where the cells are, in CSS pixels of the canvas

  function describe() {
    const name = model.get("name");
    if (name) el.dataset.name = name;
    el.layout = { meta: name, title: { text: model.get("title") }, shapes: model.get("outlines") };
    el.data = [{ type: "heatmap", x: model.get("x"), y: model.get("y"), z: matrixOf(model) }];
  }

  function draw(painter = null) {
    describe();
    const z = el.data[0].z, xs = model.get("x"), ys = model.get("y");
    const rows = z.length, cols = rows ? z[0].length : 0;
    const width = model.get("width") || el.clientWidth || 600, height = model.get("height");
    const ctx = canvas.getContext("2d");
    if (!painter) {
      const ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      painter = canvasPainter(ctx);
    }
    const tick = model.get("tick_size");
    ctx.font = `${tick}px ${FONT}`;
    const yLabelWidth = Math.max(0, ...ys.map((s) => ctx.measureText(s).width));
    const xLabelWidth = Math.max(0, ...xs.map((s) => ctx.measureText(s).width));
    const angle = model.get("x_angle");
    const xLabelHeight = Math.abs(Math.sin(angle * Math.PI / 180)) * xLabelWidth + tick + 4;
    const bar = model.get("colorbar_title") ? 80 : 0;
    const left = 8 + (model.get("y_title") ? 22 : 0) + yLabelWidth + 6;
    const top = model.get("title") ? 40 : 10;
    const bottom = xLabelHeight + 8 + (model.get("x_title") ? 24 : 0);
    const plotW = Math.max(20, width - left - 12 - bar), plotH = Math.max(20, height - top - bottom);
    const cw = plotW / Math.max(1, cols), ch = plotH / Math.max(1, rows);
    geometry = { left, top, cw, ch, rows, cols, width, height };
    painter.rect(0, 0, width, height, "#fff");
    const zmin = model.get("zmin"), zmax = model.get("zmax"), span = zmax - zmin || 1;
    const scale = model.get("colorscale").map(([p, c]) => [p, parseColor(c)]);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        // a hair wider than the cell, so that no seam shows between neighbours
        painter.rect(left + c * cw, top + r * ch, cw + 0.5, ch + 0.5, colorAt(scale, (z[r][c] - zmin) / span));
      }
    }
    const everyY = Math.max(1, Math.ceil(tick / ch)), everyX = Math.max(1, Math.ceil(tick / cw));
    ys.forEach((s, r) => {
      if (r % everyY === 0) painter.text(s, left - 6, top + (r + 0.5) * ch, { size: tick, align: "right", baseline: "middle" });
    });
    xs.forEach((s, c) => {
      if (c % everyX === 0) {
        painter.text(s, left + (c + 0.5) * cw, top + plotH + 6, angle ? { size: tick, align: "right", baseline: "middle", angle }
          : { size: tick, align: "center", baseline: "top" });
      }
    });
    if (model.get("x_title")) painter.text(model.get("x_title"), left + plotW / 2, height - 8, { size: 14, align: "center" });
    if (model.get("y_title")) painter.text(model.get("y_title"), 16, top + plotH / 2, { size: 14, align: "center", angle: -90 });
    if (model.get("title")) painter.text(model.get("title"), 8, 26, { size: 17 });
    // outlines, in cell units: x0..x1 columns, y0..y1 rows, cell edges at -0.5, 0.5, ...
    for (const o of model.get("outlines")) {
      painter.outline(left + (o.x0 + 0.5) * cw, top + (o.y0 + 0.5) * ch, (o.x1 - o.x0) * cw, (o.y1 - o.y0) * ch,
        o.color || "#d62728", o.width || 2, o.dash === "dot");
    }
    if (bar) {
      const bx = left + plotW + 18, bw = 12, by = top + 4, bh = Math.min(plotH - 4, 260), steps = 64;
      for (let i = 0; i < steps; i++) painter.rect(bx, by + bh * i / steps, bw, bh / steps + 0.5, colorAt(scale, 1 - (i + 0.5) / steps));
      for (let k = 0; k <= 4; k++) {
        // two significant digits: a long map's pooled colour scale ends near 0.002, which two decimals show as 0
        painter.text(String(parseFloat((zmin + span * k / 4).toPrecision(2))), bx + bw + 4, by + bh - bh * k / 4, { size: 11, baseline: "middle" });
      }
      painter.text(model.get("colorbar_title"), bx - 4, by - 8, { size: 12 });
    }
  }

  function cellAt(event) {
    if (!geometry) return null;
    const rect = canvas.getBoundingClientRect();
    const c = Math.floor((event.clientX - rect.left - geometry.left) / geometry.cw);
    const r = Math.floor((event.clientY - rect.top - geometry.top) / geometry.ch);
    return r >= 0 && c >= 0 && r < geometry.rows && c < geometry.cols ? [r, c] : null;
  }

  canvas.addEventListener("mousemove", (event) => {
    const cell = cellAt(event);
    if (!cell) { tip.style.display = "none"; return; }
    const [r, c] = cell;
    const value = el.data[0].z[r][c];
    const values = { x: model.get("x")[c], y: model.get("y")[r], z: value.toFixed(model.get("hover_decimals")) };
    // Labels are text (a token may be "<img onerror=...>"): only the template's own <br> become line breaks.
    const lines = model.get("hover").split("<br>").map((line) => fill(line, values));
    tip.replaceChildren(...lines.flatMap((line, i) => (i ? [document.createElement("br"), line] : [line])));
    const rect = el.getBoundingClientRect();
    tip.style.left = `${event.clientX - rect.left + 14}px`;
    tip.style.top = `${event.clientY - rect.top + 10}px`;
    tip.style.display = "block";
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("click", (event) => {
    const cell = cellAt(event);
    if (cell) model.send({ event: "click", row: cell[0], col: cell[1] });
  });

  // For the page: the plot area on screen, and the figure as PNG or SVG (the export buttons use these).
  el.aePlotArea = () => {
    const rect = canvas.getBoundingClientRect();
    return { x: rect.left + geometry.left, y: rect.top + geometry.top, width: geometry.cw * geometry.cols,
             height: geometry.ch * geometry.rows };
  };
  el.aeDownload = (format, filename) => {
    const link = document.createElement("a");
    link.download = `${filename}.${format}`;
    if (format === "svg") {
      const parts = [];
      draw(svgPainter(parts));
      const { width, height } = geometry;
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
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    if (!model.get("width") && el.clientWidth && el.clientWidth !== lastWidth) { lastWidth = el.clientWidth; redraw(); }
  });
  observer.observe(el);
  draw();
  return () => { observer.disconnect(); model.off("change", redraw); };
}

export default { render };
