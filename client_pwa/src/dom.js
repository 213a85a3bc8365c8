// A few DOM helpers: h() builds elements, toast() shows a message.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2).toLowerCase(), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A short message at the bottom; `action` ({label, run}) adds a button (e.g. Undo) and keeps
// it a little longer.
export function toast(message, kind = "info", action = null) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const el = h(
    "div",
    { class: `toast ${kind}` },
    h("span", {}, message),
    action
      ? h(
          "button",
          {
            type: "button",
            onclick: () => {
              el.remove();
              action.run();
            },
          },
          action.label,
        )
      : null,
  );
  box.append(el);
  setTimeout(() => el.remove(), action ? 10000 : 6000);
  return el;
}

export function initials(name) {
  return (name || "?").slice(0, 2).toUpperCase();
}

export function colorFor(name) {
  let hash = 0;
  for (const ch of name || "") hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 60% 28%)`; // white initials on it keep a 4.5:1 contrast for every hue
}

// Keep a textarea in step with a Y.Text: local input becomes the minimal delete + insert,
// remote changes update the field while keeping the caret where it was.
export function bindText(textarea, ytext, editable) {
  textarea.value = ytext.toString();
  textarea.readOnly = !editable;
  let previous = textarea.value;
  const onInput = () => {
    const now = textarea.value;
    let start = 0;
    while (start < previous.length && start < now.length && previous[start] === now[start]) start++;
    let endPrev = previous.length;
    let endNow = now.length;
    while (endPrev > start && endNow > start && previous[endPrev - 1] === now[endNow - 1]) {
      endPrev--;
      endNow--;
    }
    ytext.doc.transact(() => {
      if (endPrev > start) ytext.delete(start, endPrev - start);
      if (endNow > start) ytext.insert(start, now.slice(start, endNow));
    });
    previous = now;
  };
  const onRemote = (event, transaction) => {
    if (transaction.local && textarea === document.activeElement && textarea.value === ytext.toString()) return;
    // the caret and selection stay on the same characters: text inserted or deleted
    // before them shifts them, text after them leaves them alone
    const focused = textarea === document.activeElement;
    const { selectionStart: start, selectionEnd: end, selectionDirection: direction, scrollTop } = textarea;
    const shift = (pos) => {
      let old = 0; // position in the text before the change
      let moved = pos;
      for (const op of event.delta) {
        if (old >= pos) break;
        if (op.retain) old += op.retain;
        else if (op.insert) moved += op.insert.length;
        else if (op.delete) {
          moved -= Math.min(op.delete, pos - old);
          old += op.delete;
        }
      }
      return moved;
    };
    textarea.value = ytext.toString();
    previous = textarea.value;
    if (focused) {
      textarea.setSelectionRange(shift(start), shift(end), direction);
      textarea.scrollTop = scrollTop;
    }
  };
  textarea.addEventListener("input", onInput);
  ytext.observe(onRemote);
  return () => {
    textarea.removeEventListener("input", onInput);
    ytext.unobserve(onRemote);
  };
}

// el.replaceChildren that skips null/false like h() does (the DOM would write "null")
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
