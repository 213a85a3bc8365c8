export function resourcesView(project) { project; }
