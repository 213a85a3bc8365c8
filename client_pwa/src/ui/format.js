// Formatting shared by the views.
export const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

// ["Ann"] -> "Ann"; ["Ann", "Ben"] -> "Ann and Ben"; ["Ann", "Ben", "Cy"] -> "Ann, Ben and Cy"
export function listNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}
