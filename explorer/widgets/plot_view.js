// A plotly figure drawn with plotly.js, loaded once per page.
// The figure travels as two JSON strings (data and layout), so a page that connects late gets the figure as it
// is now, and an update that leaves the layout alone sends only the data. Plotly.react redraws in place.
// plotly.js comes from the Voila template's static folder (one cached file per page, which the template starts
// loading before any widget exists); where the page cannot reach it, the kernel sends it once over this comm.
// Inside an element with the class `ae-present` (the dashboard's "present" switch) every text is drawn larger and
// a figure of a fixed height taller, for a projector. A figure with no traces shows `empty_text` instead of
// empty axes, and `stale` greys a figure that no longer matches its text, saying why.

const TYPED = { f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
  u2: Uint16Array, i1: Int8Array, u1: Uint8Array, u1c: Uint8ClampedArray };

// plotly.py writes numpy arrays as {dtype, bdata, shape}; plain arrays keep gd.data readable (hover, export, tests).
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (typeof value.bdata === "string" && TYPED[value.dtype]) {
      const bytes = Uint8Array.from(atob(value.bdata), (c) => c.charCodeAt(0));
      const flat = Array.from(new TYPED[value.dtype](bytes.buffer));
      const shape = String(value.shape || flat.length).split(",").map(Number);
      if (shape.length < 2) return flat;
      const rows = [];
      for (let r = 0; r < shape[0]; r++) rows.push(flat.slice(r * shape[1], (r + 1) * shape[1]));
      return rows;
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

function baseUrl() {
  const config = document.getElementById("jupyter-config-data");
  try {
    return (config && JSON.parse(config.textContent).baseUrl) || "/";
  } catch (error) {
    return "/";
  }
}

function addScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    // plotly.js registers itself with an AMD loader when one is on the page; it should be a plain global here.
    const define = window.define;
    window.define = undefined;
    script.src = src;
    script.onload = () => { window.define = define; window.Plotly ? resolve(window.Plotly) : reject(new Error("no Plotly")); };
    script.onerror = () => { window.define = define; reject(new Error(`cannot load ${src}`)); };
    document.head.appendChild(script);
  });
}

function fromKernel(model) {
  return new Promise((resolve, reject) => {
    const listen = (message, buffers) => {
      if (!message || message.event !== "bundle") return;
      model.off("msg:custom", listen);
      if (!buffers || !buffers.length) { reject(new Error("the kernel sent no plotly.js")); return; }
      const blob = new Blob([buffers[0]], { type: "text/javascript" });
      addScript(URL.createObjectURL(blob)).then(resolve, reject);
    };
    model.on("msg:custom", listen);
    model.send({ event: "bundle" });
  });
}

function plotly(model) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__aePlotly) {
    // Our Voila template starts loading plotly.js with the page (__aePlotlyEarly); elsewhere it is loaded now.
    const loading = window.__aePlotlyEarly || addScript(baseUrl() + model.get("bundle"));
    window.__aePlotly = loading.catch(() => fromKernel(model));
    window.__aePlotly.catch(() => { window.__aePlotly = null; });
  }
  return window.__aePlotly;
}

const PRESENT = 1.4;  // how much larger texts are drawn in present mode

function larger(font, least, base = 12) {
  return { ...(font || {}), size: Math.max(least, Math.round(((font && font.size) || base) * PRESENT)) };
}

// The figure as a projector needs it: every font larger (at least 14 px), axes given room for their labels.
function presentFigure(layout, data) {
  layout.font = larger(layout.font, 16);
  const title = typeof layout.title === "string" ? { text: layout.title } : layout.title;
  if (title) layout.title = { ...title, font: larger(title.font, 20, 17) };
  for (const key of Object.keys(layout)) {
    if (!/^[xy]axis\d*$/.test(key)) continue;
    const axis = layout[key];
    axis.tickfont = larger(axis.tickfont, 14);
    if (axis.title) {
      axis.title = typeof axis.title === "string" ? { text: axis.title } : axis.title;
      axis.title.font = larger(axis.title.font, 16, 14);
    }
    axis.automargin = true;
  }
  (layout.annotations || []).forEach((note) => { note.font = larger(note.font, 14); });
  layout.legend = { ...(layout.legend || {}), font: larger((layout.legend || {}).font, 15) };
  layout.hoverlabel = { ...(layout.hoverlabel || {}), font: larger((layout.hoverlabel || {}).font, 16) };
  if (layout.height) layout.height = Math.round(layout.height * 1.3);
  if (layout.margin) {
    for (const side of ["l", "r", "t", "b"]) if (layout.margin[side]) layout.margin[side] = Math.round(layout.margin[side] * 1.3);
  }
  for (const trace of data) {
    if (trace.colorbar) {
      trace.colorbar = { ...trace.colorbar, tickfont: larger(trace.colorbar.tickfont, 14) };
      if (trace.colorbar.title) trace.colorbar.title = { ...trace.colorbar.title, font: larger(trace.colorbar.title.font, 15) };
    }
    if (trace.textfont) trace.textfont = larger(trace.textfont, 14);
  }
}

function render({ model, el }) {
  el.classList.add("ae-plot");
  const graph = document.createElement("div");
  const note = document.createElement("div");  // what will appear here, while there is nothing to draw
  note.className = "ae-plot-empty";
  const stale = document.createElement("div");  // why the figure is greyed
  stale.className = "ae-plot-stale";
  el.append(note, graph, stale);
  let listening = false;
  let fixedWidth = false;
  let drawing = Promise.resolve();

  const draw = () => {
    drawing = drawing.then(async () => {
      const Plotly = await plotly(model);
      const data = decode(JSON.parse(model.get("data_json") || "[]"));
      const layout = decode(JSON.parse(model.get("layout_json") || "{}"));
      layout.meta = model.get("name") || layout.meta;
      const empty = !data.length && model.get("empty_text");
      note.textContent = empty ? model.get("empty_text") : "";
      note.style.display = empty ? "block" : "none";
      graph.style.display = empty ? "none" : "block";
      graph.style.opacity = model.get("stale") ? "0.3" : "1";
      stale.textContent = model.get("stale");
      stale.style.display = model.get("stale") && !empty ? "block" : "none";
      if (el.closest(".ae-present")) presentFigure(layout, data);
      // A figure with a width of its own (a grid of small heatmaps) is at most as wide as its box.
      if (layout.width && el.clientWidth && layout.width > el.clientWidth) layout.width = el.clientWidth;
      fixedWidth = !!layout.width;
      // The graph's own box holds the figure's height: plotly's responsive resize sizes its drawing to 100% of it,
      // and a box of no height let the figure spill over what follows.
      graph.style.height = layout.height ? `${layout.height}px` : "";
      await Plotly.react(graph, data, layout, { displaylogo: false, responsive: true });
      if (!listening) {
        listening = true;
        graph.on("plotly_click", (event) => {
          const points = event.points.map((p) => ({ curve: p.curveNumber, index: p.pointIndex ?? p.pointNumber,
            x: p.x, y: p.y }));
          model.send({ event: "click", points });
        });
      }
    }).catch((error) => console.warn("[attention explorer] figure not drawn:", error));
  };
  model.on("change:data_json", draw);
  model.on("change:layout_json", draw);
  model.on("change:empty_text", draw);
  model.on("change:stale", draw);
  window.addEventListener("ae-present", draw);
  draw();
  // plotly's `responsive` follows the window only. A figure drawn before its box had its width (a tab being
  // built, a notebook output still laid out, controls wrapping above the figures) kept plotly's default
  // 700 px and ran past a narrow column: follow the box's own width instead.
  let lastWidth = 0;
  const observer = new ResizeObserver(() => {
    const width = el.clientWidth;
    if (!width || width === lastWidth) return;
    lastWidth = width;
    if (fixedWidth) { draw(); return; }  // its width is worked out again against the box
    drawing = drawing.then(() => {
      if (window.Plotly && graph._fullLayout) return window.Plotly.Plots.resize(graph);
    }).catch(() => {});
  });
  observer.observe(el);
  return () => {
    observer.disconnect();
    model.off("change:data_json", draw);
    model.off("change:layout_json", draw);
    model.off("change:empty_text", draw);
    model.off("change:stale", draw);
    window.removeEventListener("ae-present", draw);
    if (window.Plotly) window.Plotly.purge(graph);
  };
}

export default { render };
