// Trellis storefront search: reads the search shards of the query's terms (the same
// documents the `trellis` client reads; the head's plugin count from catalog.json, as
// the client takes it from the catalog role) and ranks them
// with the client's rules (client/src/catalog.rs, schema/src/catalog.rs): terms, shard
// keys, field-weighted BM25 impacts × idf, last term as a prefix, one typo from 4
// characters and two from 8, × popularity; ties by id. A term its own shard does not
// match well (no exact, prefix or one-edit match) reads its typo shard (the vocabulary
// by last two characters, `typo-<key>` in catalog.json) and the shard of its best
// typo match, so a typo in its first two characters is found.
// No framework, no build step. `window.trellisSearch` exposes the ranking for tests.
(function () {
  "use strict";
  var STOP_WORDS = ["a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "its",
    "of", "on", "or", "that", "the", "this", "to", "with", "your", "you"];
  var MIN_KEY = 2, MAX_KEY = 64, ONE_EDIT = 0.6;

  function chars(s) { return Array.from(s); }

  // catalog::terms
  function terms(text) {
    var lower = chars(text.normalize("NFKC")).map(function (c) { return c.toLowerCase(); }).join("");
    return lower.split(/[^\p{Alphabetic}\p{N}]/u).filter(function (t) {
      return chars(t).length >= 2 && STOP_WORDS.indexOf(t) < 0;
    }).map(function (t) { return chars(t).slice(0, 64).join(""); });
  }
  // catalog::shard_key_of
  function shardKeyOf(term, length) {
    return chars(term).slice(0, length).map(function (c) { return /^[A-Za-z0-9]$/.test(c) ? c : "_"; }).join("");
  }
  // catalog::candidate_keys
  function candidateKeys(term) {
    var length = Math.min(chars(term).length, MAX_KEY), out = [];
    for (var n = Math.max(length, MIN_KEY); n >= MIN_KEY; n--) out.push(shardKeyOf(term, n));
    return out;
  }
  // catalog::typo_key_of
  function typoKeyOf(term, length) {
    var cs = chars(term);
    return cs.slice(Math.max(cs.length - length, 0)).map(function (c) { return /^[A-Za-z0-9]$/.test(c) ? c : "_"; }).join("");
  }
  // catalog::typo_candidate_keys
  function typoCandidateKeys(term) {
    var length = Math.min(chars(term).length, MAX_KEY), out = [];
    for (var n = Math.max(length, MIN_KEY); n >= MIN_KEY; n--) out.push(typoKeyOf(term, n));
    return out;
  }
  // catalog::typo_budget
  function typoBudget(length) { return length <= 3 ? 0 : length <= 7 ? 1 : 2; }
  // catalog::edit_distance (optimal string alignment, stops past max)
  function editDistance(a, b, max) {
    a = chars(a); b = chars(b);
    if (Math.abs(a.length - b.length) > max) return null;
    var rows = [], i, j;
    for (i = 0; i <= a.length; i++) { rows.push(new Array(b.length + 1).fill(0)); }
    for (j = 0; j <= b.length; j++) rows[0][j] = j;
    for (i = 1; i <= a.length; i++) {
      rows[i][0] = i;
      var best = rows[i][0];
      for (j = 1; j <= b.length; j++) {
        var cost = a[i - 1] !== b[j - 1] ? 1 : 0;
        var value = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, rows[i - 2][j - 2] + 1);
        rows[i][j] = value;
        best = Math.min(best, value);
      }
      if (best > max) return null;
    }
    var distance = rows[a.length][b.length];
    return distance <= max ? distance : null;
  }
  // catalog::popularity
  function popularity(s) {
    var downloads = 1 + 0.15 * Math.log10(1 + (s.downloads || 0));
    var rating = s.rating ? 1 + 0.05 * (s.rating.tenths / 10 - 3) : 1;
    return downloads * rating;
  }
  // client catalog::match_weight
  function matchWeight(query, term, last) {
    if (query === term) return 1;
    var length = chars(query).length;
    if (last && length >= 2 && term.startsWith(query)) return 0.8;
    var d = editDistance(query, term, typoBudget(length));
    if (d === null) return null;
    return d === 0 ? 1 : d === 1 ? 0.6 : 0.4;
  }
  // client catalog::passes, for the filters a browser can judge
  function passes(s, f) {
    return (!f.category || s.categories.indexOf(f.category) >= 0) &&
      (!f.tag || s.tags.indexOf(f.tag) >= 0) &&
      (!f.pricing || f.pricing.length === 0 || f.pricing.indexOf(s.pricing) >= 0) &&
      (!f.channel || s.channel === f.channel) &&
      !s.permissions.some(function (p) { return (f.without || []).indexOf(p) >= 0; });
  }
  function compareIds(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  // client catalog::own_shard: [key, shard] or null
  function ownShard(term, shards) {
    var keys = candidateKeys(term);
    for (var i = 0; i < keys.length; i++) if (shards[keys[i]]) return [keys[i], shards[keys[i]]];
    return null;
  }
  // client catalog::needs_typos
  function needsTypos(term, own, last) {
    return typoBudget(chars(term).length) > 0 && !(own && Object.keys(own[1].terms).some(function (t) {
      var w = matchWeight(term, t, last);
      return w !== null && w >= ONE_EDIT;
    }));
  }
  // client catalog::best_typo: fewest edits, then most plugins, then by term
  function bestTypo(term, typos) {
    var shard = null;
    typoCandidateKeys(term).some(function (k) { shard = typos[k] || null; return shard !== null; });
    if (!shard) return null;
    var budget = typoBudget(chars(term).length), best = null;
    Object.keys(shard.terms).forEach(function (t) {
      var d = editDistance(term, t, budget);
      if (d === null) return;
      var df = shard.terms[t];
      if (!best || d < best[0] || (d === best[0] && (df > best[1] || (df === best[1] && t < best[2])))) best = [d, df, t];
    });
    return best ? best[2] : null;
  }
  // client catalog::rank over parsed shards (key → shard) and typo shards (key → shard)
  function rank(plugins, text, filters, shards, typos, limit) {
    var qterms = terms(text), n = Math.max(plugins, 1), scores = new Map();
    qterms.forEach(function (qterm, position) {
      var last = position + 1 === qterms.length, own = ownShard(qterm, shards);
      var scanned = own ? [own[1]] : [];
      if (needsTypos(qterm, own, last)) {
        var matched = bestTypo(qterm, typos || {}), typo = matched === null ? null : ownShard(matched, shards);
        if (typo && (!own || own[0] !== typo[0])) scanned.push(typo[1]);
      }
      var best = new Map();
      scanned.forEach(function (shard) { Object.keys(shard.terms).forEach(function (term) {
        var weight = matchWeight(qterm, term, last);
        if (weight === null) return;
        var postings = shard.terms[term], df = postings.df;
        var idf = Math.max(Math.log(1 + (n - df + 0.5) / (df + 0.5)), 0.01);
        postings.postings.forEach(function (p) {
          var summary = shard.docs[p[0]];
          if (!summary) return;
          var value = weight * idf * p[1] / 1000;
          var entry = best.get(summary.id);
          if (!entry) { entry = [0, summary]; best.set(summary.id, entry); }
          if (value > entry[0]) { entry[0] = value; entry[1] = summary; }
        });
      }); });
      best.forEach(function (entry, id) {
        var score = scores.get(id);
        if (!score) { score = [0, 0, entry[1]]; scores.set(id, score); }
        score[0] += entry[0];
        score[1] += 1;
      });
    });
    var total = Math.max(qterms.length, 1), ranked = [];
    scores.forEach(function (s) {
      if (!passes(s[2], filters)) return;
      ranked.push({ summary: s[2], score: s[0] * Math.pow(s[1] / total, 2) * popularity(s[2]) });
    });
    ranked.sort(function (a, b) { return b.score - a.score || compareIds(a.summary.id, b.summary.id); });
    return ranked.slice(0, limit);
  }

  var script = document.currentScript;
  var root = script ? script.getAttribute("data-root") : "../";
  var catalogUrl = script ? script.getAttribute("data-catalog") : "catalog.json";
  var defaultIcon = script ? script.getAttribute("data-icon") : "";
  var cache = new Map();
  function getJson(url) {
    if (!cache.has(url)) {
      cache.set(url, fetch(url).then(function (r) {
        if (!r.ok) throw new Error(url + ": HTTP " + r.status);
        return r.json();
      }));
    }
    return cache.get(url);
  }
  // Reads `wanted` (key → path) into `into` (key → parsed document).
  function readAll(wanted, into) {
    var keys = Object.keys(wanted);
    return Promise.all(keys.map(function (k) { return getJson(root + wanted[k]); })).then(function (docs) {
      keys.forEach(function (k, i) { into[k] = docs[i]; });
      return into;
    });
  }
  // client Query::next_reads: what the query reads next once it has `shards` and
  // `typos` (key → parsed document), as {shards: key → path, typos: key → path}.
  // Per term: its own shard (the longest key the catalog has); when it has a typo
  // budget and that shard does not match it well (or it has none), its typo shard;
  // then the shard of its best typo match.
  function nextReads(index, qterms, shards, typos) {
    var next = { shards: {}, typos: {} }, empty = true;
    qterms.forEach(function (t, position) {
      var own = null;
      candidateKeys(t).some(function (k) { if (index.shards[k]) { own = k; return true; } return false; });
      if (own !== null && !shards[own]) { next.shards[own] = index.shards[own]; empty = false; return; }
      if (!needsTypos(t, ownShard(t, shards), position + 1 === qterms.length)) return;
      var typo = null;
      typoCandidateKeys(t).some(function (k) { if (index.shards["typo-" + k]) { typo = k; return true; } return false; });
      if (typo === null) return;
      if (!typos[typo]) { next.typos[typo] = index.shards["typo-" + typo]; empty = false; return; }
      var matched = bestTypo(t, typos);
      if (matched === null) return;
      candidateKeys(matched).some(function (k) {
        if (!index.shards[k]) return false;
        if (!shards[k]) { next.shards[k] = index.shards[k]; empty = false; }
        return true;
      });
    });
    return empty ? null : next;
  }
  // Reads what the query needs round trip by round trip (the documents of each
  // round side by side) and ranks with the head's plugin count, which the search
  // map carries: no head, one request for an exact or prefix word, two for a
  // mistyped start, three when the mistyped start names a shard of its own.
  function search(text, filters, limit) {
    return getJson(catalogUrl).then(function (index) {
      var qterms = terms(text), shards = {}, typos = {};
      var plugins = typeof index.plugins === "number" ? Promise.resolve(index.plugins) :
        getJson(root + index.head).then(function (head) { return head.plugins; });
      function round() {
        var next = nextReads(index, qterms, shards, typos);
        if (next === null) return plugins;
        return Promise.all([readAll(next.shards, shards), readAll(next.typos, typos)]).then(round);
      }
      return round().then(function (n) { return rank(n, text, filters || {}, shards, typos, limit || 20); });
    });
  }
  window.trellisSearch = { terms: terms, candidateKeys: candidateKeys, typoCandidateKeys: typoCandidateKeys,
    editDistance: editDistance, rank: rank, search: search };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function card(s) {
    var li = el("li", { "class": "card" });
    var a = el("a", { href: root + "plugins/" + s.id + "/" });
    a.appendChild(el("img", { src: s.icon ? root + s.icon : defaultIcon, alt: "", width: "48", height: "48" }));
    a.appendChild(el("span", { "class": "name" }, s.name));
    li.appendChild(a);
    var meta = s.vendor + " · " + s.version + (s.pricing !== "free" ? " · " + s.pricing : "");
    if (s.rating) meta += " · ★ " + (s.rating.tenths / 10).toFixed(1) + " (" + s.rating.count + ")";
    if (s.downloads) meta += " · " + s.downloads + " downloads";
    li.appendChild(el("span", { "class": "meta" }, meta));
    li.appendChild(el("span", { "class": "summary" }, s.summary));
    return li;
  }
  var form = document.getElementById("search");
  if (!form) return;
  var q = document.getElementById("q"), category = document.getElementById("category"), free = document.getElementById("free");
  var results = document.getElementById("results"), status = document.getElementById("status");
  var params = new URLSearchParams(location.search);
  q.value = params.get("q") || "";
  category.value = params.get("category") || "";
  free.checked = params.get("free") === "1";
  var generation = 0;
  function run() {
    var text = q.value, mine = ++generation;
    var filters = { category: category.value || null, pricing: free.checked ? ["free"] : [] };
    if (terms(text).length === 0) { results.textContent = ""; status.textContent = "Type a word to search."; return; }
    status.textContent = "Searching…";
    search(text, filters, 20).then(function (ranked) {
      if (mine !== generation) return;
      results.textContent = "";
      ranked.forEach(function (r) { results.appendChild(card(r.summary)); });
      status.textContent = ranked.length === 0 ? "No plugins match “" + text + "”." :
        ranked.length + " plugin" + (ranked.length === 1 ? "" : "s") + " match “" + text + "”.";
    }).catch(function (e) { status.textContent = "Search failed: " + e.message; });
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var next = new URLSearchParams();
    if (q.value) next.set("q", q.value);
    if (category.value) next.set("category", category.value);
    if (free.checked) next.set("free", "1");
    history.replaceState(null, "", "?" + next.toString());
    run();
  });
  q.addEventListener("input", run);
  category.addEventListener("change", run);
  free.addEventListener("change", run);
  if (q.value) run();
})();
