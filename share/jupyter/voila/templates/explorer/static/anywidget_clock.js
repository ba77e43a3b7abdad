// The one workaround for an upstream bug in the page, kept here alone (tests/test_upstream.py fails when
// anywidget changes the code it works around, so it can be removed then).
//
// anywidget 0.11.0 gives each widget 2 s from its creation to load its module (AbortSignal.timeout(2000) in
// its Runtime). A page whose main thread is busy for longer while the widgets' states arrive, as a slow laptop
// is, lets that clock run out first; the widget then drops every later message from the kernel, and its
// figure stays frozen at the first drawing. Only that clock, and only when anywidget's code asks for it, is
// given ten minutes; every other caller of AbortSignal.timeout is untouched.
(() => {
  const timeout = AbortSignal.timeout.bind(AbortSignal);
  AbortSignal.timeout = (ms) => {
    if (ms === 2000 && /anywidget/.test(new Error().stack || "")) {
      return timeout(600000);
    }
    return timeout(ms);
  };
})();
