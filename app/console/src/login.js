// Log in with an email and a password: POST /api/v1/auth/token answers the bearer token
// the console keeps for this tab (sessionStorage) and the user it belongs to.
import { formValues, h } from "./dom.js";

export function loginView(app, why) {
  const status = h("p", { class: "hint", role: "status" }, why ?? "");
  const form = h(
    "form",
    { class: "card login", "aria-label": "Log in" },
    h("h1", {}, "Log in to Depot"),
    h("label", {}, "Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    h(
      "label",
      {},
      "Password",
      h("input", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    ),
    h("button", { type: "submit" }, "Log in"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    app.clearMessages();
    const { email, password } = formValues(form);
    await app.attempt(async () => {
      const answer = await app.api.json("POST", "/api/v1/auth/token", { json: { email, password } });
      await app.signIn(answer.access_token, answer.user);
    });
  });
  return { element: form };
}
