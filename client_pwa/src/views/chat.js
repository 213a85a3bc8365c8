import { on } from "../app.js";
import { colorFor, h, initials, fill } from "../dom.js";
import { markChatSeen, shell } from "../shell.js";
import { dateTime, timeOfDay } from "../ui/format.js";

// -- chat ------------------------------------------------------------------------------------------

export function chatView(project) {
  const list = h("ol", { class: "messages" });
  const draw = () => {
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
    fill(list, 
      ...project.messages().map((m) =>
        h(
          "li",
          { class: m.author === project.user ? "mine" : "" },
          h("span", { class: "avatar small", style: { background: colorFor(m.author) }, "aria-hidden": "true" }, initials(m.author)),
          h(
            "div",
            {},
            h("strong", {}, m.author),
            " ",
            h("time", { datetime: m.at, title: dateTime(m.at) }, timeOfDay(m.at)),
            m.task && project.task(m.task) ? h("small", {}, " on ", h("a", { href: `#/p/${project.projectId}/task/${m.task}` }, project.task(m.task).title)) : null,
            h("p", {}, m.text),
          ),
        ),
      ),
    );
    if (stick) list.scrollTop = list.scrollHeight;
    markChatSeen(project);
  };
  const input = h("input", { name: "message", placeholder: "Message", autocomplete: "off", maxlength: 10000 });
  const form = h("form", { class: "composer" }, input, h("button", { class: "primary" }, "Send"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) project.postMessage(input.value.trim());
    input.value = "";
  });
  on(project, "chat", draw);
  draw();
  shell(project, "chat", h("div", { class: "chat" }, list, form));
  list.scrollTop = list.scrollHeight;
}
