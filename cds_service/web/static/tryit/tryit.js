// The try-it page plays the EHR: it sends the signed CDS Hooks call itself, shows the raw
// request and response, draws the cards (rendered by /tryit/api/render), sends feedback for a
// suggestion or a dismissal, and launches a card's SMART link against the local EHR stand-in.
"use strict";

const $ = (id) => document.getElementById(id);
let last = null; // the prepared call: paths and authorizations for feedback

function pretty(value) {
  return JSON.stringify(value, null, 2);
}

function shortAuth(auth) {
  return auth ? auth.slice(0, 24) + "…" : "(none: JWT verification is off)";
}

async function postJson(path, body, headers) {
  const response = await fetch(path, {
    method: "POST",
    headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    parsed = text;
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

function filterPatients() {
  const option = $("service").selectedOptions[0];
  const allowed = option ? JSON.parse(option.dataset.patients || "[]") : [];
  let first = null;
  for (const p of $("patient").options) {
    p.hidden = p.disabled = !allowed.includes(p.value);
    if (!p.disabled && first === null) first = p;
  }
  if ($("patient").selectedOptions[0]?.disabled !== false && first) first.selected = true;
}

async function send(event) {
  event.preventDefault();
  $("status").textContent = "Sending…";
  $("cards").innerHTML = "";
  const choice = { service: $("service").value, patient: $("patient").value };
  const prep = await postJson("tryit/api/prepare", choice);
  if (prep.status !== 200) {
    $("status").textContent = "Could not prepare the call: " + diagnostics(prep.body);
    return;
  }
  last = Object.assign({ patient: choice.patient, service: choice.service }, prep.body);
  const auth = last.authorization ? { Authorization: last.authorization } : {};
  $("raw-request").textContent =
    "POST " + last.path + "\nAuthorization: " + shortAuth(last.authorization) +
    "\nContent-Type: application/json\n\n" + pretty(last.request);
  const answer = await postJson(last.path, last.request, auth);
  const timing = answer.headers.get("Server-Timing");
  $("raw-response").textContent =
    "HTTP " + answer.status + (timing ? "\nServer-Timing: " + timing : "") + "\n\n" +
    (typeof answer.body === "string" ? answer.body : pretty(answer.body));
  const drawn = await postJson("tryit/api/render", { status: answer.status, body: answer.body });
  $("cards").innerHTML = drawn.body.html;
  const count = $("cards").querySelectorAll(".cds-card").length;
  $("status").textContent = "HTTP " + answer.status + ": " + count + " card(s).";
}

function diagnostics(body) {
  if (body && body.issue && body.issue[0]) return body.issue[0].diagnostics;
  return typeof body === "string" ? body : pretty(body);
}

async function feedback(card, item, result) {
  const auth = last.feedback_authorization ? { Authorization: last.feedback_authorization } : {};
  const sent = await postJson(last.feedback_path, { feedback: [item] }, auth);
  result.textContent = sent.status === 200 ? "Feedback sent." : "Feedback refused: " +
    diagnostics(sent.body);
}

function outcomeTime() {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function launchSmart(button) {
  const launch = await postJson("tryit/ehr/launch", {
    patient: last.patient,
    at: last.at,
    appContext: button.dataset.appContext || null,
  });
  if (launch.status !== 200) {
    $("status").textContent = "Could not start the SMART launch: " + diagnostics(launch.body);
    return;
  }
  const url = new URL(button.dataset.url, window.location.href);
  url.searchParams.set("iss", launch.body.iss);
  url.searchParams.set("launch", launch.body.launch);
  window.open(url.toString(), "_blank");
}

function onCardClick(event) {
  const target = event.target;
  const card = target.closest(".cds-card");
  if (!card || !last) return;
  const result = card.querySelector(".feedback-result");
  if (target.classList.contains("suggestion")) {
    const item = { card: card.dataset.card, outcome: "accepted", outcomeTimestamp: outcomeTime() };
    if (target.dataset.suggestion) item.acceptedSuggestions = [{ id: target.dataset.suggestion }];
    feedback(card, item, result);
  } else if (target.classList.contains("dismiss")) {
    const item = { card: card.dataset.card, outcome: "overridden", outcomeTimestamp: outcomeTime() };
    const select = card.querySelector(".override-reason");
    if (select && select.value) item.overrideReason = { reason: JSON.parse(select.value) };
    feedback(card, item, result);
  } else if (target.classList.contains("smart-link")) {
    launchSmart(target);
  }
}

$("service").addEventListener("change", filterPatients);
$("call-form").addEventListener("submit", send);
$("cards").addEventListener("click", onCardClick);
filterPatients();
