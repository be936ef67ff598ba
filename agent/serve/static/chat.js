"use strict";
// The web chat: every text a person or a plugin wrote goes on screen with textContent, never as HTML.
const $ = (selector) => document.querySelector(selector);
const store = window.sessionStorage;
const conversation = store.getItem("conversation") || "web-" + Array.from(crypto.getRandomValues(new Uint32Array(2))).join("-");
store.setItem("conversation", conversation);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, onClick, aria) {
  const b = el("button", "", label);
  b.type = "button";
  if (aria) b.setAttribute("aria-label", aria);
  b.addEventListener("click", onClick);
  return b;
}

async function call(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  const key = store.getItem("key");
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const token = response.headers.get("X-Conversation-Token");
  if (token) store.setItem("token", token);  // shown when reading the conversation's events without a key
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (response.status === 401) $("#key-form").hidden = false;
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function bubble(who, text) {
  const li = el("li", "msg " + who);
  li.append(el("p", "", text));
  $("#log").append(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

async function send(text) {
  bubble("me", text);
  try {
    render(await call("POST", `/v1/conversations/${encodeURIComponent(conversation)}/messages`, { text }));
    follow();
  } catch (error) {
    bubble("error", error.message);
  }
}

// A person's replies and the hand-over's changes arrive by a long poll (it sends the key, as EventSource cannot).
const shown = new Set();
let following = false;
const STATES = { waiting: "Waiting for a person to join…", taken: "A person has joined the conversation.",
                 released: "You are back with the assistant." };

async function follow() {
  if (following) return;
  following = true;
  let after = Number(store.getItem("events") || 0);
  for (;;) {
    try {
      const token = encodeURIComponent(store.getItem("token") || "");
      const data = await call("GET", `/v1/conversations/${encodeURIComponent(conversation)}/events?after=${after}&wait=25&token=${token}`);
      data.events.forEach(showEvent);
      after = data.last;
      store.setItem("events", String(after));
    } catch (error) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

function showEvent(event) {
  if (shown.has(event.id)) return;
  shown.add(event.id);
  if (event.kind === "reply") {
    const li = bubble("person", event.text);
    li.prepend(el("p", "author", "A person"));
  } else if (STATES[event.kind]) {
    bubble("system", STATES[event.kind]);
  }
}

function render(reply) {
  for (const message of Object.values(reply.extras || {}).flatMap((extra) => extra.messages || [])) {
    showEvent({ id: message.id, kind: "reply", text: message.text });
  }
  if (!reply.text) return;  // a person has the conversation: the assistant adds nothing
  const li = bubble("agent", reply.text);
  const confidence = typeof reply.confidence === "number" ? reply.confidence.toFixed(2) : "-";
  li.append(el("p", "details", `${reply.plugin || "-"} · ${reply.label || "-"} · ${confidence}` +
                               (reply.fallback_reason ? ` · ${reply.fallback_reason}` : "")));
  if (reply.hits && reply.hits.length) {
    const sources = el("ul", "sources details");
    for (const hit of reply.hits) sources.append(el("li", "", hit.text));
    li.append(sources);
  }
  items(li, reply);
  choices(li, reply);
  thumbs(li, reply);
  li.scrollIntoView({ block: "end" });
}

function items(li, reply) {
  const found = Object.values(reply.extras || {}).flatMap((extra) => extra.items || []);
  if (!found.length) return;
  const list = el("ul", "items");
  for (const item of found) {
    const row = el("li", "item");
    const words = el("span", "", item.title || String(item.id));
    if (item.reason) words.append(el("span", "reason", item.reason));
    const like = button("Like", () => feedback(reply, { event: { kind: "like", item: String(item.id) } }, like), `Like ${item.title || item.id}`);
    row.append(words, like);
    list.append(row);
  }
  li.append(list);
}

function choices(li, reply) {
  if (!reply.choices || !reply.choices.length) return;
  const box = el("div", "choices");
  reply.choices.forEach((choice, i) => box.append(button(choice.about || choice.label, () => send(String(i + 1)))));
  li.append(box);
}

function thumbs(li, reply) {
  if (!reply.turn_id) return;
  const box = el("div", "actions");
  const up = button("Yes", () => feedback(reply, { rating: "good" }, up), "This answer helped");
  const down = button("No", () => feedback(reply, { rating: "bad" }, down), "This answer did not help");
  box.append(el("span", "", "Helpful?"), up, down);
  li.append(box);
}

async function feedback(reply, body, pressed) {
  try {
    await call("POST", `/v1/turns/${reply.turn_id}/feedback`, { ...body, conversation_id: conversation });
    pressed.setAttribute("aria-pressed", "true");
  } catch (error) {
    bubble("error", error.message);
  }
}

$("#ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("#text");
  const text = input.value.trim();
  input.value = "";
  if (text) send(text);
  input.focus();
});
$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  store.setItem("key", $("#key").value.trim());
  $("#key-form").hidden = true;
  $("#text").focus();
});
$("#details").addEventListener("change", (event) => document.body.classList.toggle("show-details", event.target.checked));
if (store.getItem("events") !== null) follow();  // after a reload: a person's replies keep arriving
