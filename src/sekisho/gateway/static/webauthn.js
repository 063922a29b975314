// Passkeys in the portal: sign-in (button and autofill), second factor, registration.
// Plain browser JavaScript, no build step, no inline handlers (the CSP allows only this file).
// Each feature is switched on by an element with data-passkey="login" | "mfa" | "register"
// carrying data-options, data-verify, data-csrf and data-next. The pages work without it
// (password, code and recovery forms); this only adds the passkey buttons' behaviour.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    document.querySelectorAll("[data-passkey]").forEach(function (box) {
      var note = box.querySelector("[data-passkey-unsupported]");
      if (note) { note.hidden = false; }
      box.querySelectorAll("button[data-passkey-start]").forEach(function (b) { b.disabled = true; });
    });
    return;
  }

  // -- base64url <-> ArrayBuffer ----------------------------------------------------------
  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      return Object.assign({}, d, { id: toBuffer(d.id) });
    });
  }

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: toBuffer(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      allowCredentials: descriptors(json.allowCredentials)
    });
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") { return cred.toJSON(); }
    var r = cred.response;
    var response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) { response.userHandle = toText(r.userHandle); }
    }
    return {
      id: cred.id, rawId: toText(cred.rawId), type: cred.type, response: response,
      authenticatorAttachment: cred.authenticatorAttachment || null,
      clientExtensionResults: cred.getClientExtensionResults()
    };
  }

  // -- talking to the gateway -------------------------------------------------------------
  // The CSRF token: the box's own, or (sign-in page) the one in the login form.
  function csrfToken(box) {
    if (box.dataset.csrf) { return box.dataset.csrf; }
    var form = document.getElementById(box.dataset.form || "");
    var field = form && form.querySelector("input[name=csrf_token]");
    return field ? field.value : "";
  }

  function post(box, url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "content-type": "application/json", "x-csrf-token": csrfToken(box) },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.message || box.dataset.failed || "Error");
          err.redirect = data.redirect;
          throw err;
        }
        return data;
      });
    });
  }

  function showError(box, message) {
    var out = box.querySelector("[data-passkey-error]");
    if (out) { out.textContent = message; out.hidden = !message; }
  }

  function busy(box, on) {
    box.querySelectorAll("button[data-passkey-start]").forEach(function (b) { b.disabled = on; });
  }

  function failed(box, err) {
    busy(box, false);
    if (err && err.redirect) { window.location.assign(err.redirect); return; }
    // The user closed the browser's dialog or it timed out: say so plainly.
    if (err && (err.name === "NotAllowedError" || err.name === "AbortError")) {
      showError(box, box.dataset.cancelled || "");
      return;
    }
    if (err && err.name === "InvalidStateError") {
      showError(box, box.dataset.duplicate || (err.message || ""));
      return;
    }
    showError(box, (err && err.message) || box.dataset.failed || "");
  }

  // One sign-in ceremony: options, the browser's get(), verification, then on.
  function signIn(box, mediation, signal) {
    return post(box, box.dataset.options).then(function (json) {
      var request = { publicKey: requestOptions(json) };
      if (mediation) { request.mediation = mediation; }
      if (signal) { request.signal = signal; }
      return navigator.credentials.get(request);
    }).then(function (cred) {
      if (!cred) { throw new Error(box.dataset.failed || ""); }
      return post(box, box.dataset.verify, { credential: credentialJSON(cred), next: box.dataset.next });
    }).then(function (data) {
      window.location.assign(data.redirect);
    });
  }

  // -- sign-in page and second-factor page ------------------------------------------------
  function setupSignIn(box) {
    var conditional = null; // { controller, done } while autofill waits for a passkey
    var button = box.querySelector("button[data-passkey-start]");

    function stopAutofill() {
      if (!conditional) { return Promise.resolve(); }
      var running = conditional;
      conditional = null;
      running.controller.abort();
      return running.done;
    }

    if (box.dataset.passkey === "login" && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) { return; }
        var controller = new AbortController();
        var done = signIn(box, "conditional", controller.signal).catch(function (err) {
          // Autofill is quiet: the browser's own refusals (no passkey, aborted) say nothing;
          // only an answer from the gateway is shown.
          if (err instanceof DOMException || !conditional) { return; }
          failed(box, err);
        });
        conditional = { controller: controller, done: done };
      }).catch(function () { /* no autofill: the button still works */ });
      // A password sign-in ends the autofill request first (WA-09).
      var form = document.getElementById(box.dataset.form || "");
      if (form) { form.addEventListener("submit", function () { stopAutofill(); }); }
    }

    if (button) {
      button.addEventListener("click", function () {
        showError(box, "");
        busy(box, true);
        stopAutofill().then(function () {
          return signIn(box, null, null);
        }).catch(function (err) { failed(box, err); });
      });
    }
  }

  // -- registration (setup page) ----------------------------------------------------------
  function setupRegister(box) {
    var button = box.querySelector("button[data-passkey-start]");
    var name = box.querySelector("input[name=passkey_name]");
    button.addEventListener("click", function () {
      showError(box, "");
      busy(box, true);
      post(box, box.dataset.options).then(function (json) {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }).then(function (cred) {
        return post(box, box.dataset.verify, {
          credential: credentialJSON(cred), name: name ? name.value : "", next: box.dataset.next
        });
      }).then(function (data) {
        window.location.assign(data.redirect);
      }).catch(function (err) { failed(box, err); });
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (box) {
    if (box.dataset.passkey === "register") { setupRegister(box); } else { setupSignIn(box); }
  });
})();
