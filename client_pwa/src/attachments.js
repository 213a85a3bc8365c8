// Files attached to a task (the task's `attachments`: files that stay at Google Drive,
// Dropbox or OneDrive), shown in the task view with the provider's icon. The server adds
// them (POST /api/v1/projects/<p>/tasks/<t>/attachments/) after reading the file at the
// provider; this module only draws them. Links are opened only when they are http(s).
import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const PROVIDERS = {
  google: {
    title: "Google Drive",
    // three strokes of Drive's triangle, in its colours
    paths: [
      ["#0f9d58", "M8 2h8l8 14h-8z"],
      ["#4285f4", "M24 16l-4 6H4l4-6z"],
      ["#f4b400", "M8 2l8 14-4 6L0 16z"],
    ],
  },
  dropbox: {
    title: "Dropbox",
    paths: [["#0061fe", "M6 2l6 4-6 4-6-4zM18 2l6 4-6 4-6-4zM0 14l6-4 6 4-6 4zM24 14l-6-4-6 4 6 4zM6 19l6-4 6 4-6 4z"]],
  },
  microsoft: {
    title: "OneDrive",
    paths: [["#0364b8", "M7 20a5 5 0 0 1-.6-10A7 7 0 0 1 19 8.5 4.8 4.8 0 0 1 19.5 20z"]],
  },
};

function icon(provider) {
  const spec = PROVIDERS[provider];
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("class", "attachment-icon");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", spec ? spec.title : provider);
  for (const [fill, d] of spec ? spec.paths : [["#888", "M4 2h10l6 6v14H4z"]]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("fill", fill);
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

export function formatSize(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

// A list element and a draw(task) that fills it from the task's attachments.
export function attachmentsList() {
  const el = h("ul", { class: "task-attachments", "data-testid": "task-attachments" });
  const draw = (task) => {
    const items = Array.isArray(task.attachments) ? task.attachments : [];
    el.hidden = items.length === 0;
    el.replaceChildren(
      ...items.map((a) =>
        h(
          "li",
          { class: "attachment", dataset: { provider: a.provider || "" } },
          icon(a.provider),
          " ",
          /^https?:\/\//i.test(a.link || "")
            ? h("a", { href: a.link, target: "_blank", rel: "noopener noreferrer" }, a.name || a.link)
            : h("span", {}, a.name || ""),
          a.size !== undefined ? h("span", { class: "attachment-size" }, formatSize(a.size)) : null,
        ),
      ),
    );
  };
  return { el, draw };
}
