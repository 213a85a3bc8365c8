export function analyticsView(project) { project; }
