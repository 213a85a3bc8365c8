export function settingsView(project) { project; }
