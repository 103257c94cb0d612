/* census-builder report: what every page shares. Data files are <script>s that assign to window.CB_DATA
   (Chromium refuses fetch() of file:// URLs); load() injects one when its key is not there yet. */
"use strict";
window.CB_DATA = window.CB_DATA || {};
window.CBReport = (function () {
  const loading = {};
  function load(key) {
    if (key in window.CB_DATA) return Promise.resolve(window.CB_DATA[key]);
    if (!loading[key]) {
      loading[key] = new Promise(function (resolve, reject) {
        const s = document.createElement("script");
        s.src = "data/" + key + ".js";
        s.onload = function () {
          if (key in window.CB_DATA) resolve(window.CB_DATA[key]);
          else reject(new Error("data file data/" + key + ".js did not define its data"));
        };
        s.onerror = function () {
          delete loading[key];
          reject(new Error("cannot load data/" + key + ".js"));
        };
        document.head.appendChild(s);
      });
    }
    return loading[key];
  }
  function readHash() {
    const out = {};
    const text = window.location.hash.replace(/^#/, "");
    if (!text) return out;
    for (const part of text.split("&")) {
      const i = part.indexOf("=");
      if (i > 0) out[decodeURIComponent(part.slice(0, i))] = decodeURIComponent(part.slice(i + 1));
    }
    return out;
  }
  function hashOf(state) {
    return "#" + Object.keys(state).filter(function (k) { return state[k] !== undefined && state[k] !== ""; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(state[k]); }).join("&");
  }
  function fillSelect(select, options, value) {
    select.textContent = "";
    for (const [v, label] of options) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = label;
      select.appendChild(o);
    }
    if (value !== undefined && options.some(function (o) { return o[0] === value; })) select.value = value;
  }
  function status(text) {
    const el = document.getElementById("status");
    if (el) el.textContent = text || "";
  }
  return { load: load, readHash: readHash, hashOf: hashOf, fillSelect: fillSelect, status: status };
})();
