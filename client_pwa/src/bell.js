import { api } from "./api.js";
import { on, onCleanup, state } from "./app.js";
import { timeAgo } from "./ui/format.js";
import { h, toast, fill } from "./dom.js";

// -- notifications: the in-app list, and Web Push on request ------------------------------------

function urlBase64ToBytes(text) {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  const raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    toast("This browser cannot receive push notifications; they stay in the bell.");
    return;
  }
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    toast("Notifications stay in the bell (permission not given).");
    return;
  }
  const { public_key: key } = await api("GET", "/push/key");
  const registration = await navigator.serviceWorker.ready;
  const subscription =
    (await registration.pushManager.getSubscription()) ||
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: urlBase64ToBytes(key) }));
  await api("POST", "/me/push-subscriptions", subscription.toJSON());
  toast("Push notifications are on for this device.");
}

function bellIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "22");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1z");
  path.setAttribute("fill", "currentColor");
  svg.append(path);
  return svg;
}

export function bell() {
  const count = h("span", { class: "badge", hidden: true });
  const panel = h("div", { class: "notifications card", hidden: true, role: "dialog", "aria-label": "Notifications" });
  const button = h("button", { class: "bell icon-button", "aria-label": "Notifications", "aria-expanded": "false" }, bellIcon(), count);
  const refresh = async () => {
    try {
      const data = await api("GET", "/me/notifications?limit=20");
      const unread = Number(data.unread) || 0;
      count.textContent = unread ? String(unread) : "";
      count.hidden = !unread;
      button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
      const pushable = "PushManager" in window && "Notification" in window && Notification.permission !== "granted";
      fill(panel, 
        h("h2", {}, "Notifications"),
        pushable
          ? h(
              "div",
              { class: "push-offer" },
              h("p", {}, "Get a notification on this device when someone assigns you a task or mentions you."),
              h("button", { class: "primary", onclick: () => enablePush().catch((e) => toast(e.message, "error")) }, "Turn on push notifications"),
            )
          : null,
        data.items.length
          ? h(
              "ul",
              {},
              ...data.items.map((n) =>
                h(
                  "li",
                  { class: n.read_at ? "" : "unread" },
                  h("a", { href: (n.url || "#/projects").replace(/^\//, "") }, h("strong", {}, n.title || ""), n.body ? h("span", {}, n.body) : null, n.created_at ? timeAgo(h, n.created_at) : null),
                ),
              ),
            )
          : h("p", { class: "empty" }, "Nothing new."),
        unread
          ? h("button", { onclick: () => api("POST", "/me/notifications/read", {}).then(refresh) }, "Mark all read")
          : null,
      );
    } catch {
      // offline: keep what is shown
    }
  };
  button.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    button.setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) refresh();
  });
  const timer = setInterval(() => document.visibilityState === "visible" && refresh(), 30000);
  onCleanup(() => clearInterval(timer));
  if (state.current) {
    let soon = null;
    on(state.current, "change", () => {
      clearTimeout(soon);
      soon = setTimeout(refresh, 1000);
    });
    on(state.current, "chat", () => {
      clearTimeout(soon);
      soon = setTimeout(refresh, 1000);
    });
  }
  refresh();
  return h("div", { class: "bell-box" }, button, panel);
}
