// Formatting shared by the views: dates, times, numbers, money and statuses in the user's
// locale (their choice under Settings, kept in this browser; else the browser's language),
// through Intl. Formatters are slow to make: one per locale and style, cached.
export const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

const LOCALE_KEY = "tandem.locale";

// The chosen locale ("de-DE"), or undefined: the browser's own.
export function locale() {
  try {
    return localStorage.getItem(LOCALE_KEY) || undefined;
  } catch {
    return undefined;
  }
}

export function setLocale(tag) {
  if (tag) localStorage.setItem(LOCALE_KEY, tag);
  else localStorage.removeItem(LOCALE_KEY);
  formats.clear();
}

const formats = new Map();
function format(Kind, options) {
  const key = `${Kind.name}|${locale() || ""}|${JSON.stringify(options)}`;
  let f = formats.get(key);
  if (!f) {
    try {
      f = new Kind(locale(), options);
    } catch {
      f = new Kind(undefined, options); // an unknown tag: the browser's
    }
    formats.set(key, f);
  }
  return f;
}

// ["Ann"] -> "Ann"; ["Ann", "Ben"] -> "Ann and Ben"; ["Ann", "Ben", "Cy"] -> "Ann, Ben and Cy"
export function listNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

// A status is a column's name: "in_progress" -> "In progress", "on hold" -> "On hold"; one
// spelling everywhere (board, task, list, filters, activity).
export function statusLabel(status) {
  const text = String(status || "").replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const thisYear = new Date().getFullYear();
const day = (iso) => new Date(`${iso}T00:00:00`);

// "2026-11-20" -> "20 Nov" (this year) or "20 Nov 2027" ("20. Nov." in German)
export function shortDate(iso) {
  if (!iso) return "";
  const date = day(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameYear = date.getFullYear() === thisYear;
  return format(Intl.DateTimeFormat, { day: "numeric", month: "short", year: sameYear ? undefined : "numeric" }).format(date);
}

// "20 – 28 Nov", "28 Nov – 3 Dec" (one day: just the day)
export function dayRange(a, b) {
  if (!a || !b || a === b) return shortDate(a || b);
  const [x, y] = [day(a), day(b)];
  if (Number.isNaN(x.getTime()) || Number.isNaN(y.getTime())) return `${a} – ${b}`;
  const sameYear = x.getFullYear() === thisYear && y.getFullYear() === thisYear;
  return format(Intl.DateTimeFormat, { day: "numeric", month: "short", year: sameYear ? undefined : "numeric" }).formatRange(x, y);
}

// A moment (ISO text, or seconds since 1970 as the activity feed gives them): date and time.
export function dateTime(at) {
  const date = typeof at === "number" ? new Date(at * 1000) : new Date(at);
  if (Number.isNaN(date.getTime())) return String(at ?? "");
  return format(Intl.DateTimeFormat, { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export function timeOfDay(at) {
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) return String(at ?? "");
  return format(Intl.DateTimeFormat, { timeStyle: "short" }).format(date);
}

// "5 minutes ago", "yesterday", "in 2 days" ("vor 5 Minuten", "gestern")
const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["week", 7 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];
export function relativeTime(at, now = Date.now()) {
  const ms = typeof at === "number" ? at * 1000 : new Date(at).getTime();
  if (Number.isNaN(ms)) return String(at ?? "");
  const seconds = Math.round((ms - now) / 1000);
  const rtf = format(Intl.RelativeTimeFormat, { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return rtf.format(Math.abs(seconds) < 45 && unit === "second" ? 0 : Math.trunc(seconds / size), unit);
    }
  }
  return "";
}

// A <time> element that reads "5 minutes ago" and shows the exact moment on hover.
export function timeAgo(h, at) {
  const date = typeof at === "number" ? new Date(at * 1000) : new Date(at);
  const iso = Number.isNaN(date.getTime()) ? undefined : date.toISOString();
  return h("time", { datetime: iso, title: dateTime(at) }, relativeTime(at));
}

export function number(n, digits = { maximumFractionDigits: 2 }) {
  return format(Intl.NumberFormat, digits).format(Number(n) || 0);
}

// 130 -> "130%" ("130 %" in German)
export function percent(n) {
  return format(Intl.NumberFormat, { style: "percent", maximumFractionDigits: 1 }).format((Number(n) || 0) / 100);
}

export function money(amount, currency) {
  try {
    return format(Intl.NumberFormat, { style: "currency", currency: currency || "EUR" }).format(amount || 0);
  } catch {
    return `${number(amount)} ${currency || ""}`.trim();
  }
}

export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// Whole days between two ISO dates (b - a), and a date moved by n days, in UTC so no
// daylight-saving change makes a day 23 or 25 hours.
const utc = (iso) => Date.UTC(Number(iso.slice(0, 4)), Number(iso.slice(5, 7)) - 1, Number(iso.slice(8, 10)));
export function daysBetween(a, b) {
  return Math.round((utc(b) - utc(a)) / 86400000);
}

export function addDays(iso, n) {
  return new Date(utc(iso) + n * 86400000).toISOString().slice(0, 10);
}
