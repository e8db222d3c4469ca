// Building the page without HTML strings: every value from the server becomes a text node
// or an attribute, never markup, so a filename or a description cannot inject anything
// (and the Content-Security-Policy allows no inline script anyway).

/** h("button", {type: "button", onclick: f}, "Save") -> an element. Attributes named on*
 *  become listeners; false, null and undefined are left out; children may be nested arrays. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "value") element.value = value;
    else if (name === "checked") element.checked = element.defaultChecked = Boolean(value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace what `element` holds with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** Sizes as Uppy's Dashboard writes them (decimal units: "4.2 MB"), so both agree. */
export { prettierBytes as bytes } from "@transloadit/prettier-bytes";

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** The values of a form's named fields (checkbox groups as arrays of the checked values). */
export function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.type === "checkbox") {
      values[field.name] ??= [];
      if (field.checked) values[field.name].push(field.value);
    } else values[field.name] = field.value;
  }
  return values;
}

/** A button that acts on a second click within a few seconds ("Really delete?"), so a stray
 *  click does nothing and no modal dialog blocks the page. */
export function confirmButton(label, confirmLabel, action) {
  let armed = null;
  const button = h("button", { type: "button", class: "danger" }, label);
  button.addEventListener("click", () => {
    if (armed) {
      clearTimeout(armed);
      armed = null;
      button.textContent = label;
      action(button);
      return;
    }
    button.textContent = confirmLabel;
    armed = setTimeout(() => {
      armed = null;
      button.textContent = label;
    }, 4000);
  });
  return button;
}

/** A button copying `text`, saying whether it could (no clipboard off a secure origin: then
 *  the text is selected in `field` for the user to copy). */
export function copyButton(text, field, app) {
  return h(
    "button",
    {
      type: "button",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(text);
          app.notify("Copied.");
        } catch {
          field.select();
          app.notify("Selected: press Ctrl+C (⌘C) to copy.");
        }
      },
    },
    "Copy",
  );
}
