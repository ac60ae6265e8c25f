// The dnnh retrieval page: no build step, no dependencies. Talks to the JSON API beside it.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let current = null;      // what was searched last: {kind: "file", file} or {kind: "item", id}
  let generation = 0;      // answers to superseded requests are dropped
  let objectUrl = null;

  async function api(url, options) {
    let resp;
    try {
      resp = await fetch(url, options);
    } catch (err) {
      throw new Error("The server cannot be reached (" + err.message + ").");
    }
    let body = null;
    try { body = await resp.json(); } catch (err) { body = null; }
    if (!resp.ok) {
      const message = body && body.error ? body.error.message : resp.statusText;
      throw new Error("Error " + resp.status + ": " + message);
    }
    return body;
  }

  function query() {
    const params = new URLSearchParams();
    params.set("k", $("k-input").value.trim() || "10");
    const radius = $("radius-input").value.trim();
    if (radius !== "") params.set("radius", radius);
    return params.toString();
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  function setStatus(text) { $("status").textContent = text; }

  function showQuery(src, caption, itemId) {
    const view = $("query-view");
    $("query-image").src = src;
    $("query-caption").textContent = caption;
    if (itemId === null) delete view.dataset.itemId; else view.dataset.itemId = String(itemId);
    view.hidden = false;
  }

  function showCode(bits, hex) {
    const strip = $("code-bits");
    strip.replaceChildren();
    for (let i = 0; i < bits.length; i++) {
      const cell = document.createElement("span");
      cell.className = "bit b" + bits[i];
      cell.textContent = bits[i];
      cell.title = "bit " + i + " = " + bits[i];
      strip.appendChild(cell);
    }
    strip.setAttribute("aria-label", bits.length + "-bit code " + bits);
    strip.dataset.bits = bits;
    $("code-hex").textContent = hex;
    $("code-view").hidden = false;
  }

  function renderResults(answer) {
    const list = $("results");
    list.replaceChildren();
    for (const r of answer.results) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      button.dataset.id = String(r.id);
      button.dataset.distance = String(r.distance);
      const what = "item " + r.id + (r.label ? ", label " + r.label : "") + ", distance " + r.distance;
      button.setAttribute("aria-label", what + ": search by this item");
      button.title = "Search by " + what;
      if (r.image_url) {
        const img = document.createElement("img");
        img.src = r.image_url;
        img.alt = "";
        img.loading = "lazy";
        button.appendChild(img);
      } else {
        const none = document.createElement("span");
        none.className = "noimg";
        none.textContent = "no image";
        button.appendChild(none);
      }
      const dist = document.createElement("span");
      dist.className = "distance";
      dist.textContent = "d = " + r.distance;
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = r.label === null || r.label === undefined ? "no label" : "label " + r.label;
      const rid = document.createElement("span");
      rid.className = "rid";
      rid.textContent = "#" + r.id;
      button.append(dist, label, rid);
      button.addEventListener("click", () => searchItem(r.id, true));
      li.appendChild(button);
      list.appendChild(li);
    }
    const t = answer.timings_ms || {};
    const parts = ["decode", "encode", "search"].filter((k) => k in t).map((k) => k + " " + t[k].toFixed(1) + " ms");
    const n = answer.results.length;
    setStatus(n + (n === 1 ? " result" : " results") + (answer.radius !== null && answer.radius !== undefined
      ? " within distance " + answer.radius : "") + (parts.length ? " · " + parts.join(" · ") : ""));
  }

  async function run(fetcher, onAnswer) {
    const mine = ++generation;
    $("search-button").textContent = "Search again";  // there is now a query to search again
    showError("");
    setStatus("Searching…");
    $("search-button").disabled = true;
    document.body.setAttribute("aria-busy", "true");
    try {
      const answer = await fetcher();
      if (mine !== generation) return;
      onAnswer(answer);
      showCode(answer.bits, answer.code);
      renderResults(answer);
    } catch (err) {
      if (mine !== generation) return;
      $("results").replaceChildren();
      setStatus("No results.");
      showError(err.message);
    } finally {
      if (mine === generation) {
        $("search-button").disabled = false;
        document.body.removeAttribute("aria-busy");
      }
    }
  }

  function searchFile(file) {
    current = { kind: "file", file: file };
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = URL.createObjectURL(file);
    showQuery(objectUrl, "Your image: " + (file.name || "dropped file"), null);
    $("code-view").hidden = true;
    const form = new FormData();
    form.append("image", file, file.name || "image");
    return run(() => api("api/search?" + query(), { method: "POST", body: form }), () => {});
  }

  function searchItem(id, moveFocus) {
    current = { kind: "item", id: id };
    $("file-input").value = "";  // the query is the item now, not the file the chooser would still name
    return run(() => api("api/items/" + encodeURIComponent(id) + "/similar?" + query()), (answer) => {
      const q = answer.query || { id: id };
      showQuery(q.image_url || "", "Item #" + q.id + (q.label ? " · label " + q.label : ""), q.id);
      if (moveFocus) $("results-heading").focus();
    });
  }

  function again() {
    if (!current) {
      showError("Choose or drop an image first.");
      return;
    }
    if (current.kind === "file") searchFile(current.file); else searchItem(current.id, false);
  }

  function setup() {
    const input = $("file-input");
    input.addEventListener("change", () => { if (input.files && input.files[0]) searchFile(input.files[0]); });
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); again(); });
    for (const id of ["k-input", "radius-input"]) $(id).addEventListener("change", () => { if (current) again(); });

    const zone = $("drop-zone");
    for (const name of ["dragenter", "dragover"]) {
      document.addEventListener(name, (ev) => { ev.preventDefault(); zone.classList.add("dragging"); });
    }
    document.addEventListener("dragleave", (ev) => {
      if (ev.target === document.documentElement || !ev.relatedTarget) zone.classList.remove("dragging");
    });
    document.addEventListener("drop", (ev) => {
      ev.preventDefault();
      zone.classList.remove("dragging");
      const file = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
      if (file) searchFile(file); else showError("Drop an image file.");
    });

    api("api/health").then((h) => {
      $("k-input").max = String(h.k_max);
      $("service-info").textContent = h.ntotal.toLocaleString() + " items · " + h.nbits + "-bit codes" +
        (h.dataset ? " · dataset " + h.dataset : "") +
        (h.writable ? " · writes on (with the token)" : " · read-only");
      document.body.dataset.ready = "true";
    }).catch((err) => {
      $("service-info").textContent = "Service unavailable.";
      showError(err.message);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup); else setup();
})();
