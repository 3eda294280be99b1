// The example store UI, on top of tauri-plugin-trellis-api (vendor/trellis.js, copied
// from plugin/guest-js by the build). No framework, no bundler.
import * as trellis from "./vendor/trellis.js";

const $ = (selector) => document.querySelector(selector);
const el = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
};

let selected = null; // the plugin page's id
let clickedAt = null; // performance.now() of the last Install click, for click → started
let installing = null;

function say(text, error = false) {
  const message = $("#message");
  message.textContent = text;
  message.classList.toggle("error", error);
}

function failed(what, error) {
  say(`${what} failed: ${error?.message ?? error}`, true);
}

// ---- Progress: the operation's events ----
function progress(message) {
  if (message.kind !== "event") return;
  const event = message.event;
  const box = $("#progress");
  box.hidden = false;
  let text = event.event.replaceAll("_", " ");
  if (event.plugin) text += ` ${event.plugin} ${event.version ?? ""}`;
  if (event.event === "downloading" && event.bytes_total) {
    const share = Math.round((100 * event.bytes_done) / event.bytes_total);
    $("#progress-fill").style.width = `${share}%`;
    text += ` (${event.bytes_done} of ${event.bytes_total} bytes)`;
  }
  if (event.event === "hook_called") text = `${event.hook} ${event.plugin} ${event.version}: ${event.ok ? "ok" : "failed"}`;
  if (event.event === "done") $("#progress-fill").style.width = "100%";
  if (event.event === "warning") say(`warning: ${event.message}`, true);
  $("#progress-text").textContent = text;
}

function done() {
  setTimeout(() => ($("#progress").hidden = true), 600);
}

// ---- Consent: one dialog per question; the store waits for the answer ----
function consent(disclosure) {
  return new Promise((resolve) => {
    const dialog = $("#consent-dialog");
    const update = disclosure.permissions.some((p) => p.change === "unchanged");
    $("#consent-title").textContent = `${disclosure.plugin} ${disclosure.version}`;
    $("#consent-intro").textContent = update
      ? "This update asks for more than the installed release. It will be able to:"
      : "Before it is installed, allow this plugin to:";
    const list = $("#consent-permissions");
    list.replaceChildren(
      ...disclosure.permissions.map((p) =>
        el(
          "li",
          { class: p.risk, "data-key": p.key, "data-needs-consent": String(p.needs_consent) },
          p.plain,
          p.needs_consent && update ? el("span", { class: "badge new" }, "new") : "",
          el("span", { class: "badge" }, `${p.risk} risk`),
          el("span", { class: "reason" }, `The developer says: ${p.reason}`),
        ),
      ),
    );
    if (disclosure.permissions.length === 0) list.append(el("li", {}, "nothing beyond running."));
    dialog.dataset.plugin = disclosure.plugin;
    dialog.dataset.version = disclosure.version;
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "agree"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

const operation = { onEvent: progress, onConsent: consent };

// ---- Search and the plugin page ----
async function search(text) {
  try {
    const results = await trellis.search(text);
    const list = $("#results");
    if (results.hits.length === 0) {
      list.replaceChildren(el("li", { class: "empty" }, `Nothing matches “${text}”.`));
      return;
    }
    list.replaceChildren(
      ...results.hits.map((hit) =>
        el(
          "li",
          { "data-plugin": hit.id, class: hit.id === selected ? "selected" : "", onclick: () => open(hit.id) },
          el("div", { class: "name" }, hit.name, " ", el("span", { class: "meta" }, hit.latest ?? "")),
          el("div", { class: "summary" }, hit.summary || hit.id),
        ),
      ),
    );
  } catch (error) {
    failed("Search", error);
  }
}

async function open(id) {
  selected = id;
  for (const li of document.querySelectorAll("#results li")) li.classList.toggle("selected", li.dataset.plugin === id);
  try {
    const [info, installed] = await Promise.all([trellis.info(id), trellis.installed()]);
    const mine = installed.find((p) => p.id === id);
    $("#plugin-empty").hidden = true;
    const page = $("#plugin");
    page.hidden = false;
    page.dataset.plugin = id;
    $("#plugin-name").textContent = info.doc.name;
    $("#plugin-meta").textContent = `${id} · ${info.latest ?? "no release"} · from ${info.registry}` +
      (mine ? ` · installed ${mine.version}` : "");
    const hit = [...document.querySelectorAll("#results li")].find((li) => li.dataset.plugin === id);
    $("#plugin-summary").textContent = hit?.querySelector(".summary")?.textContent ?? "";
    const level = info.latest ? info.security_levels[info.latest] : null;
    const shown = $("#plugin-level");
    shown.dataset.level = level?.status === "known" ? level.level : "unknown";
    shown.textContent = !level ? "" : level.status === "known"
      ? `Security level: ${level.level} (${level.reasons.join("; ")})`
      : `Security level unknown: ${level.reason}`;
    $("#plugin-permissions").replaceChildren(
      ...info.permissions.map((p) =>
        el("li", { class: p.risk, "data-key": p.key }, p.plain, el("span", { class: "badge" }, `${p.risk} risk`),
          el("span", { class: "reason" }, p.reason)),
      ),
    );
    if (info.permissions.length === 0) $("#plugin-permissions").append(el("li", {}, "run, with no further permission."));
    const button = $("#install-button");
    button.disabled = Boolean(mine);
    button.textContent = mine ? "Installed" : "Install";
  } catch (error) {
    failed(`Opening ${id}`, error);
  }
}

async function install() {
  if (!selected || installing) return;
  installing = selected;
  clickedAt = performance.now();
  delete document.body.dataset.clickToStartMs;
  $("#install-button").disabled = true;
  say(`Installing ${selected}…`);
  try {
    const report = await trellis.install(selected, operation);
    say(`Installed ${report.installed.map(([id, v]) => `${id} ${v}`).join(", ") || "nothing new"}.`);
  } catch (error) {
    failed(`Installing ${installing}`, error);
  } finally {
    installing = null;
    done();
    await refresh();
    if (selected) await open(selected);
  }
}

// ---- Installed plugins, updates, rollback, removal ----
function stateOf(plugin) {
  if (plugin.disabled) return ["disabled", `disabled: ${plugin.disabled.reason ?? plugin.disabled.cause}`];
  const sidecar = plugin.sidecar;
  if (!sidecar || sidecar.version !== plugin.version) return ["installed", "installed"];
  if (sidecar.state === "running") return ["running", `running: ${sidecar.greeting}`];
  if (sidecar.state === "exited") return [`exited-${sidecar.code}`, `ran: ${sidecar.greeting} (exit ${sidecar.code})`];
  return ["stopped", "stopped"];
}

async function refresh() {
  try {
    const plugins = await trellis.installed();
    const body = $("#installed tbody");
    if (plugins.length === 0) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colSpan: 4 }, "No plugin installed.")));
      return;
    }
    body.replaceChildren(
      ...plugins.map((p) => {
        const [state, text] = stateOf(p);
        return el(
          "tr",
          { "data-plugin": p.id, "data-version": p.version, "data-state": state },
          el("td", {}, p.id, p.reason === "dependency" ? el("span", { class: "badge" }, "dependency") : ""),
          el("td", {}, p.version, p.pinned ? el("span", { class: "badge" }, `pinned ${p.pinned}`) : "",
            p.previous ? el("span", { class: "meta" }, ` (previous ${p.previous})`) : ""),
          el("td", { class: `state-${state}` }, text),
          el("td", { class: "actions-cell" },
            el("button", { class: "rollback", disabled: !p.previous, onclick: () => rollback(p.id) }, "Roll back"),
            el("button", { class: "remove danger", onclick: () => remove(p.id) }, "Remove")),
        );
      }),
    );
  } catch (error) {
    failed("Listing", error);
  }
}

async function checkUpdates() {
  try {
    const report = await trellis.checkUpdates();
    const list = $("#updates");
    list.replaceChildren(
      ...report.updates.map((u) =>
        el("li", { "data-plugin": u.plugin, "data-to": u.to },
          el("span", {}, `${u.plugin} ${u.from} → ${u.to}`,
            u.new_permissions.length ? el("span", { class: "badge new" }, `asks for ${u.new_permissions.join(", ")}`) : ""),
          el("button", { class: "primary update", onclick: () => update(u.plugin) }, "Update")),
      ),
    );
    say(report.updates.length ? `${report.updates.length} update(s) available.` : "Everything is up to date.");
  } catch (error) {
    failed("Checking for updates", error);
  }
}

async function update(id) {
  say(`Updating ${id}…`);
  try {
    const report = await trellis.update(id, operation);
    const moved = report.updated.map(([p, from, to]) => `${p} ${from} → ${to}`);
    const back = report.rolled_back.map(([p, to, why]) => `${p} ${to} failed and was rolled back: ${why}`);
    const skipped = report.skipped.map(([p, to, why]) => `${p} ${to} skipped: ${why}`);
    say([...moved, ...back, ...skipped].join("; ") || "Nothing to update.", back.length + skipped.length > 0);
  } catch (error) {
    failed(`Updating ${id}`, error);
  } finally {
    done();
    $("#updates").replaceChildren();
    await refresh();
  }
}

async function rollback(id) {
  try {
    const version = await trellis.rollback(id, operation);
    say(`Rolled ${id} back to ${version}; it stays there until it is unpinned.`);
  } catch (error) {
    failed(`Rolling back ${id}`, error);
  } finally {
    done();
    await refresh();
  }
}

async function remove(id) {
  try {
    const removed = await trellis.remove(id, { ...operation, cascade: true });
    say(`Removed ${removed.join(", ")}.`);
  } catch (error) {
    failed(`Removing ${id}`, error);
  } finally {
    done();
    await refresh();
    if (selected) await open(selected);
  }
}

// ---- Start ----
$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  search($("#search").value.trim());
});
$("#install-button").addEventListener("click", install);
$("#check-updates").addEventListener("click", checkUpdates);

trellis.onSidecar((payload) => {
  if (payload.state === "running" && installing && clickedAt !== null && payload.plugin === installing) {
    document.body.dataset.clickToStartMs = (performance.now() - clickedAt).toFixed(1);
  }
  refresh();
});

async function ready(status) {
  const line = $("#status");
  if (!status.open) {
    line.textContent = `The store could not be opened: ${status.error}`;
    line.dataset.ready = "error";
    return;
  }
  line.textContent = `Store ready in ${status.opened_in_ms.toFixed(1)} ms · ${status.data_dir}`;
  line.dataset.ready = "true";
  line.dataset.openedInMs = status.opened_in_ms;
  await refresh();
  await search("");
}

// The store opens on a background thread while the window loads: ask until it is open.
(async () => {
  try {
    for (;;) {
      const status = await trellis.status();
      if (status.opened_in_ms !== null) return await ready(status);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    failed("Opening the store", error);
  }
})();
