// Browse, search and filter uploads with Depot's cursor pages (GET /api/v1/uploads), and
// act on each: preview an image, download, edit its description, visibility and tags,
// create and revoke share links, delete.
import { bytes, confirmButton, copyButton, fill, formValues, h, when } from "./dom.js";

const PREVIEW_MAX_BYTES = 20 * 1024 * 1024;
const IN_MEMORY_MAX_BYTES = 32 * 1024 * 1024;
const DOWNLOAD_LINK_SECONDS = 300;
const LINK_LIFETIMES = [
  ["1 hour", 3600],
  ["1 day", 86400],
  ["7 days", 604800],
];
const COMMON_TYPES = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/pdf",
  "text/plain",
  "text/csv",
  "text/markdown",
  "application/json",
  "application/zip",
  "application/gzip",
];

export function filesView(app) {
  const previews = new Set(); // object URLs to release when the page changes
  const cursors = [null]; // cursors[i]: the cursor of page i (null: the first)
  let page = 0;
  let applied = {}; // the filters of the last search: pages turn within them
  const owners = new Map(); // owner id -> email, looked up for admins
  let closeOpen = () => {}; // closes the edit or share panel that is open

  const filters = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter files" },
    h("label", {}, "Search", h("input", { name: "q", type: "search", placeholder: "name or description" })),
    h("label", {}, "Tag", h("input", { name: "tag", placeholder: "tag" })),
    h(
      "label",
      {},
      "Type",
      h("input", { name: "content_type", list: "content-types", placeholder: "any (exact: image/png)" }),
      h("datalist", { id: "content-types" }, COMMON_TYPES.map((type) => h("option", { value: type }))),
    ),
    h(
      "label",
      {},
      "Per page",
      h(
        "select",
        { name: "per_page" },
        [10, 20, 50, 100].map((n) => h("option", { value: n, selected: n === 20 }, n)),
      ),
    ),
    h("label", { class: "inline" }, h("input", { name: "mine", type: "checkbox", value: "yes" }), "Only mine"),
    h("button", { type: "submit" }, "Search"),
  );
  const rows = h("tbody");
  const pager = h("div", { class: "pager" });
  const element = h(
    "section",
    { "aria-label": "Files" },
    h("h1", {}, "Files"),
    filters,
    h(
      "div",
      { class: "scroll" },
      h(
        "table",
        { class: "files" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["", "Name", "Size", "Type", "Visibility", "Tags", "Owner", "Uploaded", ""].map((title) => h("th", {}, title)),
          ),
        ),
        rows,
      ),
    ),
    pager,
  );

  /** The filter form's values, as the listing's query parameters. */
  function readFilters() {
    const values = formValues(filters);
    return {
      q: values.q.trim(),
      tag: values.tag.trim(),
      content_type: values.content_type.trim(),
      per_page: values.per_page,
      owner: values.mine.length ? app.user.id : "",
    };
  }

  async function load() {
    let answer;
    try {
      answer = await app.api.get("/api/v1/uploads", { ...applied, cursor: cursors[page] ?? "" });
    } catch (error) {
      return app.fail(error);
    }
    releasePreviews();
    closeOpen = () => {};
    fill(
      rows,
      answer.items.length
        ? answer.items.map(row)
        : h("tr", {}, h("td", { colspan: 9 }, page ? "No more files." : "No files match: check the filters above.")),
    );
    cursors.length = page + 1;
    if (answer.next_cursor) cursors.push(answer.next_cursor);
    fill(
      pager,
      h("button", { type: "button", disabled: page === 0, onclick: () => turn(-1) }, "← Newer"),
      h("span", {}, `Page ${page + 1}`),
      h("button", { type: "button", disabled: !answer.next_cursor, onclick: () => turn(1) }, "Older →"),
    );
  }

  function turn(step) {
    page += step;
    load();
  }

  function releasePreviews() {
    for (const url of previews) URL.revokeObjectURL(url);
    previews.clear();
  }

  async function objectUrl(upload) {
    const answer = await app.api.send("GET", upload.download_url);
    const url = URL.createObjectURL(await answer.blob());
    previews.add(url);
    return url;
  }

  function preview(upload) {
    const cell = h("td", { class: "thumb" });
    if (upload.content_type.startsWith("image/") && upload.size <= PREVIEW_MAX_BYTES) {
      objectUrl(upload)
        .then((url) => fill(cell, h("img", { src: url, alt: `Preview of ${upload.filename}` })))
        .catch((error) => fill(cell, h("span", { class: "hint", title: error.message }, "no preview")));
    }
    return cell;
  }

  function ownerCell(upload) {
    const cell = h("td", { class: "owner" });
    if (upload.owner_id === app.user.id) return fill(cell, "you");
    if (!app.user.roles.includes("admin")) return fill(cell, "another user");
    const known = owners.get(upload.owner_id);
    if (known) return fill(cell, known);
    fill(cell, upload.owner_id.slice(0, 8));
    app.api
      .get(`/api/v1/users/${upload.owner_id}`)
      .then((user) => {
        owners.set(upload.owner_id, user.email);
        fill(cell, user.email);
      })
      .catch(() => {}); // the short id stays
    return cell;
  }

  function row(upload) {
    const panel = h("td", { colspan: 9 });
    const details = h("tr", { class: "details", hidden: true }, panel);
    const close = () => {
      details.hidden = true;
      panel.replaceChildren();
    };
    const open = (content) => {
      closeOpen();
      closeOpen = close;
      details.hidden = false;
      fill(panel, content, h("button", { type: "button", class: "close", onclick: close }, "Close"));
      content.querySelector("input, textarea, select")?.focus();
    };
    const mine = upload.owner_id === app.user.id || app.user.roles.includes("admin");
    const main = h(
      "tr",
      { "data-id": upload.id },
      preview(upload),
      h("td", { class: "name" }, upload.filename, upload.description ? h("div", { class: "hint" }, upload.description) : null),
      h("td", {}, bytes(upload.size)),
      h("td", {}, upload.content_type),
      h("td", {}, upload.visibility),
      h("td", {}, upload.tags.join(", ")),
      ownerCell(upload),
      h("td", {}, when(upload.created_at)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => download(upload) }, "Download"),
        mine && h("button", { type: "button", onclick: () => open(editor(upload)) }, "Edit"),
        mine && h("button", { type: "button", onclick: () => open(sharing(upload)) }, "Share"),
        mine && confirmButton("Delete", "Really delete?", () => remove(upload)),
      ),
    );
    return [main, details];
  }

  /** A file up to IN_MEMORY_MAX_BYTES is fetched with the token and saved from memory; a
   *  larger one through a share link that lives a few minutes, which the browser streams to
   *  disk itself (a download cannot carry the Authorization header). */
  async function download(upload) {
    await app.attempt(async () => {
      let url;
      if (upload.size <= IN_MEMORY_MAX_BYTES) url = await objectUrl(upload);
      else {
        const link = await app.api.json("POST", `/api/v1/uploads/${upload.id}/links`, {
          json: { expires_in: DOWNLOAD_LINK_SECONDS },
        });
        url = link.url;
      }
      const anchor = h("a", { href: url, download: upload.filename, hidden: true });
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
    });
  }

  function editor(upload) {
    const form = h(
      "form",
      { class: "editor", "aria-label": `Edit ${upload.filename}` },
      h("label", {}, "Description", h("textarea", { name: "description", rows: 2, value: upload.description ?? "" })),
      h(
        "label",
        {},
        "Visibility",
        h(
          "select",
          { name: "visibility" },
          ["private", "public"].map((v) => h("option", { value: v, selected: v === upload.visibility }, v)),
        ),
      ),
      h("label", {}, "Tags", h("input", { name: "tags", value: upload.tags.join(", "), placeholder: "comma-separated" })),
      h("button", { type: "submit" }, "Save"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = formValues(form);
      const change = {
        description: values.description.trim() || null,
        visibility: values.visibility,
        tags: values.tags.split(",").map((t) => t.trim()).filter(Boolean),
      };
      await app.attempt(async () => {
        await app.api.json("PATCH", `/api/v1/uploads/${upload.id}`, { json: change });
        await load();
        app.notify(`Saved ${upload.filename}.`);
      });
    });
    return form;
  }

  function sharing(upload) {
    const result = h("div", { class: "link" });
    const form = h(
      "form",
      { class: "share", "aria-label": `Share ${upload.filename}` },
      h(
        "label",
        {},
        "Link valid for",
        h("select", { name: "expires_in" }, LINK_LIFETIMES.map(([label, seconds]) => h("option", { value: seconds }, label))),
      ),
      h("button", { type: "submit" }, "Create link"),
      h("button", { type: "button", class: "danger", onclick: revoke }, "Revoke all links"),
      result,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      await app.attempt(async () => {
        const link = await app.api.json("POST", `/api/v1/uploads/${upload.id}/links`, {
          json: { expires_in: Number(formValues(form).expires_in) },
        });
        const field = h("input", { class: "share-url", readonly: true, value: link.url, "aria-label": "Share link" });
        fill(
          result,
          field,
          copyButton(link.url, field, app),
          h("span", { class: "hint" }, `Anyone with this link can download the file until ${when(link.expires_at)}.`),
        );
        field.select();
      });
    });
    async function revoke() {
      await app.attempt(async () => {
        await app.api.json("DELETE", `/api/v1/uploads/${upload.id}/links`);
        fill(result);
        app.notify(`Every share link of ${upload.filename} is revoked.`);
      });
    }
    return form;
  }

  async function remove(upload) {
    await app.attempt(async () => {
      await app.api.json("DELETE", `/api/v1/uploads/${upload.id}`);
      await load();
      app.notify(`Deleted ${upload.filename}.`);
    });
  }

  function search() {
    applied = readFilters();
    cursors.length = 1;
    page = 0;
    return load();
  }
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  // A choice (page size, only mine) applies at once; typed text on Search or Enter.
  for (const name of ["per_page", "mine"]) filters.elements[name].addEventListener("change", search);
  search();
  return { element, dispose: releasePreviews };
}
