"use strict";
// The verification page: reads the files a person chose, hands them to the
// verifier (package proof compiled to WebAssembly) and shows its answer.
// Routes of the node it may use, all optional: the offline check needs
// none of them.
const routes = {
  genesis: "/genesis.json",
  statusLists: "/v1/statuslists/",
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
  // Streaming compiles while the bytes arrive, and lets the browser keep
  // the compiled code for the next visit (the node sends an ETag).
  let instance;
  if (WebAssembly.instantiateStreaming && (resp.headers.get("Content-Type") || "").startsWith("application/wasm")) {
    ({ instance } = await WebAssembly.instantiateStreaming(resp, go.importObject));
  } else {
    ({ instance } = await WebAssembly.instantiate(await resp.arrayBuffer(), go.importObject));
  }
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

// unreadable marks a failure to read a file the person chose (moved,
// deleted or changed since): the page could not check, it did not find
// the credential invalid.
class Unreadable extends Error {}

async function read(file, asText) {
  try {
    return asText ? await file.text() : new Uint8Array(await file.arrayBuffer());
  } catch (e) {
    throw new Unreadable("the file " + file.name + " could not be read (" + (e.message || e.name) +
      "); it may have been moved or changed since it was chosen: choose it again");
  }
}

// size in decimal units, as file managers show them: 50,000,000 bytes is
// 50.0 MB.
function size(bytes) {
  if (bytes < 1000) return bytes + " bytes";
  if (bytes < 1e6) return (bytes / 1e3).toFixed(1) + " kB";
  return (bytes / 1e6).toFixed(1) + " MB";
}

// The trust root: a genesis file the person chose, else this node's.
async function genesis() {
  const file = chosen("genesis");
  if (file) {
    return { text: await read(file, true), source: "the genesis file you chose (" + file.name + ")" };
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
  if (file) {
    // Refused by its size before it is read: a large file read as text
    // would also be counted in UTF-8 bytes, not the file's.
    if (file.size > credence.maxReceiptBytes) {
      return { error: file.name + " is " + size(file.size) + ", more than the " + size(credence.maxReceiptBytes) + " a receipt file may be: it is not a receipt" };
    }
    return { text: await read(file, true), name: file.name };
  }
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

// verdict sets the one answer and its colour: green VALID, red INVALID,
// REVOKED or SUSPENDED, grey COULD NOT CHECK.
function verdict(text, kind) {
  const sec = $("result");
  sec.hidden = false;
  sec.className = kind;
  $("verdict").textContent = text;
}

function unchecked(why, trustText) {
  verdict("COULD NOT CHECK", "unchecked");
  $("step").textContent = why;
  $("details").replaceChildren();
  $("trust").textContent = trustText || "";
}

function show(res, trustText, ms) {
  verdict(res.valid ? "VALID" : "INVALID", res.valid ? "valid" : "invalid");
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

// The ledger gives revocation reason codes no meaning: the issuer chose
// the number; the page says so rather than show a bare "reason 3".
function reasonText(code) {
  if (!code) return "no reason code given";
  return "reason code " + code + " (the issuer's own code: Credence does not define reason codes; ask the issuer what " + code + " means)";
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
  // One verdict: a credential that does not stand is not shown VALID.
  if (s.revoked) {
    verdict("REVOKED", "invalid");
    showStatus("Revoked at height " + s.revoked_at + ", " + reasonText(s.revocation_reason) + ".", fresh, true);
  } else if (!s.stands) {
    verdict("INVALID", "invalid");
    $("step").textContent = "Failed at: status — " + s.problem;
    showStatus("Does not stand: " + s.problem + ".", fresh, true);
  } else {
    showStatus("Not revoked; the issuer is active and its key not compromised.", fresh, false);
  }
}

async function verify(ev) {
  ev.preventDefault();
  $("status").hidden = true;
  try {
    await check();
  } catch (e) {
    if (!(e instanceof Unreadable)) throw e;
    unchecked("Could not check: " + e.message + ".");
  }
}

async function check() {
  const r = await receipt();
  const file = chosen("credential");
  // A Verifiable Credential carries its receipt (an anchor proof): it
  // needs no receipt file.
  if (!r && file) {
    const bytes = await read(file, false);
    if (isCredential(bytes)) {
      await checkCredential(bytes);
      return;
    }
  }
  if (!r) {
    show({ valid: false, step: "receipt", reason: "choose a receipt file, or fetch one by its hash" }, "");
    return;
  }
  if (r.error) {
    show({ valid: false, step: "receipt", reason: r.error }, "");
    return;
  }
  const g = await genesis();
  if (g.error) {
    unchecked("Could not check: " + g.error + ".", "No trust root.");
    return;
  }
  const bytes = file ? await read(file, false) : null;
  const t0 = performance.now();
  const res = JSON.parse(credence.verifyReceipt(g.text, r.text, bytes));
  const ms = performance.now() - t0;
  show(res, trustLine(g, res), ms);
  if (res.valid) await status(g.text, res.credential_hash);
}

function isCredential(bytes) {
  if (bytes.length > 16e6) return false;
  try {
    const doc = JSON.parse(new TextDecoder().decode(bytes));
    return !!doc && typeof doc === "object" && !Array.isArray(doc) && "@context" in doc;
  } catch (e) {
    return false;
  }
}

function trustLine(g, res) {
  let trust = "Checked against " + g.source;
  if (res.genesis_chain_id) {
    trust += ": chain " + res.genesis_chain_id + ", " + res.genesis_validators + " validator" + (res.genesis_validators === 1 ? "" : "s");
  }
  return trust + ".";
}

const verdictKinds = { "VALID": "valid", "COULD NOT CHECK": "unchecked" };

// checkCredential verifies a credential that carries its own anchor proof,
// offline, then its status from the node that served this page: the
// issuer's signed list and the ledger's proof of it.
async function checkCredential(bytes) {
  const g = await genesis();
  if (g.error) {
    unchecked("Could not check: " + g.error + ".", "No trust root.");
    return;
  }
  const res = JSON.parse(credence.verifyCredential(g.text, bytes));
  verdict(res.verdict, verdictKinds[res.verdict] || "invalid");
  const lead = res.verdict === "COULD NOT CHECK" ? "Could not check: " : "Failed at: ";
  $("step").textContent = res.verdict === "VALID" || !res.step ? "" : lead + res.step + " — " + res.reason;
  const dl = $("details");
  dl.replaceChildren();
  if (res.issuer) row(dl, "Issuer", res.issuer);
  if (res.credential_hash) row(dl, "Credential hash", res.credential_hash);
  for (const a of res.anchors || []) {
    row(dl, "Anchored", "at height " + a.height + ", " + a.time + ", by " + a.member + " on chain " + a.chain_id);
    row(dl, "Signing key", a.signer_key);
  }
  $("trust").textContent = trustLine(g, res);
  if (res.verdict !== "VALID") return;
  if (!res.status || res.status.length === 0) {
    showStatus("The credential names no status list: it cannot be revoked through one.", "", false);
    return;
  }
  for (const st of res.status) {
    if (!await listStatus(g.text, res.issuer, st)) return;
  }
}

// listStatus checks one status entry; false when it settled the verdict.
async function listStatus(genesisText, issuer, st) {
  const couldNot = (why) => {
    unchecked("Could not check the status: " + why + ". The offline checks passed; the credential's status is unknown.", $("trust").textContent);
    return false;
  };
  if (!st.path) return couldNot("its status list (" + st.entry.StatusListCredential + ") is not served by a Credence node");
  let list, ex;
  try {
    list = await fetch(st.path, { cache: "no-store" });
    if (!list.ok) return couldNot("the node answered HTTP " + list.status + " for " + st.path);
    const height = list.headers.get("Credence-Height");
    ex = await fetch(st.path + "?format=export" + (height ? "&height=" + encodeURIComponent(height) : ""), { cache: "no-store" });
    if (!ex.ok) return couldNot("the node answered HTTP " + ex.status + " for the ledger's proof of " + st.path);
  } catch (e) {
    return couldNot("this node is not reachable (" + e.message + ")");
  }
  const s = JSON.parse(credence.verifyListStatus(genesisText, JSON.stringify(st.entry), await list.text(), await ex.text(), issuer, Date.now()));
  if (!s.verified) {
    // Every honest member checks a list before serving it: one that fails
    // says something about this node, not the credential (as the CLI).
    return couldNot("the status list this node served does not verify (" + s.step + ": " + s.reason + "); ask another member's node");
  }
  const fresh = "As of height " + s.height + ", " + s.time + " (" + age(Math.max(0, s.age_seconds)) + " old when checked); list " + st.entry.StatusListCredential + ", entry " + st.entry.StatusListIndex + ".";
  if (s.set) {
    const word = s.purpose === "suspension" ? "SUSPENDED" : "REVOKED";
    verdict(word, "invalid");
    showStatus((word === "SUSPENDED" ? "Suspended" : "Revoked") + " by its issuer: the entry is set in the issuer's status list, and the ledger proves it.", fresh, true);
    return false;
  }
  showStatus("Not " + (s.purpose === "suspension" ? "suspended" : "revoked") + ": the entry is clear in the issuer's status list, and the ledger proves it.", fresh, false);
  return true;
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

// kind sorts a dropped file into the form's slots by what it holds: a
// receipt, a genesis, else the credential itself.
async function kind(file) {
  if (/\.receipt\.json$/i.test(file.name)) return "receipt";
  if (file.size > 64e6) return "credential";
  let doc;
  try {
    doc = JSON.parse(await read(file, true));
  } catch (e) {
    if (e instanceof Unreadable) throw e;
    return "credential"; // not JSON: a credential file of any form
  }
  if (doc && typeof doc === "object") {
    if ("genesis_time" in doc && "chain_id" in doc) return "genesis";
    if ("audit_path" in doc && "batch" in doc) return "receipt";
  }
  return "credential";
}

const slotNames = { receipt: "receipt", credential: "credential", genesis: "genesis" };

async function sortFiles(list) {
  const note = $("sorted");
  const placed = [];
  try {
    for (const file of Array.from(list)) {
      const slot = await kind(file);
      const dt = new DataTransfer();
      dt.items.add(file);
      $(slot).files = dt.files;
      if (slot === "receipt") { fetched = null; $("fetched").textContent = ""; }
      placed.push(file.name + " → " + slotNames[slot]);
    }
  } catch (e) {
    if (!(e instanceof Unreadable)) throw e;
    note.textContent = "Could not read: " + e.message + ".";
    return;
  }
  note.textContent = placed.length ? "Taken: " + placed.join("; ") + ". Press Verify." : "";
}

function dropArea() {
  const area = $("drop");
  const over = (on) => (ev) => {
    ev.preventDefault();
    area.classList.toggle("over", on);
  };
  area.addEventListener("dragenter", over(true));
  area.addEventListener("dragover", over(true));
  area.addEventListener("dragleave", over(false));
  area.addEventListener("drop", (ev) => {
    over(false)(ev);
    if (ev.dataTransfer && ev.dataTransfer.files.length) sortFiles(ev.dataTransfer.files);
  });
  // A file dropped beside the area would make the browser open it in
  // place of the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  $("choose").addEventListener("click", () => $("dropped").click());
  $("dropped").addEventListener("change", () => sortFiles($("dropped").files));
}

dropArea();
$("check").addEventListener("submit", verify);
$("fetch").addEventListener("click", fetchReceipt);
$("receipt").addEventListener("change", () => { fetched = null; $("fetched").textContent = ""; });
loadVerifier();
