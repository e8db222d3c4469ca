// Uploads with Uppy's Dashboard (drag and drop, progress, pause and resume) through Depot's
// resumable uploads (tus, /api/v1/tus): a dropped connection costs only what was in flight,
// and after a reload the same file chosen again goes on where it stopped (Uppy keeps each
// unfinished upload's URL in localStorage, under the file's fingerprint).
// The limits of GET /api/v1/uploads/policy (largest file, allowed extensions, what is left
// of the quota) are Uppy restrictions, checked before anything is sent; what Depot (or its
// proxy) refuses all the same is shown with Depot's own message, and an upload the proxy
// refused is ended (tus DELETE), so its length stops counting against the quota at once.
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import Tus from "@uppy/tus";

import { errorFrom } from "./api.js";
import { bytes, fill, formValues, h } from "./dom.js";

const TUS_CHUNK_BYTES = 32 * 1024 * 1024;
// How long logging out waits for the server to end the uploads in progress (tus-js-client
// retries a 423 after 0, 1, 3 and 5 s: Depot frees a cut PATCH's upload within seconds).
const ENDING_PATIENCE_MS = 12_000;

/** Uppy's restrictions from the policy: no file larger than the limit or than what is left
 *  of the quota. (Not a total: Uppy would count the files of a finished batch still on show,
 *  already deducted from what is left. Several files that fit one by one but not together
 *  are refused by Depot, with its message.) */
function restrictionsOf(policy) {
  const left = policy.remaining_bytes;
  return {
    maxFileSize: left === null ? policy.max_upload_bytes : Math.min(policy.max_upload_bytes, left),
    allowedFileTypes: policy.allowed_extensions.map((ext) => `.${ext}`),
  };
}

function limitsText(policy) {
  const quota =
    policy.quota_bytes === null
      ? "no quota"
      : `${bytes(policy.remaining_bytes)} left of your ${bytes(policy.quota_bytes)} quota`;
  return `Up to ${bytes(policy.max_upload_bytes)} a file; ${quota}; allowed: ${policy.allowed_extensions.join(", ")}.`;
}

/** The answer that refused an upload, as Uppy's tus plugin hands it over. */
function answerOf(response) {
  const xhr = response?.body?.xhr;
  return xhr && xhr.status ? { status: xhr.status, text: xhr.responseText } : null;
}

// Uppy writes each failure to the browser's console as well; the console shows them itself.
const quietLogger = { debug() {}, warn() {}, error() {} };

export function uploadView(app) {
  let uppy = null;
  const limits = h("p", { class: "hint", id: "upload-limits" }, "Reading the upload policy…");
  const refusals = h("ul", { class: "refusals", id: "upload-refusals", "aria-live": "polite" });
  const stored = h("ul", { class: "stored", id: "upload-stored", "aria-live": "polite" });
  const settings = h(
    "form",
    { class: "upload-settings", "aria-label": "Upload settings" },
    h("p", { class: "hint wide" }, "For each file you upload next, unless you set its own with its ✎ (edit) button:"),
    h("label", {}, "Description", h("input", { name: "description", maxlength: 2000 })),
    h(
      "label",
      {},
      "Visibility",
      h("select", { name: "visibility" }, h("option", { value: "private" }, "private"), h("option", { value: "public" }, "public")),
    ),
    h("label", {}, "Tags", h("input", { name: "tags", placeholder: "comma-separated" })),
  );
  const target = h("div", { id: "dashboard" });
  const element = h(
    "section",
    { "aria-label": "Upload" },
    h("h1", {}, "Upload"),
    limits,
    settings,
    target,
    h("h2", { class: "small" }, "Refused"),
    refusals,
    h("h2", { class: "small" }, "Stored"),
    stored,
  );

  const fields = ["description", "visibility", "tags"];
  const ending = new Map(); // upload URL -> resolves once the server has ended that upload

  /** Each file's tus metadata when its upload starts: its name and type, then for each of
   *  Depot's fields its own value (set in the Dashboard) or else the settings above. Empty
   *  values are left out: Uppy would send an unset one as the text "undefined". */
  function metadataOf(file) {
    const defaults = formValues(settings);
    const meta = { name: file.meta.name, type: file.meta.type };
    for (const key of fields) {
      const value = String(file.meta[key] ?? "").trim() || defaults[key].trim();
      if (value) meta[key] = value;
    }
    return meta;
  }

  /** The policy as it is now, shown above the Dashboard and applied as Uppy's restrictions. */
  async function refreshPolicy() {
    const policy = await app.api.get("/api/v1/uploads/policy");
    fill(limits, limitsText(policy));
    uppy?.setOptions({ restrictions: restrictionsOf(policy) });
    return policy;
  }

  async function start() {
    const policy = await refreshPolicy();
    uppy = new Uppy({ restrictions: restrictionsOf(policy), logger: quietLogger });
    uppy.use(Dashboard, {
      inline: true,
      target,
      width: "100%",
      height: 380,
      proudlyDisplayPoweredByUppy: false,
      showProgressDetails: true,
      note: "Resumable: pause and resume at will.",
      // A file's own metadata, edited with its ✎ button; what is left empty comes from the
      // settings above.
      metaFields: [
        { id: "description", name: "Description", placeholder: "as set above" },
        { id: "tags", name: "Tags", placeholder: "comma-separated; as set above" },
        {
          id: "visibility",
          name: "Visibility",
          render: ({ value, onChange }, hh) =>
            hh(
              "select",
              { class: "uppy-u-reset uppy-c-textInput", value: value ?? "", onChange: (e) => onChange(e.target.value) },
              hh("option", { value: "" }, "as set above"),
              hh("option", { value: "private" }, "private"),
              hh("option", { value: "public" }, "public"),
            ),
        },
      ],
    });
    uppy.use(Tus, {
      endpoint: app.api.url("/api/v1/tus"),
      headers: () => ({ Authorization: `Bearer ${app.api.token}` }),
      chunkSize: TUS_CHUNK_BYTES,
      removeFingerprintOnSuccess: true,
      // Which cancelled uploads the server has ended (tus-js-client retries a 423).
      onAfterResponse: (request, answer) => {
        if (request.getMethod() === "DELETE" && answer.getStatus() !== 423) ending.get(request.getURL())?.();
      },
    });
    uppy.addPreProcessor(async (ids) => {
      for (const id of ids) uppy.setFileState(id, { meta: metadataOf(uppy.getFile(id)) });
    });
    uppy.on("restriction-failed", (file, error) => {
      const message = `${file?.name ?? "File"}: ${error.message}`;
      refusals.append(h("li", {}, message));
      app.fail(message);
    });
    uppy.on("upload-error", (file, _error, response) => {
      const answer = answerOf(response);
      const message = answer ? errorFrom(answer.status, answer.text).message : "Depot could not be reached.";
      refusals.append(h("li", { "data-file": file.name }, `${file.name}: ${message}`));
      app.fail(`${file.name}: ${message}`);
      if (answer?.status === 401) app.api.onUnauthorized();
      // A body over the proxy's limit leaves the upload created but unusable to this client
      // (its chunks are that large): end it. Depot itself ends one whose bytes it refuses.
      if (answer?.status === 413) end(file);
    });
    uppy.on("upload-success", (file, response) => {
      const xhr = response?.body?.xhr;
      const id = xhr?.getResponseHeader?.("Depot-Upload-Id") ?? response?.body?.id ?? "";
      stored.append(h("li", { "data-id": id }, `${file.name} (${bytes(file.size)})`));
    });
    uppy.on("complete", (result) => {
      if (result.successful?.length) app.notify(`Stored ${result.successful.length} file(s).`);
      refreshPolicy().catch((error) => app.fail(error));
    });
  }

  /** End a refused upload on the server (tus termination); a retry starts a new one. */
  function end(file) {
    const url = uppy.getFile(file.id)?.tus?.uploadUrl;
    if (!url) return;
    uppy.setFileState(file.id, { tus: { ...uppy.getFile(file.id).tus, uploadUrl: null } });
    fetch(url, { method: "DELETE", headers: { ...app.api.headers(), "Tus-Resumable": "1.0.0" } }).catch(() => {});
  }

  start().catch((error) => app.fail(error));
  return {
    element,
    // Kept while the user visits other views, so uploads go on: ended only at logout.
    keep: true,
    /** Whether an upload is sending now (not paused, not finished). */
    busy() {
      return (uppy?.getFiles() ?? []).some((f) => f.progress.uploadStarted && !f.progress.uploadComplete && !f.isPaused && !f.error);
    },
    /** Stop every upload and end the unfinished ones on the server (tus DELETE), waiting
     *  (at most ENDING_PATIENCE_MS) until it has: a PATCH just cut may hold its upload for a
     *  moment (423), so the token must still work meanwhile. */
    async end() {
      const urls = (uppy?.getFiles() ?? []).filter((f) => f.tus?.uploadUrl && !f.progress.uploadComplete);
      const ended = urls.map((f) => new Promise((resolve) => ending.set(f.tus.uploadUrl, resolve)));
      uppy?.cancelAll();
      await Promise.race([Promise.all(ended), new Promise((resolve) => setTimeout(resolve, ENDING_PATIENCE_MS))]);
      uppy?.destroy();
    },
    /** Stop every upload at once (the session is already over). */
    dispose() {
      uppy?.cancelAll();
      uppy?.destroy();
    },
  };
}
