// Attack mode: solve the login page's proof-of-work challenge before the form is sent.
// ALTCHA v2 ("SHA-256" key derivation, deterministic counter): find the counter n for which
// SHA-256(salt | nonce | uint32be(n)) starts with the signed key prefix. No build step, no
// requests of its own. This one file is both the page script and its Web Worker(s); without
// workers it runs on the page in small slices so the page stays responsive. Web Crypto
// where the page is a secure context, plain-JS SHA-256 where it is not (a plain-http demo).
"use strict";
(function (global) {
  var FALLBACK_MAX = 10000000;

  function fromHex(hex) {
    var out = new Uint8Array(hex.length >> 1);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return out;
  }

  function toHex(bytes) {
    var s = "";
    for (var i = 0; i < bytes.length; i++) { s += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16); }
    return s;
  }

  var K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ];

  // FIPS 180-4 SHA-256 of a byte array, for pages without crypto.subtle.
  function sha256(msg) {
    var blocks = ((msg.length + 8) >> 6) + 1, padded = new Uint8Array(blocks * 64);
    padded.set(msg);
    padded[msg.length] = 0x80;
    new DataView(padded.buffer).setUint32(padded.length - 4, msg.length * 8, false);
    var h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    var w = new Int32Array(64), view = new DataView(padded.buffer);
    for (var b = 0; b < blocks; b++) {
      for (var t = 0; t < 16; t++) { w[t] = view.getInt32(b * 64 + t * 4, false); }
      for (t = 16; t < 64; t++) {
        var x = w[t - 15], y = w[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
      }
      var a = h[0], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7], bb = h[1];
      for (t = 0; t < 64; t++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var t1 = (k + S1 + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
        k = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
      }
      h[0] = (h[0] + a) | 0; h[1] = (h[1] + bb) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
      h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + k) | 0;
    }
    var out = new Uint8Array(32), ov = new DataView(out.buffer);
    for (var i = 0; i < 8; i++) { ov.setUint32(i * 4, h[i], false); }
    return out;
  }

  var subtle = global.crypto && global.crypto.subtle;

  // Give the page a turn: a message, since nested timeouts are clamped to 4 ms.
  var turns = [], channel = global.MessageChannel ? new MessageChannel() : null;
  if (channel) { channel.port1.onmessage = function () { (turns.shift() || function () {})(); }; }
  function pause() {
    return new Promise(function (done) {
      if (channel) { turns.push(done); channel.port2.postMessage(0); } else { setTimeout(done, 0); }
    });
  }

  // The derived key of one password (salt | nonce | counter): `cost` rounds of SHA-256.
  // digest() copies `data` before it returns, so the caller may change it at once.
  async function derive(data, cost) {
    var key = new Uint8Array(await subtle.digest("SHA-256", data));
    for (var i = 1; i < cost; i++) { key = new Uint8Array(await subtle.digest("SHA-256", key)); }
    return key;
  }

  function deriveNow(data, cost) {
    var key = sha256(data);
    for (var i = 1; i < cost; i++) { key = sha256(key); }
    return key;
  }

  // Counters start, start+step, ... up to max. Web Crypto digests go out in batches (one
  // await per batch, not per hash); every `slice` batches the page gets a turn.
  async function solve(p, start, step, max, slice) {
    var salt = fromHex(p.salt), nonce = fromHex(p.nonce), at = salt.length + nonce.length;
    var data = new Uint8Array(at + 4), view = new DataView(data.buffer);
    data.set(salt, 0);
    data.set(nonce, salt.length);
    var prefixHex = String(p.keyPrefix).toLowerCase(), even = prefixHex.length % 2 === 0;
    var prefix = fromHex(even ? prefixHex : prefixHex.slice(0, -1));
    var cost = Math.max(1, p.cost | 0), length = p.keyLength || 32, batch = subtle ? 64 : 256;
    for (var n = start, round = 1; n <= max; n += step * batch, round++) {
      var keys = [];
      for (var b = 0; b < batch && n + b * step <= max; b++) {
        view.setUint32(at, n + b * step, false);
        keys.push(subtle ? derive(data, cost) : deriveNow(data, cost));
      }
      if (subtle) { keys = await Promise.all(keys); }
      for (b = 0; b < keys.length; b++) {
        var key = keys[b].subarray(0, length), hit = true;
        for (var j = 0; j < prefix.length && hit; j++) { hit = key[j] === prefix[j]; }
        if (hit && (even || toHex(key).indexOf(prefixHex) === 0)) {
          return { counter: n + b * step, derivedKey: toHex(key) };
        }
      }
      if (slice && round % slice === 0) { await pause(); }
    }
    return null;
  }

  if (typeof document === "undefined") {  // running as a worker
    global.onmessage = function (event) {
      var job = event.data;
      solve(job.parameters, job.start, job.step, job.max, 0).then(
        function (found) { global.postMessage(found || { none: true }); },
        function () { global.postMessage({ failed: true }); });
    };
    return;
  }

  var form = document.querySelector("form[data-altcha]");
  if (!form) { return; }
  var src = document.currentScript && document.currentScript.src;
  var challenge = JSON.parse(form.getAttribute("data-altcha"));
  var max = parseInt(form.getAttribute("data-altcha-max"), 10) || FALLBACK_MAX;
  var field = form.querySelector("input[name=altcha]");
  var status = document.getElementById("altcha-status");
  var button = form.querySelector("button[type=submit]");
  var began = Date.now();
  document.querySelectorAll("[data-altcha-show]").forEach(function (el) { el.hidden = false; });
  say("checking");

  function say(key) {
    if (status) { status.textContent = status.getAttribute("data-" + key); status.hidden = false; }
  }

  function inWorkers() {
    return new Promise(function (resolve, reject) {
      var count = Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
      var workers = [], left = count;
      function stop() { workers.forEach(function (w) { w.terminate(); }); }
      function report(event) {
        var found = event.data;
        if (found && found.derivedKey) { stop(); resolve(found); return; }
        if (found && found.failed) { stop(); reject(new Error("worker failed")); return; }
        left -= 1;
        if (left === 0) { stop(); resolve(null); }
      }
      try {
        for (var i = 0; i < count; i++) {
          var worker = new Worker(src);
          worker.onmessage = report;
          worker.onerror = function (event) { event.preventDefault(); stop(); reject(new Error("no worker")); };
          worker.postMessage({ parameters: challenge.parameters, start: i, step: count, max: max });
          workers.push(worker);
        }
      } catch (err) {
        stop();
        reject(err);
      }
    });
  }

  var solved = (src && global.Worker ? inWorkers() : Promise.reject(new Error("no worker")))
    .catch(function () { form.setAttribute("data-altcha-mode", "page"); return solve(challenge.parameters, 0, 1, max, 8); })
    .then(function (found) {
      if (!found) { throw new Error("unsolved"); }
      var took = Date.now() - began;
      var payload = { challenge: challenge, solution: { counter: found.counter, derivedKey: found.derivedKey, time: took } };
      field.value = btoa(JSON.stringify(payload));
      form.setAttribute("data-altcha-took", String(took));
      say("done");
    });
  solved.catch(function () { say("failed"); });

  var sending = false;
  form.addEventListener("submit", function (event) {
    if (field.value || sending) { return; }
    event.preventDefault();
    sending = true;
    if (button) { button.disabled = true; }
    say("waiting");
    solved.then(function () { form.submit(); }, function () {
      sending = false;
      if (button) { button.disabled = false; }
    });
  });
})(self);
