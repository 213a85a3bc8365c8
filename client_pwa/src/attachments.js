// Files attached to a task (the task's `attachments`: files that stay at Google Drive,
// Dropbox or OneDrive), shown in the task view with the provider's icon. The server adds
// them (POST /api/v1/projects/<p>/tasks/<t>/attachments/) after reading the file at the
// provider; this module draws them and, for someone who may edit the task, offers a
// picker: search one of the project's file connections and attach a result. Links are
// opened only when they are http(s).
import { api } from "./api.js";
import { number } from "./ui/format.js";
import { h, toast } from "./dom.js";

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
  return `${number(value, { minimumFractionDigits: unit ? 1 : 0, maximumFractionDigits: unit ? 1 : 0 })} ${units[unit]}`;
}

// The picker: a source (file connection), a search, results to click. Attaching is the
// server's (it reads the file at the provider); the new item arrives over the sync socket.
function picker(projectId, taskId) {
  const box = h("div", { class: "attach-picker", "data-testid": "attach-picker", hidden: true });
  const source = h("select", { name: "source", "aria-label": "Files from" });
  const query = h("input", { type: "search", name: "q", placeholder: "Search files", "aria-label": "Search files", maxlength: 200 });
  const results = h("ul", { class: "attach-results", "data-testid": "attach-results" });
  const search = async (e) => {
    e.preventDefault();
    if (!source.value || !query.value.trim()) return;
    try {
      const found = await api(
        "GET",
        `/projects/${projectId}/connections/${encodeURIComponent(source.value)}/files/?q=${encodeURIComponent(query.value.trim())}`,
      );
      results.replaceChildren(
        ...(found.files.length ? found.files : [null]).map((f) =>
          f === null
            ? h("li", { class: "empty" }, "No files found")
            : h(
                "li",
                {},
                h(
                  "button",
                  {
                    type: "button",
                    class: "attach-result",
                    onclick: async () => {
                      try {
                        await api("POST", `/projects/${projectId}/tasks/${taskId}/attachments/`, {
                          connection: source.value,
                          file_id: f.file_id,
                        });
                        box.hidden = true;
                        results.replaceChildren();
                      } catch (err) {
                        toast(err.message, "error");
                      }
                    },
                  },
                  icon(f.provider),
                  " ",
                  f.name,
                ),
              ),
        ),
      );
    } catch (err) {
      toast(err.message, "error");
    }
  };
  box.append(h("form", { class: "attach-search", onsubmit: search }, source, query, h("button", { type: "submit" }, "Search")), results);
  const open = h("button", {
    type: "button",
    class: "attach-open",
    "data-testid": "attach-open",
    hidden: true,
    onclick: () => {
      box.hidden = !box.hidden;
      if (!box.hidden) query.focus();
    },
  }, "Attach a file");
  // only when the project has a file connection
  api("GET", `/projects/${projectId}/file-sources/`)
    .then(({ sources }) => {
      source.replaceChildren(
        ...sources.map((s) => h("option", { value: s.id }, s.account ? `${s.title} (${s.account})` : s.title)),
      );
      open.hidden = sources.length === 0;
    })
    .catch(() => {});
  return [open, box];
}

// A list element and a draw(task) that fills it from the task's attachments; with
// `editable`, the picker beside it.
export function attachmentsList({ projectId, taskId, editable } = {}) {
  const list = h("ul", { class: "task-attachments", "data-testid": "task-attachments" });
  const el = h("div", { class: "attachments" }, list, ...(editable && projectId ? picker(projectId, taskId) : []));
  const draw = (task) => {
    const items = Array.isArray(task.attachments) ? task.attachments : [];
    list.hidden = items.length === 0;
    list.replaceChildren(
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
