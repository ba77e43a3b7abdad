// Record from the microphone, then send a 16 kHz mono 16-bit WAV (checked against the size limit first).
// Each way it can fail is told in words: the kernel shows them in the tab's status line.
const RATE = 16000;

function wav(samples) {
  const data = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => [...s].forEach((c, i) => data.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); data.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); data.setUint32(16, 16, true); data.setUint16(20, 1, true); data.setUint16(22, 1, true);
  data.setUint32(24, RATE, true); data.setUint32(28, RATE * 2, true); data.setUint16(32, 2, true);
  data.setUint16(34, 16, true); text(36, "data"); data.setUint32(40, samples.length * 2, true);
  samples.forEach((v, i) => data.setInt16(44 + i * 2, Math.max(-1, Math.min(1, v)) * 32767, true));
  return data.buffer;
}

async function toMono16k(blob) {
  const context = new AudioContext();
  const decoded = await context.decodeAudioData(await blob.arrayBuffer());
  context.close();
  const offline = new OfflineAudioContext(1, Math.max(1, Math.ceil(decoded.duration * RATE)), RATE);
  const source = offline.createBufferSource();
  source.buffer = decoded;  // the channels are mixed down to the one output channel
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

function why(error) {
  if (error && (error.name === "NotAllowedError" || error.name === "SecurityError")) {
    return "The page may not use the microphone: allow it for this page (the microphone icon in the address " +
      "bar), then press Record again. You can also upload a recording.";
  }
  if (error && (error.name === "NotFoundError" || error.name === "OverconstrainedError")) {
    return "No microphone was found: plug one in, or upload a recording.";
  }
  if (error && error.name === "NotReadableError") {
    return "The microphone is busy in another program: close it there and press Record again.";
  }
  return `The recording could not be made (${error && error.message ? error.message : error}). Upload a recording instead.`;
}

function render({ model, el }) {
  const button = document.createElement("button");
  button.className = "jupyter-button widget-button mod-danger";
  const note = document.createElement("span");
  note.className = "ae-upload-note ae-mic-note";
  note.style.marginLeft = "8px";
  el.append(button, note);
  let recorder = null, timer = null, started = 0;
  const idle = () => { button.textContent = "\u25cf " + model.get("description"); };
  idle();
  const refuse = (reason) => { note.textContent = ""; idle(); model.send({ event: "refused", reason }); };

  async function start() {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      refuse("Browsers let a page use the microphone only over https:// or from this computer (localhost); this " +
        "page is neither. Ask for the https address, or upload a recording.");
      return;
    }
    if (typeof MediaRecorder === "undefined") {
      refuse("This browser cannot record in the page. Upload a recording instead.");
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      refuse(why(error));
      return;
    }
    const chunks = [];
    recorder = new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
    recorder.addEventListener("stop", async () => {
      stream.getTracks().forEach((track) => track.stop());
      clearInterval(timer);
      recorder = null;
      idle();
      try {
        const samples = await toMono16k(new Blob(chunks, { type: chunks.length ? chunks[0].type : "" }));
        const file = wav(samples);
        const limit = model.get("max_bytes");
        const name = "your recording.wav";
        note.textContent = `${(samples.length / RATE).toFixed(1)} s recorded`;
        if (file.byteLength > limit) {
          model.send({ event: "too_big", name, size: file.byteLength });
          return;
        }
        model.send({ event: "file", name, type: "audio/wav", size: file.byteLength }, undefined, [file]);
      } catch (error) {
        refuse(why(error));
      }
    });
    recorder.start();
    started = Date.now();
    const tick = () => {
      const seconds = (Date.now() - started) / 1000;
      button.textContent = `\u25a0 Stop (${seconds.toFixed(0)} s of ${model.get("max_seconds")})`;
      if (seconds >= model.get("max_seconds") && recorder) recorder.stop();
    };
    tick();
    timer = setInterval(tick, 250);
  }

  button.addEventListener("click", () => { if (recorder) recorder.stop(); else start(); });
  return () => { clearInterval(timer); if (recorder) recorder.stop(); };
}
export default { render };
