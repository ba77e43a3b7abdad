// The "present" switch: large text, maps and click targets for a projector. It puts the class `ae-present` on the
// box it serves, the dashboard or a panel of show() (the kernel does too, for pages that connect later), and tells
// every figure to draw itself again.
function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button widget-toggle-button ae-present-switch";
  button.title = "larger text, maps and buttons, for a projector (in links: present=1)";
  el.append(button);
  const show = () => {
    const on = model.get("on");
    button.textContent = on ? "Present: on" : "Present";
    button.classList.toggle("mod-active", on);
    const app = el.closest(".ae-presentable");
    if (app) app.classList.toggle("ae-present", on);
    window.dispatchEvent(new Event("ae-present"));
  };
  button.addEventListener("click", () => { model.set("on", !model.get("on")); model.save_changes(); });
  model.on("change:on", show);
  show();
  return () => model.off("change:on", show);
}
export default { render };
