// The console's shell: where the API is, the session (its token in sessionStorage, never a
// cookie), the views behind #/files, #/upload, #/tokens and #/users, and the two message
// areas where Depot's own messages are shown.
import "@uppy/core/css/style.min.css";
import "@uppy/dashboard/css/style.min.css";
import "./console.css";

import { Api } from "./api.js";
import { fill } from "./dom.js";
import { filesView } from "./files.js";
import { loginView } from "./login.js";
import { tokensView } from "./tokens.js";
import { uploadView } from "./upload.js";
import { usersView } from "./users.js";

const TOKEN_KEY = "depot.console.token";
const VIEWS = { files: filesView, upload: uploadView, tokens: tokensView, users: usersView };
const ROLE_OF_VIEW = { upload: ["uploader", "admin"], users: ["admin"] };

const main = document.getElementById("main");
const alertBox = document.getElementById("alert");
const noticeBox = document.getElementById("notice");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const logoutButton = document.getElementById("logout");

const app = {
  api: null,
  user: null,
  current: null, // the view on screen: {element, dispose(), keep}
  uploads: null, // the upload view, kept for the session so its uploads go on elsewhere
  ready: false,

  /** Show Depot's message (an ApiError's, or any text) in the alert area. */
  fail(problem) {
    alertBox.hidden = false;
    fill(alertBox, problem instanceof Error ? problem.message : String(problem));
  },
  /** Run `action`; a failure shows its message (Depot's, for a refused request). */
  async attempt(action) {
    try {
      return await action();
    } catch (error) {
      app.fail(error);
      return undefined;
    }
  },
  notify(text) {
    noticeBox.hidden = false;
    fill(noticeBox, text);
  },
  clearMessages() {
    alertBox.hidden = true;
    noticeBox.hidden = true;
    alertBox.replaceChildren();
    noticeBox.replaceChildren();
  },
  can(view) {
    const roles = ROLE_OF_VIEW[view];
    return !roles || roles.some((role) => app.user?.roles.includes(role));
  },

  async signIn(token, user) {
    app.api.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    app.user = user;
    showChrome();
    if (!location.hash || location.hash === "#/login") location.hash = "#/files";
    else route();
  },

  /** Forget the session; `why` is shown on the login form. */
  signOut(why) {
    sessionStorage.removeItem(TOKEN_KEY);
    app.api.token = null;
    app.user = null;
    app.uploads?.dispose();
    app.uploads = null;
    app.clearMessages();
    showChrome();
    show(loginView(app, why));
  },
};

/** The upload URLs Uppy keeps to resume unfinished uploads (tus-js-client's "tus::" keys
 *  in localStorage, with each file's name and metadata): forgotten at logout. */
function forgetResumableUploads() {
  for (const key of Object.keys(localStorage)) if (key.startsWith("tus::")) localStorage.removeItem(key);
}

function showChrome() {
  const signedIn = Boolean(app.user);
  nav.hidden = !signedIn;
  logoutButton.hidden = !signedIn;
  fill(who, signedIn ? `${app.user.email} (${app.user.roles.join(", ")})` : "");
  for (const link of nav.querySelectorAll("a")) link.hidden = !app.can(link.dataset.view);
}

function show(view) {
  if (app.current !== view && !app.current?.keep) app.current?.dispose?.();
  app.current = view;
  fill(main, view.element);
}

function route() {
  if (!app.user) return show(loginView(app));
  let name = location.hash.replace(/^#\//, "") || "files";
  let refused = null;
  if (!VIEWS[name] || !app.can(name)) {
    if (VIEWS[name]) refused = `That page needs the ${ROLE_OF_VIEW[name].join(" or ")} role.`;
    name = "files";
    history.replaceState(null, "", "#/files");
  }
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  app.clearMessages();
  if (name === "upload") show((app.uploads ??= uploadView(app)));
  else show(VIEWS[name](app));
  if (refused) app.fail(refused);
  refreshUser();
}

/** The account as it is now (an admin may have changed its roles): the links follow. */
function refreshUser() {
  app.api
    .get("/api/v1/users/me")
    .then((user) => {
      if (!app.user) return;
      app.user = user;
      showChrome();
    })
    .catch(() => {}); // a 401 signs out through onUnauthorized
}

// Any action clears the messages of the one before.
main.addEventListener("submit", () => app.clearMessages(), true);
main.addEventListener("click", (event) => event.target.closest("button") && app.clearMessages(), true);
// Leaving the page while an upload is sending asks first (paused ones resume later).
window.addEventListener("beforeunload", (event) => {
  if (app.uploads?.busy()) event.preventDefault();
});

logoutButton.addEventListener("click", async () => {
  // Uploads in progress end first, while the token can still end them on the server.
  await app.uploads?.end();
  app.uploads = null;
  try {
    await app.api.json("POST", "/api/v1/auth/logout");
  } catch (error) {
    if (error.status !== 401) return app.fail(error);
  }
  forgetResumableUploads();
  app.signOut("You are logged out.");
});

/** Where the API is: the "api" of config.json beside the console ("https://api.example.com"
 *  when the console is served from another origin; "" for the console's own origin). */
async function apiBase() {
  try {
    const answer = await fetch(new URL("config.json", location.href), { cache: "no-store" });
    if (answer.ok) {
      const config = await answer.json();
      if (config?.api) return config.api;
    }
  } catch {
    // no config.json: the API is on this origin
  }
  return location.origin;
}

async function start() {
  app.api = new Api(await apiBase());
  app.api.onUnauthorized = () => app.signOut("Your session has ended: log in again.");
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    app.api.token = token;
    try {
      app.user = await app.api.get("/api/v1/users/me");
    } catch (error) {
      if (error.status !== 401) app.fail(error);
      sessionStorage.removeItem(TOKEN_KEY);
      app.api.token = null;
    }
  }
  showChrome();
  window.addEventListener("hashchange", route);
  route();
  app.ready = true;
}

// What a test or a curious user may read: whether the console has started, and its API.
window.depotConsole = {
  get ready() {
    return app.ready;
  },
  get api() {
    return app.api?.base ?? null;
  },
};

start().catch((error) => app.fail(error));

