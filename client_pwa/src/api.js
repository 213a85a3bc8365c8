// The REST API: bearer token from login, problem details turned into errors.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get token() {
    return localStorage.getItem("tandem.token");
  },
  get user() {
    return localStorage.getItem("tandem.user");
  },
  save(user, token) {
    localStorage.setItem("tandem.user", user);
    localStorage.setItem("tandem.token", token);
  },
  clear() {
    localStorage.removeItem("tandem.user");
    localStorage.removeItem("tandem.token");
  },
};

export async function api(method, path, body, token = session.token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// Reads that should still work offline: the last answer is kept in localStorage.
export async function cachedGet(path) {
  const key = `tandem.cache:${session.user}:${path}`;
  try {
    const data = await api("GET", path);
    localStorage.setItem(key, JSON.stringify(data));
    return data;
  } catch (error) {
    const kept = localStorage.getItem(key);
    if (kept && !(error instanceof ApiError && error.status < 500)) return JSON.parse(kept);
    throw error;
  }
}
