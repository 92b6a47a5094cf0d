// The inbox page. Message data only ever reaches the DOM through textContent,
// attribute values we build, or the sandboxed iframe: never through innerHTML.
"use strict";

const API = "/api/v1";
const RAW_SHOWN_INLINE = 2 * 1024 * 1024;
const $ = (id) => document.getElementById(id);

const state = { messages: [], selected: null, query: "", info: null, tab: "html" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, options) {
  const response = await fetch(API + path, options);
  if (!response.ok && response.status !== 204) {
    let message = response.status + " " + response.statusText;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function when(iso) {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

function size(bytes) {
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(1) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

// ---- the list ----

function row(message, isNew) {
  const item = el("li", isNew ? "new" : "");
  item.dataset.id = message.id;
  item.tabIndex = 0;
  item.append(
    el("span", "m-from", message.from || message.mail_from || "(no sender)"),
    el("span", "m-time", when(message.received)),
    el("span", "m-subject", message.subject || "(no subject)"),
    el("span", "m-to", "to " + (message.to.join(", ") || message.rcpt_tos.join(", ")) + " · " + size(message.size)),
  );
  if (message.id === state.selected) item.classList.add("selected");
  item.addEventListener("click", () => openMessage(message.id));
  item.addEventListener("keydown", (event) => { if (event.key === "Enter") openMessage(message.id); });
  return item;
}

function renderList(newId) {
  const list = $("messages");
  list.replaceChildren(...state.messages.map((m) => row(m, m.id === newId)));
  $("empty").hidden = state.messages.length > 0;
  const total = state.total;
  $("count").textContent = state.query
    ? state.messages.length + " of " + total + " match"
    : total + (total === 1 ? " message" : " messages");
}

async function loadList() {
  const query = state.query ? "&query=" + encodeURIComponent(state.query) : "";
  const data = await (await api("/messages?limit=200" + query)).json();
  state.messages = data.messages;
  state.total = data.total;
  renderList();
}

function onAdded(summary) {
  if (state.query) { loadList(); return; } // the server decides what matches
  state.messages.unshift(summary);
  state.messages.length = Math.min(state.messages.length, 200);
  state.total += 1;
  renderList(summary.id);
}

function onDeleted(id) {
  state.messages = state.messages.filter((m) => m.id !== id);
  state.total = Math.max(0, state.total - 1);
  renderList();
  if (state.selected === id) closeMessage();
}

// ---- one message ----

function closeMessage() {
  state.selected = null;
  $("view-pane").hidden = true;
  $("v-html").removeAttribute("src");
  if (location.hash) history.replaceState(null, "", location.pathname);
  renderList();
}

function meta(label, value) {
  if (!value || (Array.isArray(value) && !value.length)) return [];
  return [el("dt", "", label), el("dd", "", Array.isArray(value) ? value.join(", ") : value)];
}

function selectTab(name) {
  state.tab = name;
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.id === "tab-" + name);
  if (name === "raw") showRaw();
}

async function showRaw() {
  const message = state.detail;
  const pre = $("v-raw");
  if (pre.dataset.id === message.id) return;
  pre.dataset.id = message.id;
  if (message.size > RAW_SHOWN_INLINE) {
    pre.textContent = "The source is " + size(message.size) + ": use Download .eml.";
    return;
  }
  pre.textContent = await (await api("/messages/" + message.id + "/raw")).text();
}

async function openMessage(id) {
  let message;
  try {
    message = await (await api("/messages/" + encodeURIComponent(id))).json();
  } catch (error) {
    $("v-notice").textContent = String(error.message);
    return;
  }
  state.selected = id;
  state.detail = message;
  history.replaceState(null, "", "#" + id);
  for (const item of $("messages").children) item.classList.toggle("selected", item.dataset.id === id);
  $("view-pane").hidden = false;
  $("v-subject").textContent = message.subject || "(no subject)";
  const envelope = message.envelope;
  $("v-meta").replaceChildren(
    ...meta("From", message.from),
    ...meta("To", message.to),
    ...meta("Cc", message.cc),
    ...meta("Date", message.date),
    ...meta("Received", when(message.received) + " from " + (Array.isArray(envelope.peer) ? envelope.peer[0] : envelope.peer || "?")),
    ...meta("Envelope", "MAIL FROM:<" + envelope.mail_from + "> RCPT TO:" + envelope.rcpt_tos.map((r) => "<" + r + ">").join(" ")),
    ...meta("Size", size(message.size)),
  );
  $("v-download").href = message.raw_url + "?download=1";
  $("v-release").hidden = !(state.info && state.info.relay);
  $("v-notice").textContent = (message.text_truncated || message.html_truncated)
    ? "The body is long: only its first part is shown here; the raw source has it all." : "";

  const frame = $("v-html");
  if (message.html_url) frame.src = message.html_url; else frame.removeAttribute("src");
  $("v-text").textContent = message.text === null ? "(no plain-text part)" : message.text;
  $("v-headers").replaceChildren(...message.headers.map(([name, value]) => {
    const line = el("tr");
    line.append(el("td", "", name), el("td", "", value));
    return line;
  }));
  $("v-raw").textContent = "";
  delete $("v-raw").dataset.id;
  $("v-attachments").replaceChildren(...message.attachments.map((part) => {
    const item = el("li");
    const link = el("a", "", part.filename || part.content_id || "part " + part.index);
    link.href = part.url;
    link.setAttribute("download", "");
    item.append(link, document.createTextNode(" — " + part.content_type + ", " + size(part.size)));
    return item;
  }));
  const available = { html: !!message.html_url, text: message.text !== null, attachments: message.attachments.length > 0 };
  for (const button of document.querySelectorAll(".tabs button")) {
    const name = button.dataset.tab;
    button.disabled = name in available && !available[name];
    if (name === "attachments") button.textContent = "Attachments (" + message.attachments.length + ")";
  }
  selectTab(available[state.tab] === false ? (available.html ? "html" : available.text ? "text" : "headers") : state.tab);
}

// ---- actions ----

async function deleteSelected() {
  if (state.selected) await api("/messages/" + state.selected, { method: "DELETE" });
}

async function deleteAll() {
  if (confirm("Delete every message?")) await api("/messages", { method: "DELETE" });
}

async function releaseSelected() {
  const message = state.detail;
  const answer = prompt("Release through " + state.info.relay + " to (comma-separated):", message.rcpt_tos.join(", "));
  if (answer === null) return;
  const to = answer.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const result = await (await api("/messages/" + message.id + "/release", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ to }),
    })).json();
    const refused = Object.keys(result.refused);
    $("v-notice").textContent = "Released to " + result.to.join(", ") + (refused.length ? "; refused: " + refused.join(", ") : "");
  } catch (error) {
    $("v-notice").textContent = "Release failed: " + error.message;
  }
}

// ---- live updates ----

function listen() {
  const events = new EventSource(API + "/events");
  const badge = $("live");
  events.addEventListener("ready", () => { badge.textContent = "live"; badge.classList.add("on"); loadList(); });
  events.addEventListener("added", (event) => onAdded(JSON.parse(event.data)));
  events.addEventListener("deleted", (event) => onDeleted(JSON.parse(event.data).id));
  events.addEventListener("cleared", () => { state.messages = []; state.total = 0; renderList(); closeMessage(); });
  events.addEventListener("overflow", loadList);
  events.addEventListener("error", () => { badge.textContent = "reconnecting…"; badge.classList.remove("on"); });
}

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

async function start() {
  $("search").addEventListener("input", debounce((event) => { state.query = event.target.value.trim(); loadList(); }, 200));
  $("delete-all").addEventListener("click", deleteAll);
  $("v-delete").addEventListener("click", deleteSelected);
  $("v-release").addEventListener("click", releaseSelected);
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  state.info = await (await api("/info")).json();
  await loadList();
  listen();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (/^[0-9]+$/.test(wanted)) openMessage(wanted);
}

start();
