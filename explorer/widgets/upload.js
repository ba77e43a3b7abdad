// A file button that checks the file's size in the page: a file over the limit is never sent (the server would
// drop the connection for a message that big), and the page says what the limit is. Names are shown as text.
function render({ model, el }) {
  const input = document.createElement("input");
  input.type = "file";
  input.accept = model.get("accept");
  input.style.display = "none";
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button";
  button.textContent = model.get("description");
  const note = document.createElement("span");
  note.className = "ae-upload-note";
  note.style.marginLeft = "8px";
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    const limit = model.get("max_bytes");
    if (file.size > limit) {
      note.textContent = `${file.name} is ${(file.size / 1e6).toFixed(1)} MB; files up to ${(limit / 1e6).toFixed(1)} MB can be sent.`;
      model.send({ event: "too_big", name: file.name, size: file.size });
      return;
    }
    note.textContent = "";
    const content = await file.arrayBuffer();
    model.send({ event: "file", name: file.name, type: file.type, size: file.size, last_modified: file.lastModified },
               undefined, [content]);
  });
  el.append(button, input, note);
}
export default { render };
