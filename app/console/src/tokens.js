// Personal API tokens for scripts: list, create (the secret is shown once, here, and kept
// nowhere), revoke. GET/POST /api/v1/users/me/tokens, DELETE /api/v1/users/me/tokens/<id>.
import { confirmButton, copyButton, fill, formValues, h, when } from "./dom.js";

export function tokensView(app) {
  const rows = h("tbody");
  const secret = h("div", { class: "secret", id: "token-secret", hidden: true });
  let shownFor = null; // the id of the token whose secret is on show
  const form = h(
    "form",
    { class: "card", "aria-label": "New API token" },
    h("h2", {}, "New token"),
    h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 100 })),
    h("label", {}, "Expires in (days, empty: never)", h("input", { name: "expires_in_days", type: "number", min: 1, max: 3650 })),
    h(
      "fieldset",
      {},
      h("legend", {}, "Roles (a subset of yours)"),
      app.user.roles.map((role) =>
        h("label", { class: "inline" }, h("input", { type: "checkbox", name: "roles", value: role, checked: true }), role),
      ),
    ),
    h("button", { type: "submit" }, "Create token"),
  );
  const element = h(
    "section",
    { "aria-label": "API tokens" },
    h("h1", {}, "API tokens"),
    h("p", { class: "hint" }, "Tokens let scripts call Depot as you, with the roles you give them."),
    secret,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "tokens" },
        h("thead", {}, h("tr", {}, ["Name", "Roles", "Created", "Expires", "Last used", ""].map((t) => h("th", {}, t)))),
        rows,
      ),
    ),
    form,
  );

  function forgetSecret() {
    fill(secret);
    secret.hidden = true;
    shownFor = null;
  }

  async function load() {
    await app.attempt(async () => {
      const tokens = await app.api.get("/api/v1/users/me/tokens");
      fill(rows, tokens.length ? tokens.map(row) : h("tr", {}, h("td", { colspan: 6 }, "No API tokens.")));
    });
  }

  function row(token) {
    return h(
      "tr",
      { "data-id": token.id },
      h("td", {}, token.name),
      h("td", {}, token.roles.join(", ")),
      h("td", {}, when(token.created_at)),
      h("td", {}, token.expires_at ? when(token.expires_at) : "never"),
      h("td", {}, when(token.last_used_at)),
      h("td", {}, confirmButton("Revoke", "Really revoke?", () => revoke(token))),
    );
  }

  async function revoke(token) {
    await app.attempt(async () => {
      await app.api.json("DELETE", `/api/v1/users/me/tokens/${token.id}`);
      if (shownFor === token.id) forgetSecret();
      await load();
      app.notify(`Revoked ${token.name}.`);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    app.clearMessages();
    const values = formValues(form);
    const request = { name: values.name.trim(), roles: values.roles };
    if (values.expires_in_days) request.expires_in_days = Number(values.expires_in_days);
    await app.attempt(async () => {
      const created = await app.api.json("POST", "/api/v1/users/me/tokens", { json: request });
      secret.hidden = false;
      shownFor = created.id;
      const value = h("input", { class: "token-value", readonly: true, value: created.token, "aria-label": "Token secret" });
      fill(
        secret,
        h("strong", {}, `The secret of ${created.name}, shown this once: copy it now.`),
        value,
        copyButton(created.token, value, app),
        h("button", { type: "button", onclick: forgetSecret }, "Done"),
      );
      form.reset();
      load();
    });
  });

  load();
  return { element, dispose: forgetSecret };
}
