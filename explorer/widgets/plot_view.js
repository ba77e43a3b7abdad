// A plotly figure drawn with plotly.js, loaded once per page.
// The figure travels as two JSON strings (data and layout), so a page that connects late gets the figure as it
// is now, and an update that leaves the layout alone sends only the data. Plotly.react redraws in place.
// plotly.js comes from the Voila template's static folder (one cached file per page, which the template starts
// loading before any widget exists); where the page cannot reach it, the kernel sends it once over this comm.

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

function render({ model, el }) {
  el.classList.add("ae-plot");
  const graph = document.createElement("div");
  el.append(graph);
  let listening = false;
  let fixedWidth = false;
  let drawing = Promise.resolve();

  const draw = () => {
    drawing = drawing.then(async () => {
      const Plotly = await plotly(model);
      const data = decode(JSON.parse(model.get("data_json") || "[]"));
      const layout = decode(JSON.parse(model.get("layout_json") || "{}"));
      layout.meta = model.get("name") || layout.meta;
      // A figure with a width of its own (a grid of small heatmaps) is at most as wide as its box.
      if (layout.width && el.clientWidth && layout.width > el.clientWidth) layout.width = el.clientWidth;
      fixedWidth = !!layout.width;
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
    if (window.Plotly) window.Plotly.purge(graph);
  };
}

export default { render };
