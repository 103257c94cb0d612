/* census-builder report: the top marker genes per tissue x cell type; a click on a cell type opens its
   markers in the dot plot (gene_expression.html#...). */
"use strict";
(function () {
  const R = window.CBReport;
  const INDEX = window.CB_DATA.index;
  const $ = function (id) { return document.getElementById(id); };
  const SHOWN = 10; // markers a click puts into the dot plot
  let org = null;

  async function setOrganism(name, wanted) {
    org = await R.load(name + "/index");
    const tissues = org.tissues.filter(function (t) { return t.markers; }).map(function (t) { return [t.id, t.label]; });
    R.fillSelect($("tissue"), tissues, wanted || org.default.tissue);
  }

  async function render() {
    const body = $("markers").querySelector("tbody");
    body.textContent = "";
    const tissue = org.tissues.find(function (t) { return t.id === $("tissue").value; });
    if (!tissue) { R.status("no marker genes for this organism"); return; }
    const markers = await R.load(org.organism + "/" + tissue.dir + "/markers");
    const types = Object.keys(markers).sort(function (a, b) {
      return (org.cell_types[a] || a).localeCompare(org.cell_types[b] || b);
    });
    for (const ct of types) {
      const tr = document.createElement("tr");
      tr.dataset.cellType = ct;
      const td = document.createElement("td");
      td.className = "ct";
      td.textContent = org.cell_types[ct] || ct;
      const genes = markers[ct].slice(0, SHOWN).map(function (m) { return org.genes.id[m[0]]; });
      td.title = "show these markers in the dot plot";
      td.addEventListener("click", function () {
        window.location.href = "gene_expression.html" + R.hashOf({ organism: org.organism, tissue: tissue.id, groupby: "none", genes: genes.join(",") });
      });
      const list = document.createElement("td");
      for (const m of markers[ct]) {
        const span = document.createElement("span");
        span.className = "gene";
        span.title = org.genes.id[m[0]] + ", rank " + m[2];
        span.textContent = org.genes.name[m[0]] + " (" + (m[1] === null ? "n/a" : m[1].toFixed(2)) + ")";
        list.appendChild(span);
      }
      tr.appendChild(td);
      tr.appendChild(list);
      body.appendChild(tr);
    }
    R.status(types.length ? "" : "no marker genes in this tissue");
    $("markers").dataset.rendered = tissue.id;
  }

  function fail(e) {
    R.status(String(e && e.message ? e.message : e));
    throw e;
  }

  async function start() {
    if (!INDEX.gene_expression || !INDEX.organisms.length) {
      R.status("");
      const p = document.createElement("p");
      p.className = "note";
      p.id = "no-data";
      p.textContent = "This release has no marker genes yet. Produce them with: " + INDEX.produce + " then write the report again.";
      $("markers").replaceWith(p);
      return;
    }
    const hash = R.readHash();
    R.fillSelect($("organism"), INDEX.organisms.map(function (o) { return [o.name, o.label]; }), hash.organism);
    await setOrganism($("organism").value, hash.tissue);
    $("organism").addEventListener("change", function () { setOrganism(this.value).then(render).catch(fail); });
    $("tissue").addEventListener("change", function () { render().catch(fail); });
    await render();
  }
  start().catch(fail);
})();
