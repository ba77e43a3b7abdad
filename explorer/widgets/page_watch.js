// Tells the kernel that its page is still open: a beat every few seconds, and "bye" when the page goes away,
// so the kernel can stop a training run nobody watches (its page's connection is gone) and then be culled.
function render({ model, el }) {
  el.style.display = "none";
  const view = Math.random().toString(36).slice(2);
  const beat = () => model.send({ event: "beat", view });
  const bye = () => model.send({ event: "bye", view });
  beat();
  const timer = setInterval(beat, model.get("interval") * 1000);
  window.addEventListener("pagehide", bye);
  return () => {
    clearInterval(timer);
    window.removeEventListener("pagehide", bye);
  };
}
export default { render };
