// meshgw status page: polls the REST API of the same listener every second
// and draws the mesh (nodes, relay links coloured by health, readers joined
// to the node serving them) and the tables below it.  Plain DOM and SVG, no
// libraries, nothing fetched from elsewhere.  Text from the API is only ever
// set through textContent and attributes, never parsed as HTML.
"use strict";

(function () {
  const SVGNS = "http://www.w3.org/2000/svg";
  const POLL_MS = 1000;
  const W = 900, H = 560, CX = W / 2, CY = H / 2;
  const READERS_DRAWN = 24; // per node; more are counted, not drawn
  const HEALTHS = ["good", "degraded", "bad", "unknown"];
  const RANK = { unknown: 0, good: 1, degraded: 2, bad: 3 };

  const $ = (sel) => document.querySelector(sel);

  async function get(path) {
    const res = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON: reported below */ }
    if (!res.ok) {
      throw new Error(path + ": " + res.status + (body && body.error ? " " + body.error : ""));
    }
    if (body === null) throw new Error(path + ": answer is not JSON");
    return body;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- formatting -------------------------------------------------------

  function bps(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 1e6) return (v / 1e6).toFixed(2) + " Mbit/s";
    if (v >= 1e3) return (v / 1e3).toFixed(0) + " kbit/s";
    return v.toFixed(0) + " bit/s";
  }
  function ms(sec) {
    if (sec === null || sec === undefined) return "–";
    return (sec * 1000).toFixed(sec < 0.01 ? 1 : 0) + " ms";
  }
  function pct(f) {
    if (f === null || f === undefined) return "–";
    return (f * 100).toFixed(f < 0.01 ? 2 : 1) + " %";
  }
  function num(v) { return v === null || v === undefined ? "–" : String(v); }
  function ago(t, now) {
    if (!t) return "–";
    const s = Math.max(0, Math.round((now - Date.parse(t)) / 1000));
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  // ---- the picture -------------------------------------------------------

  function layoutNodes(nodes) {
    const pos = new Map();
    const sorted = nodes.slice().sort((a, b) =>
      (b.local - a.local) || a.name.localeCompare(b.name));
    const n = sorted.length;
    const rx = n > 1 ? 250 : 0, ry = n > 1 ? 170 : 0;
    sorted.forEach((node, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      pos.set(node.name, { x: CX + rx * Math.cos(a), y: CY + ry * Math.sin(a), angle: a, node: node });
    });
    return pos;
  }

  // linkGroups merges the relays of all routes on one hop and leg: the
  // picture shows one arc per hop, coloured by its worst route.
  function linkGroups(relays) {
    const groups = new Map();
    for (const r of relays) {
      const key = r.from + "\u0000" + r.to + "\u0000" + r.leg;
      let g = groups.get(key);
      if (!g) {
        g = { from: r.from, to: r.to, leg: r.leg, streams: [], health: "unknown", loss: null, packets: 0 };
        groups.set(key, g);
      }
      g.streams.push(r.route);
      if (RANK[r.health] > RANK[g.health]) g.health = r.health;
      if (r.loss_ratio !== null) g.loss = Math.max(g.loss || 0, r.loss_ratio);
      g.packets += r.packets;
    }
    return Array.from(groups.values());
  }

  function drawMesh(data) {
    const root = $("#mesh");
    const fresh = svg("g");
    const defs = svg("defs");
    for (const h of HEALTHS) {
      const m = svg("marker", { id: "arrow-" + h, viewBox: "0 0 10 10", refX: "9", refY: "5",
        markerWidth: "5", markerHeight: "5", orient: "auto-start-reverse" });
      m.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow", style: "fill: var(--" + h + ")" }));
      defs.appendChild(m);
    }
    fresh.appendChild(defs);

    const pos = layoutNodes(data.nodes);
    if (pos.size === 0) {
      fresh.appendChild(svg("text", { x: CX, y: CY, class: "empty" }, "no nodes reported"));
    }
    const R = 26;

    // Relay links under the nodes.
    const linkLayer = svg("g", { class: "links" });
    for (const g of linkGroups(data.relays)) {
      const a = pos.get(g.from), b = pos.get(g.to);
      if (!a || !b) continue;
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      // Bend each direction (and the second leg further) to its own side so
      // a→b, b→a and two legs never overlap.
      const side = g.from < g.to ? 1 : -1;
      const bend = side * (30 + (g.leg === "b" ? 40 : 0));
      const nx = -dy / len, ny = dx / len;
      const mx = (a.x + b.x) / 2 + nx * bend, my = (a.y + b.y) / 2 + ny * bend;
      const sx = a.x + (dx / len) * R, sy = a.y + (dy / len) * R;
      const ex = b.x - (dx / len) * (R + 4), ey = b.y - (dy / len) * (R + 4);
      const path = svg("path", {
        d: `M${sx.toFixed(1)},${sy.toFixed(1)} Q${mx.toFixed(1)},${my.toFixed(1)} ${ex.toFixed(1)},${ey.toFixed(1)}`,
        class: "link " + g.health, "marker-end": `url(#arrow-${g.health})`,
        "data-from": g.from, "data-to": g.to, "data-leg": g.leg, "data-health": g.health,
        "data-routes": g.streams.join(" "),
      });
      path.appendChild(svg("title", {}, `${g.from} → ${g.to} leg ${g.leg}: ${g.streams.join(", ")}`));
      linkLayer.appendChild(path);
      const label = `${g.packets} packets · loss ${pct(g.loss)}`;
      // The curve passes half the bend out from the chord's middle; the label sits beyond it.
      const off = bend * 0.5 + Math.sign(bend) * 14;
      linkLayer.appendChild(svg("text", { x: ((a.x + b.x) / 2 + nx * off).toFixed(1),
        y: ((a.y + b.y) / 2 + ny * off + 4).toFixed(1), class: "link-label" }, label));
    }
    fresh.appendChild(linkLayer);

    // Readers fan out from their serving node, away from the centre.
    const readerLayer = svg("g", { class: "readers" });
    const byNode = new Map();
    for (const s of data.sessions) {
      if (s.kind !== "reader") continue;
      if (!byNode.has(s.node)) byNode.set(s.node, []);
      byNode.get(s.node).push(s);
    }
    for (const [name, list] of byNode) {
      const p = pos.get(name);
      if (!p) continue;
      list.sort((x, y) => x.id.localeCompare(y.id));
      const shown = list.slice(0, READERS_DRAWN);
      const out = pos.size > 1 ? p.angle : Math.PI / 2;
      const spread = Math.min(Math.PI * 0.9, 0.28 * (shown.length - 1));
      shown.forEach((s, i) => {
        const a = out + (shown.length > 1 ? -spread / 2 + (spread * i) / (shown.length - 1) : 0);
        const d = 95 + (i % 2) * 16;
        const x = p.x + d * Math.cos(a), y = p.y + d * Math.sin(a);
        const g = svg("g", { class: "reader", "data-session": s.id, "data-node": s.node, "data-route": s.route });
        g.appendChild(svg("line", { x1: p.x.toFixed(1), y1: p.y.toFixed(1), x2: x.toFixed(1), y2: y.toFixed(1), class: "reader-line" }));
        g.appendChild(svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 6, class: "reader-dot" }));
        const right = Math.cos(a) >= 0;
        g.appendChild(svg("text", { x: (x + (right ? 9 : -9)).toFixed(1), y: (y + 3).toFixed(1), class: "reader-label",
          "text-anchor": right ? "start" : "end" }, `${s.transport} ${s.remote}`));
        g.appendChild(svg("title", {}, `session ${s.id}: ${s.route} over ${s.transport} from ${s.remote}` +
          (s.user ? ` (${s.user})` : "") + (s.reception ? `, loss ${pct(s.reception.fraction_lost)}, jitter ${ms(s.reception.jitter_seconds)}` : "")));
        readerLayer.appendChild(g);
      });
      if (list.length > shown.length) {
        readerLayer.appendChild(svg("text", { x: p.x.toFixed(1), y: (p.y + R + 44).toFixed(1), class: "node-sub" },
          `+${list.length - shown.length} more readers`));
      }
    }
    fresh.appendChild(readerLayer);

    // Nodes on top.
    const nodeLayer = svg("g", { class: "nodes" });
    for (const p of pos.values()) {
      const n = p.node;
      const g = svg("g", { class: "node " + (n.up ? "up" : "down"), "data-node": n.name, "data-up": String(n.up) });
      g.appendChild(svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: R, class: "node-dot " + (n.up ? "up" : "down") }));
      g.appendChild(svg("text", { x: p.x.toFixed(1), y: (p.y - R - 8).toFixed(1), class: "node-label" }, n.name));
      const readers = (byNode.get(n.name) || []).length;
      g.appendChild(svg("text", { x: p.x.toFixed(1), y: (p.y + 4).toFixed(1), class: "node-sub", style: "fill:#fff" },
        n.up ? `${n.flows} flows` : "down"));
      g.appendChild(svg("text", { x: p.x.toFixed(1), y: (p.y + R + 16).toFixed(1), class: "node-sub" },
        (n.data_address || "") + (readers ? ` · ${readers} readers` : "")));
      g.appendChild(svg("title", {}, `${n.name}${n.local ? " (local)" : ""}: ${n.up ? "up" : "DOWN"}, capabilities ${n.capabilities.join(", ") || "none"}`));
      nodeLayer.appendChild(g);
    }
    fresh.appendChild(nodeLayer);
    root.replaceChildren(fresh);
  }

  // ---- tables -------------------------------------------------------------

  function row(cells, attrs) {
    const tr = el("tr", attrs);
    for (const c of cells) {
      if (c instanceof Node) {
        const td = el("td");
        td.appendChild(c);
        tr.appendChild(td);
      } else if (c && typeof c === "object") {
        tr.appendChild(el("td", { class: c.cls || "" }, c.text));
      } else {
        tr.appendChild(el("td", {}, c === undefined || c === null ? "" : String(c)));
      }
    }
    return tr;
  }

  function pill(word) { return el("span", { class: "pill " + word }, word); }

  function drawRoutes(data, now) {
    const streams = new Map(data.streams.map((s) => [s.name, s]));
    const readers = new Map();
    for (const s of data.sessions) {
      if (s.kind !== "reader") continue;
      if (!readers.has(s.route)) readers.set(s.route, []);
      readers.get(s.route).push(s);
    }
    const rows = [];
    for (const r of data.routes) {
      const names = r.streams.length ? r.streams : [r.name];
      for (const name of names) {
        const st = streams.get(name);
        const list = el("ul", { class: "readers" });
        for (const s of (readers.get(name) || []).sort((x, y) => x.id.localeCompare(y.id))) {
          const rep = s.reception;
          list.appendChild(el("li", { "data-session": s.id, "data-node": s.node },
            `${s.transport} from ${s.remote}${s.user ? " (" + s.user + ")" : ""} via ${s.node}, ${ago(s.started, now)}` +
            (rep ? ` — loss ${pct(rep.fraction_lost)}, jitter ${ms(rep.jitter_seconds)}, RTT ${ms(rep.rtt_seconds)}` : "")));
        }
        rows.push(row([
          name + (r.regex && name !== r.name ? ` (${r.name})` : ""),
          pill(st ? st.state : r.state),
          r.source,
          st ? st.ingest_node : "",
          { text: st ? bps(st.bitrate_in_bps) : "–", cls: "num" },
          { text: st ? bps(st.bitrate_out_bps) : "–", cls: "num" },
          list,
        ], { "data-route": name }));
      }
    }
    $("#routes tbody").replaceChildren(...rows);
  }

  function drawRelays(data) {
    $("#relays tbody").replaceChildren(...data.relays.map((r) => row([
      r.route, `${r.from} → ${r.to}`, r.leg,
      { text: String(r.packets), cls: "num" },
      { text: `${num(r.lost_before)} / ${num(r.lost_after)}`, cls: "num" },
      { text: `${num(r.nacks)} / ${num(r.retransmissions)}`, cls: "num" },
      { text: pct(r.loss_ratio), cls: "num" },
      pill(r.health),
    ], { "data-from": r.from, "data-to": r.to })));
  }

  function drawNodes(data, now) {
    $("#nodes tbody").replaceChildren(...data.nodes.map((n) => row([
      n.name + (n.local ? " (local)" : ""), pill(n.up ? "up" : "down"), n.data_address,
      n.capabilities.join(", "), { text: String(n.flows), cls: "num" },
      ago(n.attached_at, now), ago(n.last_report, now),
    ], { "data-node": n.name })));
  }

  // ---- polling ------------------------------------------------------------

  let polls = 0;

  async function poll() {
    const began = performance.now();
    try {
      const [info, routes, streams, sessions, nodes, relays] = await Promise.all(
        ["info", "routes", "streams", "sessions", "nodes", "relays"].map((p) => get("v1/" + p)));
      const data = { info, routes: routes.routes, streams: streams.streams, sessions: sessions.sessions,
        nodes: nodes.nodes, relays: relays.relays };
      const now = Date.now();
      $("#ident").textContent = `${info.role} · node ${info.node} · ${info.version}` +
        (info.revision ? ` (${info.revision.slice(0, 12)})` : "") + ` · up since ${new Date(info.started).toLocaleString()}`;
      drawMesh(data);
      drawRoutes(data, now);
      drawRelays(data);
      drawNodes(data, now);
      $("#updated").textContent = "updated " + new Date(now).toLocaleTimeString();
      $("#problem").hidden = true;
      polls++;
      document.body.dataset.polls = String(polls);
      document.body.dataset.pollMs = String(Math.round(performance.now() - began));
      delete document.body.dataset.error;
    } catch (e) {
      // Keep the last picture, say it is stale.
      $("#problem").textContent = "cannot refresh: " + e.message;
      $("#problem").hidden = false;
      document.body.dataset.error = e.message;
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
