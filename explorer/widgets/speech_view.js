// The spectrogram, the picked token's cross-attention over it, and the words along the time axis.
// A click on a word plays its stretch of the audio and tells the kernel which word it was; hovering says the time and
// the weight there. Inside `ae-present` (the "present" switch) every text is drawn larger, and the element lists
// its texts (`aeTexts()`, as HeatmapView does) so a test can tell clipped, overlapping or small labels.
const FONT = '"Open Sans", verdana, arial, sans-serif';
const INK = "#2a3f5f";
const VEIL = [255, 127, 14];  // the attention's orange, over the spectrogram's greys
const PICK = "#d62728";
const PRESENT = 1.4;  // how much larger texts are drawn in present mode

// A title in lines no wider than `width` (a long one would run off the canvas).
function wrapped(ctx, text, size, width) {
  ctx.font = `${size}px ${FONT}`;
  const lines = [];
  for (const word of (text || "").split(" ")) {
    const next = lines.length ? `${lines[lines.length - 1]} ${word}` : word;
    if (lines.length && ctx.measureText(next).width <= width) lines[lines.length - 1] = next; else lines.push(word);
  }
  return lines.filter((line) => line);
}

// The four corners of a drawn text relative to the canvas (turned by `angle` degrees about its anchor).
function textCorners(t) {
  const x0 = t.align === "right" ? -t.width : t.align === "center" ? -t.width / 2 : 0;
  const y0 = t.baseline === "middle" ? -t.size / 2 : -0.8 * t.size;
  const a = t.angle * Math.PI / 180, cos = Math.cos(a), sin = Math.sin(a);
  return [[x0, y0], [x0 + t.width, y0], [x0 + t.width, y0 + t.size], [x0, y0 + t.size]].map(([x, y]) =>
    [t.x + x * cos - y * sin, t.y + x * sin + y * cos]);
}

function floats(view) {
  if (!view || !view.byteLength) return new Float32Array(0);
  return new Float32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

function render({ model, el }) {
  el.classList.add("ae-speech-view", "ae-heatmap");
  const canvas = document.createElement("canvas");
  const tip = document.createElement("div");
  tip.className = "ae-heatmap-tip";
  el.append(canvas, tip);
  let geometry = null, audio = null, audioBytes = null, decoded = null, texts = [];

  function describe() {
    const name = model.get("name");
    if (name) el.dataset.name = name;
    const words = model.get("words");
    el.layout = { meta: name, title: { text: model.get("title") }, picked: model.get("picked") };
    el.data = [{ type: "speech", x: words.map((w) => w.text), y: words.map((w) => [w.start, w.end]),
                 z: [Array.from(floats(model.get("attention")), (v) => Math.round(v * 1e4) / 1e4)] }];
  }

  function draw() {
    describe();
    const grow = el.closest(".ae-present") ? PRESENT : 1, big = (size) => Math.round(size * grow);
    const width = el.clientWidth || 700, ratio = window.devicePixelRatio || 1;
    const measure = canvas.getContext("2d");
    const titleLines = wrapped(measure, model.get("title"), big(14), width - 16);
    const left = big(46), right = 12, top = 14 + titleLines.length * big(14) * 1.25, strip = big(50), axis = big(30);
    const plotH = Math.max(40, model.get("height") - 34 - 50 - 30);  // the spectrogram keeps its height
    const height = top + plotH + strip + axis, plotW = Math.max(40, width - left - right);
    canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, width, height);
    const seconds = model.get("seconds") || 1;
    geometry = { left, top, plotW, plotH, strip, seconds, grow };
    texts = [];
    const text = (s, x, y, { size = 12, align = "left", baseline = "alphabetic", color = INK, angle = 0 } = {}) => {
      size = big(size);
      ctx.fillStyle = color; ctx.font = `${size}px ${FONT}`; ctx.textAlign = align; ctx.textBaseline = baseline;
      ctx.fillText(s, x, y);
      if (!angle) texts.push({ text: s, size, x, y, align, baseline, angle, width: ctx.measureText(s).width });
    };
    titleLines.forEach((line, i) => text(line, 8, 10 + big(14) * (1 + 1.25 * i), { size: 14 }));
    const [bins, cols] = model.get("mel_shape");
    const mel = floats(model.get("mel"));
    const [low, high] = model.get("mel_range");
    if (bins && cols) {  // the spectrogram: loud is dark
      const image = ctx.createImageData(cols, bins);
      for (let r = 0; r < bins; r++) {
        for (let c = 0; c < cols; c++) {
          const t = Math.min(1, Math.max(0, (mel[r * cols + c] - low) / (high - low)));
          const v = Math.round(255 - 215 * t), i = ((bins - 1 - r) * cols + c) * 4;
          image.data[i] = v; image.data[i + 1] = v; image.data[i + 2] = v; image.data[i + 3] = 255;
        }
      }
      const off = document.createElement("canvas");
      off.width = cols; off.height = bins;
      off.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(off, left, top, plotW, plotH);
    }
    const attention = floats(model.get("attention"));
    if (attention.length) {  // the veil: each 20 ms frame as opaque as its weight against the largest
      const peak = Math.max(...attention, 1e-6), fw = plotW / attention.length;
      attention.forEach((v, i) => {
        ctx.fillStyle = `rgba(${VEIL.join(",")},${(0.75 * v / peak).toFixed(3)})`;
        ctx.fillRect(left + i * fw, top, fw + 0.5, plotH);
      });
      ctx.strokeStyle = "rgb(200,80,0)"; ctx.lineWidth = 1.5; ctx.beginPath();
      attention.forEach((v, i) => {
        const x = left + (i + 0.5) * fw, y = top + plotH - (plotH - 4) * v / peak;
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
    }
    ctx.strokeStyle = "#8a9bb3"; ctx.lineWidth = 1; ctx.strokeRect(left, top, plotW, plotH);
    ctx.save(); ctx.translate(big(16), top + plotH / 2); ctx.rotate(-Math.PI / 2);
    text("mel band (low to high)", 0, 0, { size: 11, align: "center", baseline: "middle", angle: -90 });
    ctx.restore();
    const band = ctx.measureText("mel band (low to high)").width;
    texts.push({ text: "mel band (low to high)", size: big(11), x: big(16), y: top + plotH / 2, align: "center",
                 baseline: "middle", angle: -90, width: band });
    const words = model.get("words"), picked = model.get("picked"), y0 = top + plotH + 4, lane = (strip - 10) / 2;
    const ends = [-Infinity, -Infinity];  // where each lane's last label ends: a label never covers the one before
    geometry.boxes = words.map((w, i) => {  // the words in two lanes, so a short word's label has room
      const x = left + plotW * w.start / seconds, x1 = Math.max(x + 2, left + plotW * w.end / seconds);
      const y = y0 + (i % 2) * lane, mine = i === picked;
      ctx.font = `${big(12)}px ${FONT}`;
      const label = ctx.measureText(w.text).width + 8;
      const from = Math.max(Math.min(x, (x + x1) / 2 - label / 2), ends[i % 2] + 2, left);
      const box = { x: from, y, width: Math.max(x1 - from, label), height: lane - 2 };
      const middle = box.x + box.width / 2;
      ends[i % 2] = box.x + box.width;
      ctx.fillStyle = mine ? "rgba(214,39,40,0.15)" : (i % 2 ? "#eef3fb" : "#e1eaf7");
      ctx.fillRect(box.x, y, box.width, box.height);
      ctx.fillStyle = mine ? PICK : "#4a6fa5";
      ctx.fillRect(x, y + box.height - 3, x1 - x, 3);  // the word's own stretch of time
      ctx.strokeStyle = mine ? PICK : "#8a9bb3"; ctx.lineWidth = mine ? 2 : 1;
      ctx.strokeRect(box.x, y, box.width, box.height);
      text(w.text, middle, y + box.height / 2 - 1, { size: 12, align: "center", baseline: "middle",
        color: mine ? PICK : INK });
      return box;
    });
    const step = (seconds > 12 ? 2 : seconds > 5 ? 1 : 0.5) * (plotW / seconds < 60 * grow ? 2 : 1), ya = y0 + strip - 8;
    for (let t = 0; t <= seconds + 1e-6; t += step) {
      const x = left + plotW * t / seconds;
      ctx.fillStyle = "#8a9bb3"; ctx.fillRect(x, ya, 1, 5);
      text(`${t.toFixed(step < 1 ? 1 : 0)} s`, x, ya + 5 + big(11), { size: 11, align: "center" });
    }
    text("time (click a word to hear it)", left + plotW, height - 4, { size: 11, align: "right" });
  }

  function wordAt(event) {
    if (!geometry || !geometry.boxes) return -1;
    const rect = canvas.getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
    return geometry.boxes.findIndex((b) => x >= b.x && x <= b.x + b.width && y >= b.y && y <= b.y + b.height);
  }

  async function play(word) {
    const bytes = model.get("audio");
    if (!bytes || !bytes.byteLength) return;
    if (audioBytes !== bytes) {
      audio = audio || new AudioContext();
      decoded = await audio.decodeAudioData(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      audioBytes = bytes;
    }
    const source = audio.createBufferSource();
    source.buffer = decoded;
    source.connect(audio.destination);
    source.start(0, word.start, Math.max(0.05, word.end - word.start));
  }

  canvas.addEventListener("mousemove", (event) => {  // the time under the cursor and the weight there
    const rect = canvas.getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
    const g = geometry, attention = floats(model.get("attention"));
    const word = wordAt(event);
    if (!g || x < g.left || x > g.left + g.plotW || y < g.top || y > g.top + g.plotH + g.strip) {
      tip.style.display = "none";
      return;
    }
    const at = (x - g.left) / g.plotW, lines = [`${(at * g.seconds).toFixed(2)} s`];
    if (word >= 0) lines.push(`'${model.get("words")[word].text}': click to hear it`);
    else if (attention.length) {
      const total = attention.reduce((a, b) => a + b, 0) || 1;
      lines.push(`${(100 * attention[Math.min(attention.length - 1, Math.floor(at * attention.length))] / total)
        .toFixed(1)}% of the attention (20 ms)`);
    }
    tip.replaceChildren(...lines.flatMap((line, i) => (i ? [document.createElement("br"), line] : [line])));
    tip.style.fontSize = `${Math.round(12 * g.grow)}px`;
    tip.style.display = "block";
    // Fixed, on the cursor's other side near the window's edge (shifted for a page box with `contain`).
    const w = tip.offsetWidth, h = tip.offsetHeight;
    const left = Math.max(2, event.clientX + 14 + w > window.innerWidth - 4 ? event.clientX - 14 - w : event.clientX + 14);
    const top = Math.max(2, event.clientY + 10 + h > window.innerHeight - 4 ? event.clientY - 10 - h : event.clientY + 10);
    tip.style.left = `${left}px`; tip.style.top = `${top}px`;
    const placed = tip.getBoundingClientRect();
    tip.style.left = `${2 * left - placed.left}px`; tip.style.top = `${2 * top - placed.top}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("click", (event) => {
    const index = wordAt(event);
    if (index < 0) return;
    model.send({ event: "word", index });
    play(model.get("words")[index]).catch(() => {});  // a page that may not play sound still picks the word
  });

  el.aePlotArea = () => {
    const rect = canvas.getBoundingClientRect();
    return { x: rect.left + geometry.left, y: rect.top + geometry.top, width: geometry.plotW,
             height: geometry.plotH + geometry.strip };
  };
  el.aeTexts = () => {
    const rect = canvas.getBoundingClientRect();
    const box = { left: rect.left, top: rect.top, right: rect.right, bottom: rect.bottom };
    return texts.map((t) => ({ text: t.text, size: t.size, box,
                               corners: textCorners(t).map(([x, y]) => [rect.left + x, rect.top + y]) }));
  };
  el.aeWordBox = (i) => {  // where word ``i`` is on the page (for tests)
    const rect = canvas.getBoundingClientRect(), b = geometry.boxes[i];
    return { x: rect.left + b.x + b.width / 2, y: rect.top + b.y + b.height / 2 };
  };
  el.aeDownload = (format, filename) => {
    const link = document.createElement("a");
    link.download = `${filename}.${format}`;
    const png = canvas.toDataURL("image/png");
    if (format === "svg") {
      const w = canvas.width, h = canvas.height;
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><image href="${png}" width="${w}" height="${h}"/></svg>`;
      link.href = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
    } else {
      link.href = png;
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
  return () => {
    observer.disconnect(); model.off("change", redraw); window.removeEventListener("ae-present", redraw);
    if (audio) audio.close();
  };
}
export default { render };
