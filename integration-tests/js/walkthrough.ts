/**
 * The README walkthrough through a TypeScript client generated from Depot's OpenAPI document:
 * types by openapi-typescript (`schema.d.ts`, generated from the running server, never
 * committed), calls by openapi-fetch. It must pass `tsc --noEmit` in strict mode, so a call
 * the document describes wrongly (a missing parameter, an untyped body) fails before it runs.
 *
 * integration-tests/test_typescript_client.py generates schema.d.ts into a temporary folder,
 * copies this script beside it, type-checks and compiles it there, and runs it under Node
 * against the test server. Settings come from the environment: DEPOT_URL, and the admin's
 * DEPOT_EMAIL and DEPOT_PASSWORD. Every step checks what it got; the first mismatch ends the
 * script with exit code 1. It prints one JSON line per step, then a summary the test checks
 * against the server.
 */
import { createHash, randomUUID } from "node:crypto";

import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Upload = components["schemas"]["Upload"];
type UploadForm = paths["/api/v1/uploads"]["post"]["requestBody"]["content"]["multipart/form-data"];

const BASE_URL = setting("DEPOT_URL");
const ADMIN_EMAIL = setting("DEPOT_EMAIL");
const ADMIN_PASSWORD = setting("DEPOT_PASSWORD");
const TEXT = "hello depot\n";
const TEXT_SHA256 = createHash("sha256").update(TEXT).digest("hex");
// Tags only this run's uploads carry, so the listing holds them and nothing else.
const RUN_TAG = `ts-${randomUUID().slice(0, 8)}`;

function setting(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

class Mismatch extends Error {}

function check(condition: boolean, what: string, got?: unknown): asserts condition {
  if (!condition) {
    throw new Mismatch(`${what}; got ${JSON.stringify(got)}`);
  }
}

function step(name: string, details: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ step: name, ...details }));
}

/** The body of an answer that must have `status`; otherwise the script fails with what came. */
async function expect<D>(
  what: string,
  status: number,
  call: Promise<{ data?: D; error?: unknown; response: Response }>,
): Promise<{ data: D; response: Response }> {
  const { data, error, response } = await call;
  check(response.status === status, `${what}: expected ${status}`, { status: response.status, error });
  check(data !== undefined, `${what}: expected a body`, { status: response.status });
  return { data, response };
}

/** An answer that must have `status` and no body (204), or an error status (its Error body). */
async function expectStatus<E>(
  what: string,
  status: number,
  call: Promise<{ data?: unknown; error?: E; response: Response }>,
): Promise<E | undefined> {
  const { data, error, response } = await call;
  check(response.status === status, `${what}: expected ${status}`, { status: response.status, data, error });
  return error;
}

/**
 * openapi-typescript writes a `format: binary` value (a multipart file part, a raw body) as
 * `string`; it is a Blob here, sent as is by the body serializers below. The script's one cast.
 */
function binary(blob: Blob): string {
  return blob as unknown as string;
}

/** multipart/form-data from the typed form: the file part with its name, a part per tag. */
function formData(filename: string) {
  return (body: UploadForm): FormData => {
    const form = new FormData();
    for (const [name, value] of Object.entries(body) as [string, unknown][]) {
      if (value instanceof Blob) {
        form.append(name, value, filename);
      } else if (Array.isArray(value)) {
        for (const item of value) form.append(name, String(item));
      } else if (value !== null && value !== undefined) {
        form.append(name, String(value));
      }
    }
    return form;
  };
}

function sameUpload(upload: Upload, filename: string, tags: string[]): void {
  check(upload.filename === filename, `the upload is named ${filename}`, upload);
  check(upload.size === TEXT.length && upload.sha256 === TEXT_SHA256, "the upload holds the text", upload);
  check(JSON.stringify(upload.tags) === JSON.stringify(tags), `the upload is tagged ${tags}`, upload);
}

async function walkthrough(): Promise<Record<string, unknown>> {
  const anonymous = createClient<paths>({ baseUrl: BASE_URL });

  // 1-2. Log in as the admin (created with the CLI) and keep the token.
  const { data: session } = await expect(
    "log in",
    200,
    anonymous.POST("/api/v1/auth/token", { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } }),
  );
  check(session.token_type === "Bearer" && session.access_token.length > 0, "a bearer token", session);
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  const admin = createClient<paths>({ baseUrl: BASE_URL, headers: bearer(session.access_token) });
  step("login", { expires_in: session.expires_in });

  // 3. Who am I?
  const { data: me } = await expect("me", 200, admin.GET("/api/v1/users/me"));
  check(me.email === ADMIN_EMAIL && me.roles.includes("admin"), "me is the admin", me);
  step("me", { id: me.id });

  // 4. Create an uploader.
  const email = `ts-${randomUUID().slice(0, 8)}@example.com`;
  const { data: user } = await expect(
    "create a user",
    201,
    admin.POST("/api/v1/users", { body: { email, password: "another-secret", name: "CI", roles: ["uploader"] } }),
  );
  check(user.email === email && JSON.stringify(user.roles) === '["uploader"]' && user.active, "an uploader", user);
  step("create user", { id: user.id, email });

  // 5. A personal API token with only the uploader role: its secret is shown once.
  const { data: created } = await expect(
    "create an API token",
    201,
    admin.POST("/api/v1/users/me/tokens", {
      body: { name: "upload script", expires_in_days: 30, roles: ["uploader"] },
    }),
  );
  check(created.token.length > 0 && JSON.stringify(created.roles) === '["uploader"]', "a token secret", created);
  check(created.expires_at !== null, "an expiry", created);
  const script = createClient<paths>({ baseUrl: BASE_URL, headers: bearer(created.token) });
  const refused = await expectStatus("the script token lists users", 403, script.GET("/api/v1/users"));
  check(refused?.error === "forbidden", "the script token may not list users", refused);
  step("create API token", { id: created.id });

  // 6. Upload a file with metadata (multipart), then a raw body with the script's token.
  const { data: first, response: firstResponse } = await expect(
    "multipart upload",
    201,
    admin.POST("/api/v1/uploads", {
      body: {
        file: binary(new Blob([TEXT], { type: "text/plain" })),
        description: "first file",
        tags: ["docs", RUN_TAG],
        sha256: TEXT_SHA256, // visibility left out: private by default
      },
      bodySerializer: formData("hello.txt"),
    }),
  );
  sameUpload(first, "hello.txt", ["docs", RUN_TAG]);
  check(first.description === "first file" && first.visibility === "private", "the metadata", first);
  check(first.content_type.startsWith("text/plain"), "a text/plain upload", first);
  check(firstResponse.headers.get("Location")?.endsWith(`/api/v1/uploads/${first.id}`) === true, "its Location", {
    location: firstResponse.headers.get("Location"),
  });
  step("multipart upload", { id: first.id });

  const { data: again } = await expect(
    "raw upload",
    201,
    script.PUT("/api/v1/raw-uploads/{filename}", {
      params: { path: { filename: "hello-again.txt" }, query: { tags: [RUN_TAG] } },
      body: binary(new Blob([TEXT])),
      bodySerializer: (body) => body,
      headers: { "Content-Type": "application/octet-stream" },
    }),
  );
  sameUpload(again, "hello-again.txt", [RUN_TAG]);
  check(again.owner_id === me.id, "the script's upload is the admin's", again);
  step("raw upload", { id: again.id, content_type: again.content_type });

  // 7. List this run's uploads, newest first, a page of one at a time, following next_cursor.
  const listed: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const { data: page } = await expect(
      `page ${pages + 1} of the list`,
      200,
      admin.GET("/api/v1/uploads", { params: { query: { tag: RUN_TAG, per_page: 1, cursor } } }),
    );
    check(page.per_page === 1 && page.items.length <= 1, "pages of one", page);
    listed.push(...page.items.map((item) => item.id));
    cursor = page.next_cursor ?? undefined;
    pages += 1;
    check(pages <= 5, "the cursor comes to an end", listed);
  } while (cursor !== undefined);
  check(JSON.stringify(listed) === JSON.stringify([again.id, first.id]), "both uploads, newest first", listed);
  step("list", { pages, ids: listed });

  // 8. Download the first 5 bytes.
  const { data: head, response: ranged } = await expect(
    "ranged download",
    206,
    admin.GET("/api/v1/uploads/{upload_id}/content", {
      params: { path: { upload_id: first.id }, header: { Range: "bytes=0-4" } },
      parseAs: "arrayBuffer",
    }),
  );
  const bytes = new TextDecoder().decode(head);
  check(bytes === TEXT.slice(0, 5), "the first 5 bytes", bytes);
  check(ranged.headers.get("Content-Range") === `bytes 0-4/${TEXT.length}`, "its Content-Range", {
    contentRange: ranged.headers.get("Content-Range"),
  });
  step("ranged download", { bytes, content_range: ranged.headers.get("Content-Range") });

  // 9. Share: a signed link, downloaded with no token at all.
  const { data: link } = await expect(
    "create a share link",
    201,
    admin.POST("/api/v1/uploads/{upload_id}/links", {
      params: { path: { upload_id: first.id } },
      body: { expires_in: 600 },
    }),
  );
  check(link.url.endsWith(`/api/v1/links/${link.token}`), "the link's URL", link);
  const { data: shared } = await expect(
    "download through the link",
    200,
    anonymous.GET("/api/v1/links/{token}", { params: { path: { token: link.token } }, parseAs: "text" }),
  );
  check(shared === TEXT, "the whole file through the link", shared);
  const direct = await fetch(link.url);
  check(direct.status === 200 && (await direct.text()) === TEXT, "the link's URL as given", direct.status);
  step("share link", { expires_at: link.expires_at });

  // 10. Delete both uploads: the first is gone.
  await expectStatus(
    "delete",
    204,
    admin.DELETE("/api/v1/uploads/{upload_id}", { params: { path: { upload_id: first.id } } }),
  );
  await expectStatus(
    "delete the raw upload",
    204,
    script.DELETE("/api/v1/uploads/{upload_id}", { params: { path: { upload_id: again.id } } }),
  );
  const gone = await admin.GET("/api/v1/uploads/{upload_id}", { params: { path: { upload_id: first.id } } });
  check(gone.response.status === 404 && gone.error?.error === "not_found", "the deleted upload is gone", gone.error);
  step("delete", { ids: [first.id, again.id] });

  // 11. Log out: the token stops working at once.
  await expectStatus("log out", 204, admin.POST("/api/v1/auth/logout"));
  const after = await admin.GET("/api/v1/users/me");
  check(after.response.status === 401 && after.error?.status === 401, "refused after logging out", after.error);
  step("logout", { me_after: after.response.status });

  return { user: { id: user.id, email }, deleted: [first.id, again.id], token: created.id };
}

try {
  console.log(JSON.stringify({ summary: await walkthrough() }));
} catch (error) {
  console.error(error instanceof Mismatch ? `MISMATCH: ${error.message}` : error);
  process.exitCode = 1;
}
