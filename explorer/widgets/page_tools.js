// Small page-side tools: downloads (files made in the kernel, images of figures made in the browser) and
// "Copy link". Everything a user named (file names, labels) is handled as text, never parsed as HTML.

function save(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

function saveImage(target, format, filename) {
  const box = document.querySelector(`.${CSS.escape(target)}`);
  if (!box) return false;
  const map = box.classList.contains("ae-heatmap") ? box : box.querySelector(".ae-heatmap");
  if (map && map.aeDownload) {
    map.aeDownload(format, filename);
    return true;
  }
  const graph = box.classList.contains("js-plotly-plot") ? box : box.querySelector(".js-plotly-plot");
  if (graph && window.Plotly) {
    window.Plotly.downloadImage(graph, { format, filename });
    return true;
  }
  return false;
}

function renderDownloader({ model, el }) {
  el.style.display = "none";
  const listen = (message, buffers) => {
    if (!message) return;
    if (message.event === "file" && buffers && buffers.length) {
      save(new Blob([buffers[0]], { type: message.mime || "application/octet-stream" }), message.filename);
    } else if (message.event === "image") {
      const done = saveImage(message.target, message.format, message.filename);
      model.send({ event: "image-done", ok: done, target: message.target });
    }
  };
  model.on("msg:custom", listen);
  return () => model.off("msg:custom", listen);
}

function renderCopyLink({ model, el }) {
  el.classList.add("ae-copy-link");
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button";
  button.textContent = "Copy link";
  button.title = "a link that opens this exact view";
  const field = document.createElement("input");
  field.readOnly = true;
  field.className = "ae-copy-link-url";
  field.style.cssText = "width: 100%; max-width: 320px; display: none; font-size: 11px; margin-top: 2px;";
  const note = document.createElement("span");
  note.style.cssText = "margin-left: 6px; font-size: 12px; color: #1a7f37;";
  el.append(button, note, field);
  button.addEventListener("click", () => model.send({ event: "link" }));
  const listen = async (message) => {
    if (!message || message.event !== "link") return;
    // A link copied in present mode opens in present mode too.
    const present = el.closest(".ae-present") ? "&present=1" : "";
    const url = window.location.origin + window.location.pathname + message.query + present;
    field.value = url;
    field.style.display = "block";
    field.select();
    try {
      await navigator.clipboard.writeText(url);
      note.textContent = "copied";
    } catch (error) {
      note.textContent = "select the link below and copy it";
    }
  };
  model.on("msg:custom", listen);
  return () => model.off("msg:custom", listen);
}

export default {
  render(context) {
    return context.model.get("tool") === "copy-link" ? renderCopyLink(context) : renderDownloader(context);
  },
};
