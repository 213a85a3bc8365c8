// The app's shared state: the root element, the open project, the current view's listeners.
export const app = document.getElementById("app");
export const state = { current: null, focus: null }; // current: the open ProjectSession; focus: what the next view focuses

let cleanup = []; // listeners of the current view
let renderer = () => {};

export function setRenderer(fn) {
  renderer = fn;
}

export function go(hash) {
  if (location.hash === hash) renderer();
  else location.hash = hash;
}

export function clearView() {
  for (const fn of cleanup) fn();
  cleanup = [];
}

export function onCleanup(fn) {
  cleanup.push(fn);
}

// addEventListener until the view changes
export function on(target, event, fn) {
  target.addEventListener(event, fn);
  cleanup.push(() => target.removeEventListener(event, fn));
}
