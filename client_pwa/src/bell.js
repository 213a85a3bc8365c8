import { api, session } from "./api.js";
import { on, onCleanup, state } from "./app.js";
import { timeAgo } from "./ui/format.js";
import { h, toast, fill } from "./dom.js";

// -- notifications: the in-app list, and Web Push on request ------------------------------------

function urlBase64ToBytes(text) {
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  const raw = atob(padded.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

// The server pushes to a browser only while the login that registered it lasts (a logout, a
// revoked token or an expired session ends it). The user a browser was registered for is
// remembered here, so that after that same user logs in again the browser is registered for
// the new login at once, and never for somebody else who logs in on the same device.
const PUSH_USER = "tandem.push-user";

async function pushSubscription() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) return null;
  const registration = await navigator.serviceWorker.getRegistration(); // (not .ready: it waits for ever without one)
  return registration ? registration.pushManager.getSubscription() : null;
}

let registeredFor = null; // the login this page registered the browser for

async function registerAgain() {
  if (registeredFor === session.token || !("Notification" in window) || Notification.permission !== "granted") return;
  if (localStorage.getItem(PUSH_USER) !== session.user) return;
  const subscription = await pushSubscription();
  if (!subscription) return;
  await api("POST", "/me/push-subscriptions", subscription.toJSON());
  registeredFor = session.token;
}

// Logging out: the browser's subscription is deleted on the server (while the login still
// works) and in the browser, so the next person to use this device is offered push afresh.
export async function forgetPush(token) {
  localStorage.removeItem(PUSH_USER);
  registeredFor = null;
  const subscription = await pushSubscription().catch(() => null);
  if (!subscription) return;
  await api("DELETE", "/me/push-subscriptions", { endpoint: subscription.endpoint }, token).catch(() => {});
  await subscription.unsubscribe().catch(() => {});
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
  localStorage.setItem(PUSH_USER, session.user);
  registeredFor = session.token;
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
      const supported = "PushManager" in window && "Notification" in window && "serviceWorker" in navigator;
      const pushable = supported && Notification.permission !== "denied" && !(registeredFor === session.token && localStorage.getItem(PUSH_USER) === session.user);
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
  registerAgain().then(refresh, () => {}); // (offline: next time)
  return h("div", { class: "bell-box" }, button, panel);
}
