"use strict";
// The verification page: reads the files a person chose, hands them to the
// verifier (package proof compiled to WebAssembly) and shows its answer.
// Routes of the node it may use, all optional: the offline check needs
// none of them.
const routes = {
  genesis: "/genesis.json",
  receipt: (hash) => "/receipts/" + encodeURIComponent(hash) + ".json",
  status: (hash) => "/v1/status/" + encodeURIComponent(hash),
};

const $ = (id) => document.getElementById(id);
let fetched = null; // {hash, text} of a receipt fetched by hash

function setEngine(text, isError) {
  const e = $("engine");
  e.textContent = text;
  e.classList.toggle("error", !!isError);
}

async function loadVerifier() {
  if (typeof Go !== "function") {
    setEngine("The verifier is not built into this node (wasm_exec.js is missing): build the node with make build.", true);
    return;
  }
  let resp;
  try {
    resp = await fetch("verify.wasm");
  } catch (e) {
    setEngine("The verifier could not be loaded: " + e.message, true);
    return;
  }
  if (!resp.ok) {
    setEngine("The verifier is not built into this node (verify.wasm: HTTP " + resp.status + "): build the node with make build.", true);
    return;
  }
  const go = new Go();
  const { instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject);
  go.run(instance); // registers globalThis.credence before it returns
  if (!globalThis.credence) {
    setEngine("The verifier did not start.", true);
    return;
  }
  setEngine("Verifier ready. It runs in this page: nothing you choose is uploaded.");
  $("verify").disabled = false;
}

function chosen(id) {
  const f = $(id).files;
  return f && f.length > 0 ? f[0] : null;
}

// The trust root: a genesis file the person chose, else this node's.
async function genesis() {
  const file = chosen("genesis");
  if (file) {
    return { text: await file.text(), source: "the genesis file you chose (" + file.name + ")" };
  }
  let resp;
  try {
    resp = await fetch(routes.genesis, { cache: "no-store" });
  } catch (e) {
    return { error: "this node's genesis could not be fetched (" + e.message + "); choose a genesis file" };
  }
  if (!resp.ok) {
    return { error: "this node's genesis could not be fetched (HTTP " + resp.status + "); choose a genesis file" };
  }
  return { text: await resp.text(), source: "this node's genesis (" + routes.genesis + ")" };
}

async function receipt() {
  const file = chosen("receipt");
  if (file) return { text: await file.text(), name: file.name };
  if (fetched) return { text: fetched.text, name: "the receipt fetched for " + fetched.hash };
  return null;
}

function row(dl, term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  dl.append(dt, dd);
}

function show(res, trustText, ms) {
  const sec = $("result");
  sec.hidden = false;
  sec.classList.toggle("valid", res.valid);
  sec.classList.toggle("invalid", !res.valid);
  $("verdict").textContent = res.valid ? "VALID" : "INVALID";
  $("step").textContent = res.valid ? "" : "Failed at: " + res.step + " — " + res.reason;
  const dl = $("details");
  dl.replaceChildren();
  if (res.issuer) {
    row(dl, "Issuer", res.issuer);
    row(dl, "Height", String(res.height));
    row(dl, "Time", res.time);
    row(dl, "Batch", res.batch_seq + " (leaf " + res.leaf_index + " of " + res.leaf_count + ")");
    row(dl, "Chain", res.chain_id);
    row(dl, "Credential hash", res.credential_hash);
    row(dl, "Signing key", res.signer_key);
  }
  if (res.file_hash) {
    row(dl, "File hash", res.file_hash + (res.valid ? " (matches the receipt)" : ""));
  }
  $("trust").textContent = trustText + (ms === undefined ? "" : " Checked in " + ms.toFixed(1) + " ms.");
}

function showStatus(text, freshness, bad) {
  const sec = $("status");
  sec.hidden = false;
  sec.classList.toggle("invalid", !!bad);
  sec.classList.toggle("valid", bad === false);
  $("standing").textContent = text;
  $("freshness").textContent = freshness || "";
}

function age(seconds) {
  if (seconds < 120) return seconds + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

// The status is asked of this node and its proofs checked against the same
// genesis; an unreachable node leaves the offline verdict standing alone.
async function status(genesisText, hash) {
  let resp;
  try {
    resp = await fetch(routes.status(hash), { cache: "no-store" });
  } catch (e) {
    showStatus("Revocation status unknown: this node is not reachable. The check above needs no node.", "");
    return;
  }
  if (!resp.ok) {
    showStatus("Revocation status unknown: the node answered HTTP " + resp.status + ". The check above needs no node.", "");
    return;
  }
  const s = JSON.parse(credence.verifyStatus(genesisText, await resp.text(), Date.now()));
  if (!s.verified) {
    showStatus("The node's status answer does not verify (" + s.step + ": " + s.reason + ").", "", true);
    return;
  }
  const fresh = "As of height " + s.height + ", " + s.time + " (" + age(Math.max(0, s.age_seconds)) + " old when checked).";
  if (s.revoked) {
    showStatus("REVOKED at height " + s.revoked_at + " (reason " + (s.revocation_reason || 0) + ").", fresh, true);
  } else if (!s.stands) {
    showStatus("Does not stand: " + s.problem + ".", fresh, true);
  } else {
    showStatus("Not revoked; the issuer is active and its key not compromised.", fresh, false);
  }
}

async function verify(ev) {
  ev.preventDefault();
  $("status").hidden = true;
  const r = await receipt();
  if (!r) {
    show({ valid: false, step: "receipt", reason: "choose a receipt file, or fetch one by its hash" }, "");
    return;
  }
  const g = await genesis();
  if (g.error) {
    show({ valid: false, step: "genesis", reason: g.error }, "No trust root.");
    return;
  }
  const file = chosen("credential");
  const bytes = file ? new Uint8Array(await file.arrayBuffer()) : null;
  const t0 = performance.now();
  const res = JSON.parse(credence.verifyReceipt(g.text, r.text, bytes));
  const ms = performance.now() - t0;
  let trust = "Checked against " + g.source;
  if (res.genesis_chain_id) {
    trust += ": chain " + res.genesis_chain_id + ", " + res.genesis_validators + " validator" + (res.genesis_validators === 1 ? "" : "s");
  }
  show(res, trust + ".", ms);
  if (res.valid) await status(g.text, res.credential_hash);
}

async function fetchReceipt() {
  const hash = $("hash").value.trim();
  const note = $("fetched");
  fetched = null;
  if (!hash) {
    note.textContent = "Type the credential's hash first.";
    return;
  }
  let resp;
  try {
    resp = await fetch(routes.receipt(hash), { cache: "no-store" });
  } catch (e) {
    note.textContent = "This node is not reachable: " + e.message;
    return;
  }
  const text = await resp.text();
  if (!resp.ok) {
    let msg = "HTTP " + resp.status;
    try { msg = JSON.parse(text).message || msg; } catch (e) { /* not JSON: keep the status */ }
    note.textContent = "No receipt: " + msg;
    return;
  }
  fetched = { hash: hash, text: text };
  $("receipt").value = "";
  note.textContent = "Receipt fetched from this node; press Verify (it is checked here, not trusted).";
}

$("check").addEventListener("submit", verify);
$("fetch").addEventListener("click", fetchReceipt);
$("receipt").addEventListener("change", () => { fetched = null; $("fetched").textContent = ""; });
loadVerifier();
