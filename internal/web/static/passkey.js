// passkey.js: sign in with a passkey, and add one, on the phivault console.
// Loaded with <script src="/static/passkey.js"> (no inline script, so the
// Content-Security-Policy "script-src 'self'" allows it). It binds to the
// buttons with ids "passkey-login" and "passkey-register" when present,
// talks JSON to /passkey/{login,register}/{begin,finish} and goes to
// /console/ on success. The button "passkey-stepup" (break-the-glass page)
// re-proves a passkey through /passkey/stepup/{begin,finish} and stays on
// the page, whose form is then submitted without a code. Messages are
// shown in the element with id "passkey-status" (created after the button
// when missing).
(function () {
  "use strict";

  function b64urlToBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufToB64url(buf) {
    var b = new Uint8Array(buf), s = "";
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // csrfToken is the console's CSRF token if the page carries one.
  function csrfToken() {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) return m.getAttribute("content");
    var f = document.querySelector('input[name="csrf"]');
    return f ? f.value : "";
  }

  function post(path, body) {
    var headers = { "Content-Type": "application/json", "X-Phivault-Passkey": "1" };
    var tok = csrfToken();
    if (tok) headers["X-CSRF-Token"] = tok;
    return fetch(path, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify(body === undefined ? {} : body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) throw new Error(data.error || "the server answered " + r.status);
        return data;
      });
    });
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    pk.user.id = b64urlToBuf(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuf(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuf(c.id); });
    return { publicKey: pk };
  }

  // credentialJSON encodes a PublicKeyCredential as the server reads it.
  function credentialJSON(c) {
    var r = c.response, resp = { clientDataJSON: bufToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = bufToB64url(r.attestationObject);
      if (r.getTransports) resp.transports = r.getTransports();
    } else {
      resp.authenticatorData = bufToB64url(r.authenticatorData);
      resp.signature = bufToB64url(r.signature);
      if (r.userHandle) resp.userHandle = bufToB64url(r.userHandle);
    }
    return {
      id: c.id, rawId: bufToB64url(c.rawId), type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || undefined,
      clientExtensionResults: c.getClientExtensionResults(), response: resp
    };
  }

  // go follows a server redirect, but only to a path on this origin.
  function go(to) {
    if (typeof to !== "string" || to.charAt(0) !== "/" || to.charAt(1) === "/" || to.charAt(1) === "\\") to = "/console/";
    window.location.assign(to);
  }

  function status(button, text) {
    var el = document.getElementById("passkey-status");
    if (!el) {
      el = document.createElement("p");
      el.id = "passkey-status";
      el.setAttribute("role", "alert");
      button.insertAdjacentElement("afterend", el);
    }
    el.textContent = text;
  }

  function bind(id, run, done) {
    var button = document.getElementById(id);
    if (!button) return;
    button.addEventListener("click", function (ev) {
      ev.preventDefault();
      if (!window.PublicKeyCredential || !navigator.credentials) {
        status(button, "This browser does not support passkeys.");
        return;
      }
      button.disabled = true;
      status(button, "Waiting for your passkey...");
      run().then(function (data) {
        if (done) done(button); else go(data.redirect);
      }, function (err) {
        button.disabled = false;
        status(button, err && err.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : "Passkey failed: " + (err && err.message || err));
      });
    });
  }

  function assertion(kind) {
    return function () {
      return post("/passkey/" + kind + "/begin").then(function (o) {
        return navigator.credentials.get(requestOptions(o));
      }).then(function (c) {
        return post("/passkey/" + kind + "/finish", credentialJSON(c));
      });
    };
  }

  function start() {
    bind("passkey-login", assertion("login"));
    bind("passkey-stepup", assertion("stepup"), function (button) {
      status(button, "Passkey confirmed. Now submit the form (no code needed).");
      button.dataset.confirmed = "true";
    });
    bind("passkey-register", function () {
      return post("/passkey/register/begin").then(function (o) {
        return navigator.credentials.create(creationOptions(o));
      }).then(function (c) {
        return post("/passkey/register/finish", credentialJSON(c));
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
