// Formatting shared by the views.
export const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

// ["Ann"] -> "Ann"; ["Ann", "Ben"] -> "Ann and Ben"; ["Ann", "Ben", "Cy"] -> "Ann, Ben and Cy"
export function listNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

// "in_progress" -> "In progress": one spelling of a status everywhere
export function statusLabel(status) {
  const text = String(status || "").replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// "2026-11-20" -> "20 Nov" (this year) or "20 Nov 2027", in the user's locale
export function shortDate(iso) {
  if (!iso) return "";
  const date = new Date(`${iso}T00:00:00`);
  if (Number.isNaN(date.getTime())) return iso;
  const sameYear = date.getFullYear() === new Date().getFullYear();
  return date.toLocaleDateString(undefined, { day: "numeric", month: "short", year: sameYear ? undefined : "numeric" });
}

export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

export function money(amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" }).format(amount || 0);
  } catch {
    return `${Number(amount || 0).toFixed(2)} ${currency || ""}`.trim();
  }
}
