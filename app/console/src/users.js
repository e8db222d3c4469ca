// Admins manage accounts: list them page by page, create one, change roles and whether it
// is active, delete. GET/POST /api/v1/users, PATCH/DELETE /api/v1/users/<id>. A role change
// or a deactivation applies to that user's very next request.
import { confirmButton, fill, formValues, h, when } from "./dom.js";

const ROLES = ["user", "uploader", "admin"];
const PER_PAGE = 20;

export function usersView(app) {
  let page = 1;
  const rows = h("tbody");
  const pager = h("div", { class: "pager" });
  const form = h(
    "form",
    { class: "card", "aria-label": "New user" },
    h("h2", {}, "New user"),
    h("label", {}, "Email", h("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
    h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 100 })),
    h("label", {}, "Password (8 characters or more)", h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" })),
    roleBoxes(["user"]),
    h("button", { type: "submit" }, "Create user"),
  );
  const element = h(
    "section",
    { "aria-label": "Users" },
    h("h1", {}, "Users"),
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "users" },
        h("thead", {}, h("tr", {}, ["Email", "Name", "Roles and status", "Created", ""].map((t) => h("th", {}, t)))),
        rows,
      ),
    ),
    pager,
    form,
  );

  function roleBoxes(checked) {
    return h(
      "fieldset",
      { class: "roles" },
      h("legend", {}, "Roles"),
      ROLES.map((role) =>
        h("label", { class: "inline" }, h("input", { type: "checkbox", name: "roles", value: role, checked: checked.includes(role) }), role),
      ),
    );
  }

  async function load() {
    let answer;
    try {
      answer = await app.api.get("/api/v1/users", { page, per_page: PER_PAGE });
    } catch (error) {
      return app.fail(error);
    }
    fill(rows, answer.items.map(row));
    const pages = Math.max(1, Math.ceil(answer.total / answer.per_page));
    fill(
      pager,
      h("button", { type: "button", disabled: page <= 1, onclick: () => turn(-1) }, "← Previous"),
      h("span", {}, `Page ${page} of ${pages} (${answer.total} users)`),
      h("button", { type: "button", disabled: page >= pages, onclick: () => turn(1) }, "Next →"),
    );
  }

  function turn(step) {
    page += step;
    load();
  }

  function row(user) {
    const change = h(
      "form",
      { class: "user-change", "aria-label": `Change ${user.email}` },
      roleBoxes(user.roles),
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "active", value: "yes", checked: user.active }), "active"),
      h("button", { type: "submit" }, "Save"),
    );
    change.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = formValues(change);
      await app.attempt(async () => {
        await app.api.json("PATCH", `/api/v1/users/${user.id}`, {
          json: { roles: values.roles, active: values.active.length > 0 },
        });
        await load();
        app.notify(`Saved ${user.email}.`);
      });
    });
    return h(
      "tr",
      { "data-email": user.email },
      h("td", {}, user.email),
      h("td", {}, user.name),
      h("td", {}, change),
      h("td", {}, when(user.created_at)),
      h(
        "td",
        {},
        user.id !== app.user.id && confirmButton("Delete", "Really delete?", () => remove(user)),
      ),
    );
  }

  async function remove(user) {
    await app.attempt(async () => {
      await app.api.json("DELETE", `/api/v1/users/${user.id}`);
      await load();
      app.notify(`Deleted ${user.email}.`);
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    app.clearMessages();
    const values = formValues(form);
    await app.attempt(async () => {
      const created = await app.api.json("POST", "/api/v1/users", {
        json: { email: values.email.trim(), name: values.name.trim(), password: values.password, roles: values.roles },
      });
      form.reset();
      await load();
      app.notify(`Created ${created.email}.`);
    });
  });

  load();
  return { element };
}
