/**
 * Calls the generated types must refuse: each line under `@ts-expect-error` is wrong, and tsc
 * fails ("Unused '@ts-expect-error' directive") if the types let it through. So the strict
 * type-check of walkthrough.ts proves something: a document that left a parameter, a body or a
 * response untyped (`unknown`, `any`, an optional everything) would make these lines compile.
 * Type-checked beside walkthrough.ts by integration-tests/test_typescript_client.py; never run.
 */
import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

export async function refusals(client: ReturnType<typeof createClient<paths>>): Promise<void> {
  // A path the document does not have (the raw upload's old path is served, documented once).
  // @ts-expect-error
  await client.PUT("/api/v1/uploads/{filename}", { params: { path: { filename: "a.txt" } } });

  // A path parameter left out.
  // @ts-expect-error
  await client.GET("/api/v1/uploads/{upload_id}", {});

  // A role outside the enum.
  await client.POST("/api/v1/users", {
    // @ts-expect-error
    body: { email: "a@example.com", password: "12345678", name: "A", roles: ["root"] },
  });

  // A login without its password.
  // @ts-expect-error
  await client.POST("/api/v1/auth/token", { body: { email: "a@example.com" } });

  // per_page is a number.
  // @ts-expect-error
  await client.GET("/api/v1/uploads", { params: { query: { per_page: "ten" } } });

  // The multipart upload needs its file part.
  // @ts-expect-error
  await client.POST("/api/v1/uploads", { body: { description: null, sha256: null, visibility: "private" } });

  const { data: page } = await client.GET("/api/v1/uploads");
  if (page) {
    // A page's cursor may be null: it is not a plain string.
    // @ts-expect-error
    const cursor: string = page.next_cursor;
    // An upload's size is always sent and is a number.
    const size: number = page.items[0]!.size;
    // @ts-expect-error
    const visibility: "secret" = page.items[0]!.visibility;
    void [cursor, size, visibility];
  }

  // A token's secret is in the answer that creates it, never in a listing.
  const created: components["schemas"]["CreatedApiToken"]["token"] = "secret";
  const { data: tokens } = await client.GET("/api/v1/users/me/tokens");
  // @ts-expect-error
  void [created, tokens?.[0]?.token];

  // An error body has the Error shape.
  const { error } = await client.GET("/api/v1/users/me");
  if (error) {
    const code: string = error.error;
    // @ts-expect-error
    const detail: string = error.detail;
    void [code, detail];
  }
}
