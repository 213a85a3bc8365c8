export function budgetView(project) { project; }
