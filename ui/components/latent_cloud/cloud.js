// The latent cloud explorer: a Streamlit components.v2 module (no iframe, no build step, no network).
// Python (ui/components/latent_cloud/__init__.py) sends one packed byte string per redraw:
//   "LVC1", uint32 header length, a JSON header (padded to 4 bytes), then little-endian arrays (4-byte aligned).
// Three modes share this file: "live" (the Train view's clouds), "replay" (Latent & OT's kept frames) and
// "curves" (the fit curves). Nothing here fetches anything: every byte comes in the packet.

const SPRITES = new Map();     // run token -> {img, cols, w, h, labels, index}: sent once per run, kept per tab
const INSTANCES = new WeakMap(); // parentElement -> instance (the module is called again on every new packet)
const CLASS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const RUNS = { ours: "#1f77b4", ABP: "#d62728" };
const HIT_PX = 7, TAP_PX = 16;  // hover / tap radius in CSS pixels

function unpack(u8) {
  const buf = u8.slice().buffer;  // a copy: aligned for Float32Array whatever the protobuf's offset
  const dv = new DataView(buf);
  const magic = String.fromCharCode(...new Uint8Array(buf, 0, 4));
  if (magic !== "LVC1") throw new Error("latent_cloud: not a packet (" + magic + ")");
  const n = dv.getUint32(4, true);
  const h = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  const base = 8 + n;
  const types = { f4: Float32Array, u1: Uint8Array, i4: Int32Array, u2: Uint16Array };
  const blob = (name) => {
    const b = h.blobs && h.blobs[name];
    if (!b) return null;
    const T = types[b[2]];
    return new T(buf, base + b[0], b[1] / T.BYTES_PER_ELEMENT);
  };
  return { h, blob };
}

function el(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

let lastURLs = [];
function pngURL(bytes) {  // the inspector shows one answer at a time: the older answers' URLs are let go
  if (!bytes) return null;
  const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
  lastURLs.push(url);
  while (lastURLs.length > 8) URL.revokeObjectURL(lastURLs.shift());
  return url;
}

function niceTicks(lo, hi, n) {
  const span = hi - lo || 1, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= n) || 10 * mag;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) out.push(+t.toPrecision(12));
  return out;
}

function fmt(v) {  // ticks and values: 2, 2.5, 0.25, 130 (no "2.0", no exponent)
  if (!isFinite(v)) return "–";
  return Math.abs(v) >= 100 ? v.toFixed(0) : String(+v.toPrecision(Math.abs(v) >= 10 ? 3 : 2));
}

function quantileAbs(arrs, q) {
  const vals = [];
  for (const a of arrs) if (a) for (let i = 0; i < a.length; i++) if (isFinite(a[i])) vals.push(Math.abs(a[i]));
  if (!vals.length) return 0;
  vals.sort((x, y) => x - y);
  return vals[Math.min(vals.length - 1, Math.floor(q * vals.length))];
}

// ---------------------------------------------------------------------------------------------------------
// The plane: panels of points in world coordinates, one shared view (ours and ABP zoom and pan together).
class Plane {
  constructor(root, inst) {
    this.inst = inst;
    this.wrap = el("div", "lc-plane", root);
    this.canvas = el("canvas", "lc-canvas", this.wrap);
    this.canvas.setAttribute("data-testid", "latent-cloud-canvas");
    this.tip = el("div", "lc-tip", this.wrap);
    this.tip.setAttribute("data-testid", "latent-cloud-tip");
    this.tipImg = el("canvas", "lc-thumb", this.tip);
    this.tipText = el("div", "", this.tip);
    this.ctx = this.canvas.getContext("2d");
    this.autoHalf = 0; this.targetHalf = 4; this.zoom = 1; this.cx = 0; this.cy = 0; this.acx = 0; this.acy = 0;
    this.panels = [];      // [{name, title, note, pos, segs, abpOn}]
    this.pointers = new Map();
    this.bind();
  }

  size() {
    const w = Math.max(200, this.wrap.clientWidth), n = this.layout().length;
    const h = Math.round(Math.min(520, Math.max(300, (w / Math.max(1, n)) * 0.92)));
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(h * dpr)) {
      this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(h * dpr);
      this.canvas.style.height = h + "px";
    }
    this.w = w; this.h = h; this.dpr = dpr;
  }

  layout() {  // the rectangles panels are drawn in: ABP beside ours, or on ours' axes
    const beside = this.inst.layers.abp === "beside";
    const shown = this.panels.filter((p, i) => i === 0 || (beside && this.inst.layers.abp !== "off"));
    const n = shown.length, w = (this.w || 600) / n;
    return shown.map((p, i) => ({ p, x: i * w + 34, y: 22, w: w - 44, h: (this.h || 400) - 46 }));
  }

  half() { return (this.autoHalf || this.targetHalf) / this.zoom; }

  toScreen(r, x, y) {
    const s = Math.min(r.w, r.h) / (2 * this.half());
    return [r.x + r.w / 2 + (x - this.acx - this.cx) * s, r.y + r.h / 2 - (y - this.acy - this.cy) * s];
  }

  toWorld(r, sx, sy) {
    const s = Math.min(r.w, r.h) / (2 * this.half());
    return [this.acx + this.cx + (sx - r.x - r.w / 2) / s, this.acy + this.cy - (sy - r.y - r.h / 2) / s];
  }

  rectAt(sx, sy) { return this.layout().find((r) => sx >= r.x && sx <= r.x + r.w && sy >= r.y && sy <= r.y + r.h); }

  nearest(sx, sy, radius) {  // brute force: 12,000 points cost well under a millisecond
    let best = null, bd = radius * radius;
    const beside = this.inst.layers.abp === "beside";
    for (const r of this.layout()) {
      const panels = beside || r.p !== this.panels[0] ? [r.p] : this.panels.filter((p, i) => i === 0 || this.inst.layers.abp === "same");
      for (const p of panels) {
        const pos = p.pos;
        if (!pos) continue;
        for (let i = 0; i < pos.length / 2; i++) {
          const [x, y] = this.toScreen(r, pos[2 * i], pos[2 * i + 1]);
          const d = (x - sx) ** 2 + (y - sy) ** 2;
          if (d < bd) { bd = d; best = { panel: p, i, x, y }; }
        }
      }
    }
    return best;
  }

  // Animation: each panel plays a queue of segments {a, b, dur, label}; frames are drawn only while one moves.
  setTarget(p, segs) {
    if (!p.pos || !segs.length) { p.pos = segs.length ? segs[segs.length - 1].b.slice() : p.pos; p.segs = []; return; }
    p.segs = segs; p.t0 = performance.now();
    segs[0].a = p.pos.length === segs[0].b.length ? p.pos.slice() : segs[0].b;
  }

  step(now) {  // advances every panel; true while anything moves
    let moving = false;
    for (const p of this.panels) {
      while (p.segs && p.segs.length) {
        const s = p.segs[0], t = (now - p.t0) / Math.max(1, s.dur);
        if (t >= 1) { p.pos = s.b.slice(); p.t0 += s.dur; p.segs.shift(); if (p.segs.length) p.segs[0].a = p.pos.slice(); continue; }
        const e = t < 0.5 ? 2 * t * t : 1 - 2 * (1 - t) * (1 - t);
        const out = p.pos && p.pos.length === s.b.length ? p.pos : new Float32Array(s.b.length);
        for (let i = 0; i < s.b.length; i++) out[i] = s.a[i] + (s.b[i] - s.a[i]) * e;
        p.pos = out; p.label = s.label; moving = true;
        break;
      }
      if (!p.segs || !p.segs.length) p.label = "";
    }
    // the axes follow the cloud (both ways: they shrink back after a divergence), eased
    const d = this.targetHalf - this.autoHalf;
    if (!this.autoHalf) this.autoHalf = this.targetHalf;
    else if (Math.abs(d) > 0.01 * this.targetHalf) { this.autoHalf += d * 0.12; moving = true; } else this.autoHalf = this.targetHalf;
    return moving;
  }

  fit(arrs, exact) {  // 99.5 % of |z| with room; the prior's 3 sigma when that is at most 4 times as wide as the cloud
    if (!exact) {  // a UMAP plane: its origin means nothing, so the axes centre on the cloud
      const xs = [], ys = [];
      for (const a of arrs) if (a) for (let i = 0; i < a.length; i += 2) { xs.push(a[i]); ys.push(a[i + 1]); }
      if (xs.length) {
        xs.sort((u, v) => u - v); ys.sort((u, v) => u - v);
        const lo = (v) => v[Math.floor(0.005 * v.length)], hi = (v) => v[Math.floor(0.995 * (v.length - 1))];
        this.acx = (lo(xs) + hi(xs)) / 2; this.acy = (lo(ys) + hi(ys)) / 2;
        this.targetHalf = Math.max(hi(xs) - lo(xs), hi(ys) - lo(ys), 0.1) * 0.6;
        return;
      }
    }
    this.acx = 0; this.acy = 0;
    const q = Math.max(quantileAbs(arrs, 0.995), 0.05);
    this.targetHalf = Math.max(q * 1.15, Math.min(3.4, q * 4));
  }

  draw() {
    this.size();
    const c = this.ctx, L = this.inst.layers, spr = this.inst.sprite();
    c.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    c.clearRect(0, 0, this.w, this.h);
    const labels = spr ? spr.labels : null;
    const rects = this.layout();
    for (const r of rects) {
      c.save();
      c.beginPath(); c.rect(r.x, r.y, r.w, r.h); c.clip();
      c.fillStyle = "#fff"; c.fillRect(r.x, r.y, r.w, r.h);
      this.drawGrid(r);
      if (L.contours && this.inst.exact !== false) this.drawContours(r);
      if (this.inst.priorXY && L.contours) this.drawDots(r, this.inst.priorXY, () => "rgba(150,150,150,0.35)", 1.2);
      const main = r.p === this.panels[0];
      if (main && L.before && this.inst.before) this.drawDots(r, this.inst.before, () => "rgba(160,160,160,0.55)", 1.6);
      if (main && L.lines && this.inst.src) this.drawLines(r, this.inst.src, this.inst.tgt, "rgba(40,40,40,0.45)");
      if (main && L.abp === "same" && this.panels[1]) this.drawDots(r, this.panels[1].pos, () => RUNS.ABP, 2, true);
      const col = L.colour && labels ? (i) => CLASS[labels[i] % 10] : () => (r.p.name === "ABP" ? RUNS.ABP : RUNS.ours);
      this.drawDots(r, r.p.pos, col, 2, r.p.name === "ABP" && L.abp === "same");
      const pinHere = this.inst.pin && (this.inst.pin.panel === r.p.name || (main && L.abp === "same"));
      if (pinHere && this.inst.pin.path) this.drawPath(r, this.inst.pin.path);
      if (this.inst.pin && r.p.pos && this.inst.pin.panel === r.p.name) {
        const i = this.inst.pin.i, [x, y] = this.toScreen(r, r.p.pos[2 * i], r.p.pos[2 * i + 1]);
        c.strokeStyle = "#000"; c.lineWidth = 2; c.beginPath(); c.arc(x, y, 6, 0, 7); c.stroke();
      }
      if (this.inst.mark && this.inst.mark.panel === r.p.name) {
        const [x, y] = this.toScreen(r, this.inst.mark.x, this.inst.mark.y);
        c.strokeStyle = "#000"; c.lineWidth = 1.5;
        c.beginPath(); c.moveTo(x - 7, y); c.lineTo(x + 7, y); c.moveTo(x, y - 7); c.lineTo(x, y + 7); c.stroke();
      }
      c.restore();
      c.strokeStyle = "#bbb"; c.lineWidth = 1; c.strokeRect(r.x, r.y, r.w, r.h);
      this.drawTicks(r);
      c.fillStyle = "#333"; c.font = "13px sans-serif"; c.textAlign = "left";
      c.fillText(r.p.title + (r.p.label ? "  ·  " + r.p.label : ""), r.x, r.y - 7);
      c.fillStyle = "#666"; c.font = "11px sans-serif";
      c.fillText(r.p.note || "", r.x + 4, r.y + r.h - 6);
    }
    if (L.colour && labels && this.inst.classNames) this.drawLegend(rects[rects.length - 1]);
  }

  drawGrid(r) {
    const c = this.ctx, [x0, y1] = this.toWorld(r, r.x, r.y), [x1, y0] = this.toWorld(r, r.x + r.w, r.y + r.h);
    c.strokeStyle = "#f0f0f0"; c.lineWidth = 1; c.beginPath();
    for (const t of niceTicks(x0, x1, 6)) { const [sx] = this.toScreen(r, t, 0); c.moveTo(sx, r.y); c.lineTo(sx, r.y + r.h); }
    for (const t of niceTicks(y0, y1, 6)) { const [, sy] = this.toScreen(r, 0, t); c.moveTo(r.x, sy); c.lineTo(r.x + r.w, sy); }
    c.stroke();
  }

  drawTicks(r) {
    const c = this.ctx, [x0, y1] = this.toWorld(r, r.x, r.y), [x1, y0] = this.toWorld(r, r.x + r.w, r.y + r.h);
    c.fillStyle = "#555"; c.font = "10px sans-serif";
    c.textAlign = "center";
    for (const t of niceTicks(x0, x1, 6)) { const [sx] = this.toScreen(r, t, 0); c.fillText(fmt(t), sx, r.y + r.h + 12); }
    c.textAlign = "right";
    for (const t of niceTicks(y0, y1, 6)) { const [, sy] = this.toScreen(r, 0, t); c.fillText(fmt(t), r.x - 3, sy + 3); }
  }

  drawContours(r) {
    const c = this.ctx, [ox, oy] = this.toScreen(r, 0, 0), s = Math.min(r.w, r.h) / (2 * this.half());
    c.strokeStyle = "#999"; c.lineWidth = 0.8; c.fillStyle = "#888"; c.font = "10px sans-serif"; c.textAlign = "left";
    for (const k of [1, 2, 3]) {
      c.beginPath(); c.arc(ox, oy, k * s, 0, 2 * Math.PI); c.stroke();
      c.fillText(k + "σ", ox + k * s * 0.72, oy - k * s * 0.72);
    }
  }

  drawDots(r, pos, colour, rad, open) {  // one path per colour: a few fills, not one per point
    if (!pos) return;
    const c = this.ctx, n = pos.length / 2, s = Math.min(r.w, r.h) / (2 * this.half());
    const ox = r.x + r.w / 2 - (this.acx + this.cx) * s, oy = r.y + r.h / 2 + (this.acy + this.cy) * s;
    const groups = new Map();
    for (let i = 0; i < n; i++) {
      const x = ox + pos[2 * i] * s, y = oy - pos[2 * i + 1] * s;
      if (!(x >= r.x - 3 && x <= r.x + r.w + 3 && y >= r.y - 3 && y <= r.y + r.h + 3)) continue;
      const col = colour(i) || RUNS.ours;
      let path = groups.get(col);
      if (!path) { path = new Path2D(); groups.set(col, path); }
      if (open) { path.moveTo(x + rad + 0.5, y); path.arc(x, y, rad + 0.5, 0, 2 * Math.PI); } else path.rect(x - rad, y - rad, 2 * rad, 2 * rad);
    }
    c.globalAlpha = 0.75;
    for (const [col, path] of groups) {
      if (open) { c.strokeStyle = col; c.lineWidth = 1; c.stroke(path); } else { c.fillStyle = col; c.fill(path); }
    }
    c.globalAlpha = 1;
  }

  drawLines(r, a, b, colour) {
    const c = this.ctx;
    c.strokeStyle = colour; c.lineWidth = 0.8; c.beginPath();
    for (let i = 0; i < a.length / 2; i++) {
      const [x0, y0] = this.toScreen(r, a[2 * i], a[2 * i + 1]), [x1, y1] = this.toScreen(r, b[2 * i], b[2 * i + 1]);
      c.moveTo(x0, y0); c.lineTo(x1, y1);
    }
    c.stroke();
  }

  drawPath(r, path) {
    const c = this.ctx;
    c.strokeStyle = "rgba(0,0,0,0.8)"; c.lineWidth = 1.2; c.beginPath();
    for (let k = 0; k < path.length / 2; k++) {
      const [x, y] = this.toScreen(r, path[2 * k], path[2 * k + 1]);
      if (k) c.lineTo(x, y); else c.moveTo(x, y);
    }
    c.stroke();
  }

  drawLegend(r) {
    const c = this.ctx, names = this.inst.classNames, present = this.inst.present || [];
    c.font = "10px sans-serif"; c.textAlign = "left";
    let y = r.y + 6;
    const w = Math.max(...present.map((k) => c.measureText(names[k] || String(k)).width)) + 18;
    c.fillStyle = "rgba(255,255,255,0.8)"; c.fillRect(r.x + r.w - w - 4, r.y + 2, w + 2, present.length * 13 + 6);
    for (const k of present) {
      c.fillStyle = CLASS[k % 10]; c.fillRect(r.x + r.w - w, y + 2, 7, 7);
      c.fillStyle = "#333"; c.fillText(names[k] || String(k), r.x + r.w - w + 11, y + 9); y += 13;
    }
  }

  // ---- interaction ----
  local(e) { const b = this.canvas.getBoundingClientRect(); return [e.clientX - b.left, e.clientY - b.top]; }

  bind() {
    const cv = this.canvas;
    cv.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [sx, sy] = this.local(e), r = this.rectAt(sx, sy) || this.layout()[0];
      const [wx, wy] = this.toWorld(r, sx, sy), f = Math.exp(-e.deltaY * 0.0015);
      this.zoomAt(r, wx, wy, f);
    }, { passive: false });
    cv.addEventListener("pointerdown", (e) => {
      try { cv.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer has none to capture */ }
      this.pointers.set(e.pointerId, { start: this.local(e), last: this.local(e), type: e.pointerType });
    });
    cv.addEventListener("pointermove", (e) => {
      const [sx, sy] = this.local(e), p = this.pointers.get(e.pointerId);
      if (!p) { if (e.pointerType === "mouse") this.hover(sx, sy); return; }
      const r = this.rectAt(...p.last) || this.layout()[0];
      if (this.pointers.size === 2) {  // pinch: zoom about the midpoint
        const [o] = [...this.pointers.entries()].filter(([id]) => id !== e.pointerId).map(([, v]) => v);
        const d0 = Math.hypot(p.last[0] - o.last[0], p.last[1] - o.last[1]), d1 = Math.hypot(sx - o.last[0], sy - o.last[1]);
        const [wx, wy] = this.toWorld(r, (sx + o.last[0]) / 2, (sy + o.last[1]) / 2);
        if (d0 > 0) this.zoomAt(r, wx, wy, d1 / d0);
      } else {
        const s = Math.min(r.w, r.h) / (2 * this.half());
        this.cx -= (sx - p.last[0]) / s; this.cy += (sy - p.last[1]) / s;
        this.hideTip();
      }
      p.last = [sx, sy]; p.moved = p.moved || Math.hypot(sx - p.start[0], sy - p.start[1]) > 4;
      this.inst.kick();
    });
    const up = (e) => {
      const p = this.pointers.get(e.pointerId);
      this.pointers.delete(e.pointerId);
      if (!p || p.moved || this.pointers.size) return;
      const [sx, sy] = this.local(e);
      const hit = this.nearest(sx, sy, p.type === "mouse" ? HIT_PX : TAP_PX);
      if (p.type !== "mouse" && hit) { this.showTip(hit); }
      this.inst.click(sx, sy, hit);
    };
    cv.addEventListener("pointerup", up);
    cv.addEventListener("pointercancel", (e) => this.pointers.delete(e.pointerId));
    cv.addEventListener("pointerleave", (e) => { if (e.pointerType === "mouse") this.hideTip(); });
    cv.addEventListener("dblclick", () => { this.zoom = 1; this.cx = 0; this.cy = 0; this.inst.kick(); });
  }

  zoomAt(r, wx, wy, f) {
    const z = Math.min(200, Math.max(0.2, this.zoom * f)), k = this.zoom / z;
    const cx = this.acx + this.cx, cy = this.acy + this.cy;  // the centre shown, about which the point stays put
    this.cx = wx + (cx - wx) * k - this.acx; this.cy = wy + (cy - wy) * k - this.acy; this.zoom = z;
    this.inst.kick();
  }

  hover(sx, sy) {
    const hit = this.nearest(sx, sy, HIT_PX);
    if (hit) this.showTip(hit); else this.hideTip();
    this.canvas.style.cursor = hit ? "pointer" : "crosshair";
  }

  showTip(hit) {
    const spr = this.inst.sprite(), i = hit.i;
    if (spr) this.inst.thumb(this.tipImg, i, 84);
    const cls = spr ? spr.labels[i] : null;
    const name = cls === null ? "" : (this.inst.classNames[cls] !== undefined ? this.inst.classNames[cls] : "class " + cls);
    this.tipText.textContent = `${hit.panel.name}: ${name}, image #${spr ? spr.index[i] : i}`;
    this.tip.style.display = "block";
    const x = Math.min(hit.x + 12, this.w - 110), y = Math.max(0, hit.y - 110);
    this.tip.style.left = x + "px"; this.tip.style.top = y + "px";
    this.tip.dataset.index = String(i);
    this.inst.hoverShownAt = performance.now();
  }

  hideTip() { this.tip.style.display = "none"; }
}

// ---------------------------------------------------------------------------------------------------------
// The fit curves: W2 to the prior per run against the iteration, the "on the prior" band, live-setting marks.
class Curves {
  constructor(root) {
    this.wrap = el("div", "lc-curves", root);
    this.canvas = el("canvas", "lc-canvas", this.wrap);
    this.canvas.setAttribute("data-testid", "latent-curves-canvas");
    this.tip = el("div", "lc-tip lc-curve-tip", this.wrap);
    this.ctx = this.canvas.getContext("2d");
    this.canvas.addEventListener("pointermove", (e) => this.hover(e));
    this.canvas.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
  }

  update(h, blob) {
    this.h = h;
    this.series = h.series.map((s) => ({ ...s, xy: blob(s.blob) }));
    this.draw();
  }

  frame() {
    const w = Math.max(200, this.wrap.clientWidth), hh = 320, dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr)) { this.canvas.width = Math.round(w * dpr); this.canvas.height = hh * dpr; this.canvas.style.height = hh + "px"; }
    return { w, hh, dpr, r: { x: 44, y: 26, w: w - 56, h: hh - 96 } };
  }

  draw() {
    if (!this.h) return;
    const { w, hh, dpr, r } = this.frame(), c = this.ctx, h = this.h;
    c.setTransform(dpr, 0, 0, dpr, 0, 0); c.clearRect(0, 0, w, hh);
    let xmax = 10, ymax = h.band ? h.band * 2 : 1;
    for (const s of this.series) for (let i = 0; i < s.xy.length; i += 2) { xmax = Math.max(xmax, s.xy[i]); if (isFinite(s.xy[i + 1])) ymax = Math.max(ymax, s.xy[i + 1]); }
    ymax *= 1.08;
    this.sx = (x) => r.x + (x / xmax) * r.w; this.sy = (y) => r.y + r.h - (y / ymax) * r.h; this.r = r; this.xmax = xmax;
    c.strokeStyle = "#eee"; c.fillStyle = "#555"; c.font = "10px sans-serif"; c.lineWidth = 1;
    c.textAlign = "right";
    for (const t of niceTicks(0, ymax, 5)) { c.beginPath(); c.moveTo(r.x, this.sy(t)); c.lineTo(r.x + r.w, this.sy(t)); c.stroke(); c.fillText(fmt(t), r.x - 4, this.sy(t) + 3); }
    c.textAlign = "center";
    for (const t of niceTicks(0, xmax, 6)) c.fillText(String(t), this.sx(t), r.y + r.h + 13);
    c.fillText("iteration", r.x + r.w / 2, r.y + r.h + 25);
    if (h.band) {
      c.fillStyle = "rgba(44,160,44,0.13)"; c.fillRect(r.x, this.sy(h.band), r.w, this.sy(0) - this.sy(h.band));
      c.fillStyle = "#2a7a2a"; c.textAlign = "left"; c.fillText(h.band_label, r.x + 4, this.sy(h.band) - 3);
    }
    for (const m of h.marks || []) {
      const x = this.sx(m[0]); c.strokeStyle = "#999"; c.setLineDash([3, 3]); c.beginPath(); c.moveTo(x, r.y); c.lineTo(x, r.y + r.h); c.stroke(); c.setLineDash([]);
      c.save(); c.translate(x + 3, r.y + 3); c.rotate(Math.PI / 2); c.fillStyle = "#777"; c.textAlign = "left"; c.fillText(m[1], 0, 0); c.restore();
    }
    for (const s of this.series) {
      c.strokeStyle = s.colour; c.lineWidth = s.dash ? 1 : 1.6; c.setLineDash(s.dash ? [2, 3] : []); c.beginPath();
      for (let i = 0; i < s.xy.length; i += 2) { const x = this.sx(s.xy[i]), y = this.sy(s.xy[i + 1]); if (i) c.lineTo(x, y); else c.moveTo(x, y); }
      c.stroke(); c.setLineDash([]);
      if (!s.dash) { c.fillStyle = s.colour; for (let i = 0; i < s.xy.length; i += 2) { c.beginPath(); c.arc(this.sx(s.xy[i]), this.sy(s.xy[i + 1]), 2.2, 0, 7); c.fill(); } }
    }
    c.fillStyle = "#333"; c.font = "12px sans-serif"; c.textAlign = "left"; c.fillText(h.title, 4, 14);
    let lx = 4, ly = hh - 30; c.font = "10px sans-serif";
    for (const s of this.series) {
      const wd = c.measureText(s.name).width + 26;
      if (lx + wd > w) { lx = 4; ly += 13; }
      c.fillStyle = s.colour; c.fillRect(lx, ly - 4, 10, s.dash ? 1 : 2.5); c.fillStyle = "#444"; c.fillText(s.name, lx + 13, ly); lx += wd;
    }
    if (!this.series.some((s) => s.xy.length)) { c.fillStyle = "#888"; c.textAlign = "center"; c.fillText(h.empty, r.x + r.w / 2, r.y + r.h / 2); }
  }

  hover(e) {
    if (!this.r) return;
    const b = this.canvas.getBoundingClientRect(), sx = e.clientX - b.left, it = ((sx - this.r.x) / this.r.w) * this.xmax;
    const lines = [];
    for (const s of this.series) {
      let best = null;
      for (let i = 0; i < s.xy.length; i += 2) if (best === null || Math.abs(s.xy[i] - it) < Math.abs(s.xy[best] - it)) best = i;
      if (best !== null) lines.push(`${s.name}: ${fmt(s.xy[best + 1])} at iteration ${s.xy[best]}`);
    }
    if (!lines.length) { this.tip.style.display = "none"; return; }
    this.tip.textContent = lines.join("\n"); this.tip.style.display = "block";
    this.tip.style.left = Math.min(sx + 10, b.width - 220) + "px"; this.tip.style.top = "30px";
  }
}

// ---------------------------------------------------------------------------------------------------------
class Explorer {
  constructor(parent) {
    this.root = el("div", "lc-root", parent);
    this.root.lc = this;  // a handle for the browser tests and the budget script (they read where a point is)
    this.layers = { contours: true, before: true, lines: true, colour: true, abp: "beside" };
    this.slow = false; this.raf = 0; this.seq = 0; this.pin = null; this.mark = null; this.classNames = [];
    this.destroy = () => { cancelAnimationFrame(this.raf); this.dead = true; document.removeEventListener("visibilitychange", this.onVis); };
    this.onVis = () => { if (!document.hidden) this.kick(); };
    document.addEventListener("visibilitychange", this.onVis);
  }

  build(mode) {
    this.mode = mode;
    if (mode === "curves") { this.curves = new Curves(this.root); return; }
    const bar = el("div", "lc-bar", this.root);
    this.bar = bar;
    if (mode === "replay") {
      this.playBtn = el("button", "lc-btn", bar, "❚❚ pause");
      this.playBtn.setAttribute("data-testid", "latent-cloud-play");
      this.playBtn.onclick = () => { this.playing = !this.playing; this.playBtn.textContent = this.playing ? "❚❚ pause" : "▶ play"; this.lastT = performance.now(); this.kick(); };
      this.speed = el("select", "lc-sel", bar);
      for (const s of [0.5, 1, 2, 4, 8]) { const o = el("option", "", this.speed, s + " frames/s"); o.value = s; if (s === 2) o.selected = true; }
      this.scrub = el("input", "lc-scrub", bar); this.scrub.type = "range"; this.scrub.min = 0; this.scrub.step = "any";
      this.scrub.setAttribute("data-testid", "latent-cloud-scrubber");
      this.scrub.oninput = () => { this.t = +this.scrub.value; this.playing = false; this.playBtn.textContent = "▶ play"; this.kick(); };
      this.loop = this.check(bar, "loop", true, () => {});
      this.frameLabel = el("span", "lc-note", bar);
    } else {
      this.replayBtn = el("button", "lc-btn", bar, "↺ replay the last correction");
      this.replayBtn.setAttribute("data-testid", "latent-cloud-replay");
      this.replayBtn.onclick = () => this.replayCorrection();
      this.check(bar, "slow motion", false, (v) => { this.slow = v; });
    }
    this.check(bar, "prior 1/2/3σ", true, (v) => { this.layers.contours = v; });
    if (mode === "live") {
      this.check(bar, "before the correction", true, (v) => { this.layers.before = v; });
      this.check(bar, "assignment lines", true, (v) => { this.layers.lines = v; });
    }
    this.check(bar, "colour by class", true, (v) => { this.layers.colour = v; });
    if (mode === "live") {
      this.abpSel = el("select", "lc-sel", bar);
      for (const [v, t] of [["beside", "ABP beside"], ["same", "ABP on the same axes"], ["off", "ABP hidden"]]) { const o = el("option", "", this.abpSel, t); o.value = v; }
      this.abpSel.onchange = () => { this.layers.abp = this.abpSel.value; this.kick(); };
    }
    const body = el("div", "lc-body", this.root);
    this.plane = new Plane(body, this);
    this.inspector = el("div", "lc-inspector", body);
    this.inspector.setAttribute("data-testid", "latent-cloud-inspector");
    el("div", "lc-hint", this.inspector, "Hover a point to see its image; click it to pin it here. Click the empty plane to decode g(z) there. Wheel or pinch to zoom, drag to pan, double-click to reset.");
    this.insBody = el("div", "", this.inspector);
    this.insNote = el("div", "lc-note", this.root);
  }

  check(bar, label, on, set) {
    const l = el("label", "lc-check", bar), c = el("input", "", l);
    c.type = "checkbox"; c.checked = on; el("span", "", l, label);
    c.onchange = () => { set(c.checked); this.kick(); };
    return c;
  }

  sprite() { return SPRITES.get(this.token) || null; }

  thumb(canvas, i, side) {
    const s = this.sprite();
    if (!s || !s.img) return;
    canvas.width = side; canvas.height = side;
    const c = canvas.getContext("2d");
    c.imageSmoothingEnabled = false;
    c.drawImage(s.img, (i % s.cols) * s.w, Math.floor(i / s.cols) * s.h, s.w, s.h, 0, 0, side, side);
  }

  update({ h, blob }) {
    if (!this.mode) this.build(h.mode);
    this.updates = (this.updates || 0) + 1;  // for tests and the budget script: what the page last received
    this.root.dataset.updates = String(this.updates);
    this.root.dataset.iteration = String(h.iteration ?? "");
    this.root.dataset.plane = h.plane || "";
    if (h.mode === "curves") { this.curves.update(h, blob); return; }
    this.token = h.token; this.classNames = h.class_names || []; this.decodable = h.decodable;
    this.exact = h.plane !== "umap";  // the prior's image is N(0, I_2) (circles), else its projected sample
    if (h.sprite && !SPRITES.has(h.token)) {
      const bytes = blob("sprite"), entry = { ...h.sprite, labels: blob("labels").slice(), index: blob("index").slice(), img: null };
      SPRITES.set(h.token, entry);
      createImageBitmap(new Blob([bytes], { type: "image/png" })).then((img) => { entry.img = img; });
    }
    const spr = this.sprite();
    this.present = spr ? [...new Set(spr.labels)].sort((a, b) => a - b) : [];
    this.priorXY = blob("prior");
    const plane = this.plane;
    if (h.mode === "replay") return this.updateReplay(h, blob);
    const tokenChanged = this.lastToken !== h.token; this.lastToken = h.token;
    if (tokenChanged) { plane.panels = []; this.pin = null; this.mark = null; this.lastCorr = null; }
    const names = h.panels.map((p) => p.name);
    plane.panels = h.panels.map((p, k) => {
      const old = plane.panels.find((q) => q.name === p.name) || { name: p.name, pos: null, segs: [] };
      old.title = p.title; old.note = p.note; old.k = k; return old;
    });
    if (this.abpSel) this.abpSel.style.display = names.length < 2 ? "none" : "";
    const dur = h.interval * 1000;
    const corr = h.correction;
    if (corr && blob("before")) {  // a new correction's cloud before Eq. 10, its pairs: kept until the next one
      this.before = blob("before"); this.after = blob("after"); this.src = blob("src"); this.tgt = blob("tgt");
      this.corrIt = corr.iteration;
    } else if (!corr) { this.before = this.after = this.src = this.tgt = null; }
    plane.panels.forEach((p, k) => {
      const to = blob("z" + k);
      if (!to) return;
      if (k === 0 && corr && corr.iteration !== this.lastCorr && this.before) {
        if (!p.pos || tokenChanged) p.pos = this.before.slice();  // a first view opens on the correction itself
        this.playCorrection(p, to, dur);
      }
      else plane.setTarget(p, [{ b: to, dur: this.slow ? dur * 4 : dur, label: "" }]);
    });
    if (corr) this.lastCorr = corr.iteration;
    plane.fit(plane.panels.map((p) => blob("z" + p.k)).concat(this.before ? [this.before] : []), this.exact);
    this.showDecoded(h, blob);
    this.kick();
  }

  playCorrection(p, live, dur) {  // current -> z_hat -> Eq. 10 along the assignment lines -> the live frame
    const k = this.slow ? 4 : 1, d = Math.max(dur, 1200) * k;
    this.plane.setTarget(p, [{ b: this.before, dur: 0.2 * d, label: "" },
      { b: this.after, dur: 0.6 * d, label: `correction at iteration ${this.corrIt}: z ← α T(ẑ) + (1 − α) ẑ` },
      { b: live, dur: 0.2 * d, label: "" }]);
  }

  replayCorrection() {
    const p = this.plane.panels[0];
    if (!p || !this.before) { this.insNote.textContent = "No correction yet: one happens every L iterations (method ours, alpha > 0)."; return; }
    const live = p.segs && p.segs.length ? p.segs[p.segs.length - 1].b : p.pos.slice();
    p.pos = this.before.slice();
    this.playCorrection(p, live, 2500);
    this.kick();
  }

  updateReplay(h, blob) {
    const plane = this.plane, n = h.frames.length, m = h.m;
    const all = blob("frames");
    this.frames = h.frames.map((f, k) => ({ it: f, z: all.subarray(k * m * 2, (k + 1) * m * 2) }));
    if (!plane.panels.length) { plane.panels = [{ name: h.panels[0].name, title: h.panels[0].title, pos: this.frames[0].z.slice(), segs: [] }]; this.t = 0; this.playing = true; this.lastT = performance.now(); }
    plane.panels[0].title = h.panels[0].title;
    this.scrub.max = Math.max(0, n - 1);
    plane.fit([all], this.exact);
    this.showDecoded(h, blob);
    this.kick();
  }

  tickReplay(now) {
    const n = this.frames.length;
    if (this.playing) {
      this.t += ((now - this.lastT) / 1000) * +this.speed.value;
      if (this.t >= n - 1) { if (this.loop.checked) this.t = 0; else { this.t = n - 1; this.playing = false; this.playBtn.textContent = "▶ play"; } }
    }
    this.lastT = now;
    const k = Math.min(n - 1, Math.floor(this.t)), f = this.t - k, a = this.frames[k].z, b = this.frames[Math.min(n - 1, k + 1)].z;
    const p = this.plane.panels[0], out = p.pos && p.pos.length === a.length ? p.pos : new Float32Array(a.length);
    for (let i = 0; i < a.length; i++) out[i] = a[i] + (b[i] - a[i]) * f;
    p.pos = out;
    p.note = `iteration ${this.frames[k].it}` + (f > 0.01 && k + 1 < n ? ` → ${this.frames[k + 1].it}` : "");
    this.scrub.value = this.t;
    this.frameLabel.textContent = `frame ${k + 1} of ${n}`;
    return this.playing;
  }

  click(sx, sy, hit) {
    const r = this.plane.rectAt(sx, sy);
    if (hit) {
      this.pin = { i: hit.i, panel: hit.panel.name, path: null };
      this.mark = null;
      this.renderInspector();
      this.seq += 1;
      this.trigger("pick", { i: hit.i, panel: hit.panel.name, seq: this.seq });
    } else if (r) {
      const [x, y] = this.plane.toWorld(r, sx, sy);
      this.mark = { x, y, panel: r.p.name };
      this.seq += 1;
      this.pending = { seq: this.seq, t: performance.now() };
      if (!this.decodable) { this.renderDecoded(null, this.decodeNote || "Decoding a clicked point needs d = 2 or the PCA plane."); }
      else { this.renderDecoded(null, `decoding g(z) at (${x.toFixed(2)}, ${y.toFixed(2)}) …`); this.trigger("decode", { x, y, panel: r.p.name, seq: this.seq }); }
    }
    this.kick();
  }

  trigger(name, value) { if (this.setTrigger) this.setTrigger(name, value); }

  renderInspector(recon) {
    const pin = this.pin, spr = this.sprite();
    this.insBody.replaceChildren();
    if (!pin) return;
    const cls = spr ? spr.labels[pin.i] : null;
    el("div", "lc-ins-title", this.insBody, `pinned: ${pin.panel}, image #${spr ? spr.index[pin.i] : pin.i}` + (cls !== null ? ` (${this.classNames[cls] ?? cls})` : ""));
    const row = el("div", "lc-ins-row", this.insBody);
    const a = el("figure", "", row), ca = el("canvas", "lc-big", a); this.thumb(ca, pin.i, 96); el("figcaption", "", a, "the image x_i");
    const b = el("figure", "", row);
    if (recon) { const img = el("img", "lc-big", b); img.src = recon; img.setAttribute("data-testid", "latent-cloud-recon"); }
    else el("div", "lc-big lc-wait", b, "…");
    el("figcaption", "", b, "g(z_i), its reconstruction");
    el("div", "lc-note", this.insBody, pin.pathNote || "its chain's path over the kept frames is drawn on the plane (black line)");
  }

  renderDecoded(url, note) {
    this.insBody.replaceChildren();
    const f = el("figure", "", this.insBody);
    if (url) { const img = el("img", "lc-big", f); img.src = url; img.setAttribute("data-testid", "latent-cloud-decoded"); }
    el("figcaption", "", f, note);
  }

  showDecoded(h, blob) {  // the server's answer to a pick or a decode, matched by its sequence number
    this.decodeNote = h.decode_note;
    if (h.pick && this.pin && h.pick.seq === this.seq && this.shownSeq !== this.seq) {
      this.shownSeq = this.seq;
      this.pin.path = blob("path"); this.pin.pathNote = h.pick.note;
      this.renderInspector(pngURL(blob("recon")));
    }
    if (h.decode && h.decode.seq === this.seq && this.mark && this.shownSeq !== this.seq) {
      this.shownSeq = this.seq;
      this.pin = null;
      this.renderDecoded(pngURL(blob("decoded")), h.decode.note);
      if (this.pending) { this.decodeMs = performance.now() - this.pending.t; this.inspector.dataset.decodeMs = this.decodeMs.toFixed(0); this.pending = null; }
    }
  }

  kick() {  // draw now, and keep drawing while something moves (requestAnimationFrame: never in a hidden tab)
    if (this.raf || this.dead || !this.plane) return;
    this.raf = requestAnimationFrame((now) => this.tick(now));
  }

  tick(now) {
    this.raf = 0;
    let moving = this.plane.step(now);
    if (this.mode === "replay" && this.frames) moving = this.tickReplay(now) || moving;
    this.plane.draw();
    this.frames_drawn = (this.frames_drawn || 0) + 1;
    this.root.dataset.framesDrawn = String(this.frames_drawn);
    if (moving && !document.hidden) this.kick();
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let inst = INSTANCES.get(parentElement);
  if (!inst) { inst = new Explorer(parentElement); INSTANCES.set(parentElement, inst); }
  if (inst.dead && parentElement.isConnected) {  // a cleanup of a superseded call ran: the element lives on
    inst.dead = false;
    document.addEventListener("visibilitychange", inst.onVis);
  }
  inst.setTrigger = setTriggerValue;
  if (data) inst.update(unpack(data));
  // Streamlit runs a call's cleanup at once when newer data arrived while that call was pending (a busy
  // machine): only an element that has left the page is torn down.
  return () => { if (!parentElement.isConnected) inst.destroy(); };
}
