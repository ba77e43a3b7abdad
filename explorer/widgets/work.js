// Long work in words a class can follow: a bar (or a moving stripe when the work cannot tell how far it is),
// the seconds so far, the estimate when there is one, and Stop when the work can end early. It appears only
// once the work has run for a second, so quick answers do not flicker.
function render({ model, el }) {
  el.classList.add("ae-work");
  const bar = document.createElement("div");
  bar.className = "ae-work-bar";
  const fill = document.createElement("div");
  fill.className = "ae-work-fill";
  bar.append(fill);
  const words = document.createElement("span");
  words.className = "ae-work-words";
  const stop = document.createElement("button");
  stop.className = "jupyter-button widget-button mod-warning ae-work-stop";
  stop.textContent = "Stop";
  stop.addEventListener("click", () => model.send({ event: "stop" }));
  el.append(bar, words, stop);
  let started = null, timer = null;
  const tick = () => {
    const busy = model.get("busy");
    if (!busy) { started = null; el.style.display = "none"; return; }
    if (started === null) started = Date.now();
    const seconds = (Date.now() - started) / 1000;
    el.style.display = seconds >= 1 ? "flex" : "none";
    const progress = model.get("progress");
    fill.classList.toggle("ae-work-unknown", !(progress > 0));
    fill.style.width = progress > 0 ? `${Math.round(100 * Math.min(1, progress))}%` : "30%";
    const estimate = model.get("estimate");
    words.textContent = `${model.get("label") || "working"}: ${Math.round(seconds)} s` +
      (estimate > 0 ? ` of about ${Math.round(estimate)} s` : "") + (progress > 0 ? ` (${Math.round(100 * progress)}%)` : "");
    stop.style.display = model.get("stoppable") ? "inline-block" : "none";
  };
  const changed = () => {
    if (model.get("busy") && !timer) timer = setInterval(tick, 500);
    if (!model.get("busy") && timer) { clearInterval(timer); timer = null; }
    tick();
  };
  model.on("change", changed);
  changed();
  return () => { model.off("change", changed); if (timer) clearInterval(timer); };
}
export default { render };
