// Depot's REST API from the browser: the bearer token in the Authorization header (never a
// cookie), JSON both ways, and every refusal turned into an ApiError carrying Depot's own
// message and field errors, which the console shows as they are.

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.error = body?.error ?? null;
    this.fields = body?.fields ?? {};
    this.requestId = body?.request_id ?? null;
  }
}

/** Depot's message, then its field errors ("tags: Not a valid tag."). */
function describe(status, body) {
  const message = body?.message ?? (status ? `The server answered ${status}.` : "Depot could not be reached.");
  const fields = Object.entries(body?.fields ?? {}).map(([name, problems]) => `${name}: ${flatten(problems).join(" ")}`);
  return fields.length ? `${message} (${fields.join("; ")})` : message;
}

function flatten(problems) {
  if (Array.isArray(problems)) return problems.flatMap(flatten);
  if (problems && typeof problems === "object") return Object.values(problems).flatMap(flatten);
  return [String(problems)];
}

/** An ApiError from an answer's status and body text (JSON from Depot or its proxy). */
export function errorFrom(status, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  return new ApiError(status, body && typeof body === "object" ? body : null);
}

export class Api {
  constructor(base) {
    this.base = base.replace(/\/+$/, "");
    this.token = null;
    this.onUnauthorized = () => {};
  }

  url(path, query = {}) {
    const url = new URL(path, `${this.base}/`);
    for (const [name, value] of Object.entries(query)) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
    }
    return url.toString();
  }

  headers(extra = {}) {
    return this.token ? { Authorization: `Bearer ${this.token}`, ...extra } : extra;
  }

  /** The answer to `method path`; throws ApiError for anything but 2xx. */
  async send(method, path, { json, query, headers } = {}) {
    const init = { method, headers: this.headers(headers) };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let answer;
    try {
      answer = await fetch(this.url(path, query), init);
    } catch {
      throw new ApiError(0, null);
    }
    if (!answer.ok) {
      const error = errorFrom(answer.status, await answer.text());
      const wait = answer.headers.get("Retry-After");
      if (answer.status === 429 && wait) error.message += ` Try again in ${wait} s.`;
      if (answer.status === 401 && this.token) this.onUnauthorized(error);
      throw error;
    }
    return answer;
  }

  async json(method, path, options) {
    const answer = await this.send(method, path, options);
    return answer.status === 204 ? null : answer.json();
  }

  get(path, query) {
    return this.json("GET", path, { query });
  }
}
