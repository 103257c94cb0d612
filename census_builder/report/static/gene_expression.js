/* census-builder report: the Gene Expression dot plot (rows cell types, columns genes; colour = mean
   expression, size = fraction expressing). State in the URL hash: organism, tissue, groupby, genes (feature
   ids, comma-separated), so the markers page can link to a cell type's markers. */
"use strict";
(function () {
  const R = window.CBReport;
  const INDEX = window.CB_DATA.index;
  const $ = function (id) { return document.getElementById(id); };
  const state = { organism: "", tissue: "", groupby: "none", genes: [] };
  let org = null; // the organism's index
  let lookup = {}; // lower-case symbol or feature id -> gene index
  let renderCount = 0;

  function geneIndex(featureId) { return lookup[featureId.toLowerCase()]; }

  async function setOrganism(name, fromHash) {
    state.organism = name;
    org = await R.load(name + "/index");
    lookup = {};
    const ids = org.genes.id, names = org.genes.name;
    for (let i = ids.length - 1; i >= 0; i--) { lookup[names[i].toLowerCase()] = i; lookup[ids[i].toLowerCase()] = i; }
    const list = $("gene-list");
    list.textContent = "";
    const frag = document.createDocumentFragment();
    for (let i = 0; i < names.length; i++) {
      const o = document.createElement("option");
      o.value = names[i];
      frag.appendChild(o);
    }
    list.appendChild(frag);
    const tissues = org.tissues.map(function (t) { return [t.id, t.label]; });
    const wanted = fromHash && fromHash.tissue ? fromHash.tissue : org.default.tissue;
    R.fillSelect($("tissue"), tissues, wanted);
    state.tissue = $("tissue").value;
    const cats = [["none", "none"]].concat(Object.keys(org.categories).map(function (c) { return [c, c]; }));
    R.fillSelect($("groupby"), cats, fromHash && fromHash.groupby ? fromHash.groupby : state.groupby);
    state.groupby = $("groupby").value;
    const genes = fromHash && fromHash.genes !== undefined ? fromHash.genes.split(",").filter(Boolean) : (org.default.genes || []);
    state.genes = genes.filter(function (g) { return geneIndex(g) !== undefined; }).map(function (g) { return org.genes.id[geneIndex(g)]; });
  }

  function showChips() {
    const box = $("genes");
    box.textContent = "";
    for (const id of state.genes) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.featureId = id;
      chip.appendChild(document.createTextNode(org.genes.name[geneIndex(id)] + " "));
      const b = document.createElement("button");
      b.type = "button";
      b.title = "remove " + id;
      b.textContent = "\u00d7";
      b.addEventListener("click", function () { state.genes = state.genes.filter(function (g) { return g !== id; }); render(); });
      chip.appendChild(b);
      box.appendChild(chip);
    }
  }

  function rowLabel(group) {
    const ct = org.cell_types[group[0]] || group[0];
    if (state.groupby === "none") return ct + " (" + group[1].toLocaleString("en-US") + " cells)";
    const v = (org.categories[state.groupby] || {})[group[1]] || group[1];
    return ct + " \u00b7 " + v + " (" + group[2].toLocaleString("en-US") + ")";
  }

  // The method's facts (gene_expression.json "method") in words; keys this page does not know are listed as they are.
  function describeMethod(m) {
    const parts = [];
    const known = ["assays", "primary_only", "min_genes", "scale", "missing_max_count", "marker_top_n",
      "bootstrap_replicates", "marker_percentile", "group_by", "version"];
    if (m.assays) parts.push((m.primary_only ? "primary " : "") + "cells of " + Object.keys(m.assays).length + " assays (" + Object.values(m.assays).join(", ") + ")");
    if (m.min_genes !== undefined) parts.push("at least " + m.min_genes + " genes expressed");
    if (m.scale !== undefined) parts.push("ln(counts per " + m.scale + " + 1)");
    if (m.missing_max_count !== undefined) parts.push("raw counts up to " + m.missing_max_count + " treated as missing");
    if (m.marker_top_n !== undefined) parts.push("markers: top " + m.marker_top_n + " by the bootstrapped (" + m.bootstrap_replicates + " replicates) " + m.marker_percentile + "th percentile of effect sizes");
    if (m.version !== undefined) parts.push("method version " + m.version);
    Object.keys(m).filter(function (k) { return known.indexOf(k) < 0; }).forEach(function (k) { parts.push(k + ": " + JSON.stringify(m[k])); });
    return parts.join("; ");
  }

  async function render() {
    const mine = ++renderCount;
    const div = $("dotplot");
    div.dataset.rendered = "";
    window.location.replace(R.hashOf({ organism: state.organism, tissue: state.tissue, groupby: state.groupby, genes: state.genes.join(",") }));
    showChips();
    const tissue = org.tissues.find(function (t) { return t.id === state.tissue; });
    const groups = (tissue && tissue.groups[state.groupby]) || [];
    const blocks = new Set((tissue && tissue.blocks[state.groupby]) || []);
    const column = {};
    state.genes.forEach(function (id, j) { column[geneIndex(id)] = j; });
    const needed = Array.from(new Set(Object.keys(column).map(function (g) { return Math.floor(g / org.block_size[state.groupby]); })))
      .filter(function (b) { return blocks.has(b); });
    R.status(needed.length ? "loading\u2026" : "");
    const shards = await Promise.all(needed.map(function (b) { return R.load(state.organism + "/" + tissue.dir + "/" + state.groupby + "_" + b); }));
    if (mine !== renderCount) return; // a newer render started meanwhile
    const x = [], y = [], size = [], color = [], custom = [];
    const labels = groups.map(rowLabel);
    const nOf = function (r) { return groups[r][groups[r].length - 1]; };
    for (const s of shards) {
      for (let k = 0; k < s.g.length; k++) {
        const j = column[s.g[k]];
        if (j === undefined) continue;
        const n = nOf(s.r[k]);
        const frac = n > 0 ? s.e[k] / n : 0;
        x.push(j); y.push(s.r[k]); color.push(s.m[k]);
        size.push(4 + 18 * Math.sqrt(frac));
        custom.push([org.genes.name[s.g[k]], labels[s.r[k]], s.e[k], n, frac, s.m[k]]);
      }
    }
    const symbols = state.genes.map(function (id) { return org.genes.name[geneIndex(id)]; });
    const cmax = color.length ? Math.max.apply(null, color) : 1;
    const trace = {
      type: "scatter", mode: "markers", x: x, y: y, customdata: custom, name: "expression",
      marker: { size: size, color: color, colorscale: "Viridis", reversescale: true, cmin: 0, cmax: cmax > 0 ? cmax : 1,
        line: { width: 0.5, color: "#555" },
        colorbar: { title: { text: "mean ln(CPTT+1)" }, thickness: 12 } },
      hovertemplate: "<b>%{customdata[0]}</b> in %{customdata[1]}<br>mean expression %{customdata[5]:.3f}<br>" +
        "expressing %{customdata[2]:,} of %{customdata[3]:,} cells (%{customdata[4]:.1%})<extra></extra>",
    };
    const layout = {
      height: Math.max(320, 140 + 24 * groups.length), margin: { t: 90, l: 10, r: 10, b: 20 },
      xaxis: { side: "top", tickvals: symbols.map(function (_, j) { return j; }), ticktext: symbols, range: [-0.6, Math.max(symbols.length, 1) - 0.4], tickangle: -45, showgrid: false, zeroline: false, fixedrange: true },
      yaxis: { tickvals: labels.map(function (_, i) { return i; }), ticktext: labels, range: [groups.length - 0.5, -0.5], automargin: true, showgrid: true, gridcolor: "#f0f0f0", zeroline: false, fixedrange: true },
      hovermode: "closest", plot_bgcolor: "#fff",
    };
    await window.Plotly.react(div, [trace], layout, { displaylogo: false, responsive: true });
    if (mine !== renderCount) return;
    let msg = "";
    if (!tissue) msg = "no data for this organism";
    else if (!state.genes.length) msg = "pick genes to plot";
    else if (!x.length) msg = "none of these genes is expressed in " + tissue.label;
    R.status(msg);
    div.dataset.rendered = String(mine);
  }

  function addGene() {
    const input = $("gene-input");
    const wanted = input.value.trim();
    if (!wanted) return;
    const i = geneIndex(wanted);
    $("gene-msg").textContent = i === undefined ? "unknown gene: " + wanted : "";
    if (i === undefined) return;
    const id = org.genes.id[i];
    if (!state.genes.includes(id)) state.genes.push(id);
    input.value = "";
    render();
  }

  function fail(e) {
    R.status(String(e && e.message ? e.message : e));
    throw e;
  }

  async function start() {
    if (!INDEX.gene_expression || !INDEX.organisms.length) {
      $("controls").hidden = true;
      R.status("");
      const p = document.createElement("p");
      p.className = "note";
      p.id = "no-data";
      p.appendChild(document.createTextNode(INDEX.gene_expression
        ? "The Gene Expression data of this release has no organism with eligible cells."
        : "This release has no Gene Expression data yet. Produce it with: "));
      if (!INDEX.gene_expression) {
        const c = document.createElement("code");
        c.textContent = INDEX.produce;
        p.appendChild(c);
        p.appendChild(document.createTextNode(" then write the report again."));
      }
      $("dotplot").replaceWith(p);
      return;
    }
    const hash = R.readHash();
    R.fillSelect($("organism"), INDEX.organisms.map(function (o) { return [o.name, o.label]; }), hash.organism);
    await setOrganism($("organism").value, hash);
    const m = INDEX.method || {};
    $("method").textContent = Object.keys(m).length ? "Method: " + describeMethod(m) + (INDEX.cell_ontology_version ? "; Cell Ontology " + INDEX.cell_ontology_version : "") : "";
    $("organism").addEventListener("change", function () { setOrganism(this.value, null).then(render).catch(fail); });
    $("tissue").addEventListener("change", function () { state.tissue = this.value; render().catch(fail); });
    $("groupby").addEventListener("change", function () { state.groupby = this.value; render().catch(fail); });
    $("gene-add").addEventListener("click", function () { try { addGene(); } catch (e) { fail(e); } });
    $("gene-input").addEventListener("keydown", function (ev) { if (ev.key === "Enter") addGene(); });
    $("gene-clear").addEventListener("click", function () { state.genes = []; render().catch(fail); });
    await render();
  }
  start().catch(fail);
})();
