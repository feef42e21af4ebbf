// The explorer, part 2 of 4: the plane (panels of points, zoom, pan, hover, click). See base.js.
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
    const m = this.inst.look.margin;
    return shown.map((p, i) => ({ p, x: i * w + m.left, y: m.top, w: w - m.left - m.right, h: (this.h || 400) - m.top - m.bottom }));
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
        p.pos = out; p.label = s.label; p.short = s.short; moving = true;
        break;
      }
      if (!p.segs || !p.segs.length) p.label = p.short = "";
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
    const c = this.ctx, L = this.inst.layers, spr = this.inst.sprite(), K = this.inst.look;
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
      if (this.inst.priorXY && L.contours) this.drawDots(r, this.inst.priorXY, () => K.prior, 0.6 * K.dot);
      const main = r.p === this.panels[0];
      if (main && L.before && this.inst.before) this.drawDots(r, this.inst.before, () => K.before, 0.8 * K.dot);
      if (main && L.lines && this.inst.src) this.drawLines(r, this.inst.src, this.inst.tgt, K.lines);
      if (main && L.abp === "same" && this.panels[1]) this.drawDots(r, this.panels[1].pos, () => RUNS.ABP, K.dot, true);
      const col = L.colour && labels ? (i) => K.classes[labels[i] % 10] : () => (r.p.name === "ABP" ? RUNS.ABP : RUNS.ours);
      this.drawDots(r, r.p.pos, col, K.dot, r.p.name === "ABP" && L.abp === "same");
      const pinHere = this.inst.pin && (this.inst.pin.panel === r.p.name || (main && L.abp === "same"));
      const pinPos = this.inst.pin && r.p.pos && this.inst.pin.panel === r.p.name ? r.p.pos.subarray(2 * this.inst.pin.i, 2 * this.inst.pin.i + 2) : null;
      if (pinHere && this.inst.pin.path) this.drawPath(r, this.inst.pin.path, pinPos);
      if (this.inst.pin && r.p.pos && this.inst.pin.panel === r.p.name) {
        const i = this.inst.pin.i, [x, y] = this.toScreen(r, r.p.pos[2 * i], r.p.pos[2 * i + 1]);
        c.strokeStyle = "#000"; c.lineWidth = 2 * K.ring; c.beginPath(); c.arc(x, y, K.pin, 0, 7); c.stroke();
      }
      if (this.inst.mark && this.inst.mark.panel === r.p.name) {
        const [x, y] = this.toScreen(r, this.inst.mark.x, this.inst.mark.y);
        const a = K.pin + 1;
        c.strokeStyle = "#000"; c.lineWidth = 1.5 * K.ring;
        c.beginPath(); c.moveTo(x - a, y); c.lineTo(x + a, y); c.moveTo(x, y - a); c.lineTo(x, y + a); c.stroke();
      }
      c.restore();
      c.strokeStyle = K.frame; c.lineWidth = K.ring; c.strokeRect(r.x, r.y, r.w, r.h);
      this.drawTicks(r);
      c.fillStyle = K.text; c.font = `${K.title}px sans-serif`; c.textAlign = "left";
      let title = r.p.title + (r.p.label ? "  ·  " + r.p.label : "");  // the short label where the long one is cut
      if (r.p.short && c.measureText(title).width > r.w) title = r.p.title + "  ·  " + r.p.short;
      c.fillText(fitText(c, title, r.w), r.x, r.y - 0.5 * K.title);
      c.fillStyle = K.noteText; c.font = `${K.note}px sans-serif`;
      c.fillText(r.p.note || "", r.x + 4, r.y + r.h - 0.5 * K.note);
    }
    if (L.colour && labels && this.inst.classNames) this.drawLegend(rects[rects.length - 1]);
  }

  drawGrid(r) {
    const c = this.ctx, [x0, y1] = this.toWorld(r, r.x, r.y), [x1, y0] = this.toWorld(r, r.x + r.w, r.y + r.h);
    c.strokeStyle = this.inst.look.grid; c.lineWidth = this.inst.look.ring; c.beginPath();
    for (const t of niceTicks(x0, x1, 6)) { const [sx] = this.toScreen(r, t, 0); c.moveTo(sx, r.y); c.lineTo(sx, r.y + r.h); }
    for (const t of niceTicks(y0, y1, 6)) { const [, sy] = this.toScreen(r, 0, t); c.moveTo(r.x, sy); c.lineTo(r.x + r.w, sy); }
    c.stroke();
  }

  drawTicks(r) {
    const c = this.ctx, [x0, y1] = this.toWorld(r, r.x, r.y), [x1, y0] = this.toWorld(r, r.x + r.w, r.y + r.h);
    const K = this.inst.look;
    c.fillStyle = K.tickText; c.font = `${K.tick}px sans-serif`;
    c.textAlign = "center";
    for (const t of niceTicks(x0, x1, 6)) { const [sx] = this.toScreen(r, t, 0); c.fillText(fmt(t), sx, r.y + r.h + 1.2 * K.tick); }
    c.textAlign = "right";
    for (const t of niceTicks(y0, y1, 6)) { const [, sy] = this.toScreen(r, 0, t); c.fillText(fmt(t), r.x - 3, sy + 0.35 * K.tick); }
  }

  drawContours(r) {
    const c = this.ctx, [ox, oy] = this.toScreen(r, 0, 0), s = Math.min(r.w, r.h) / (2 * this.half());
    const K = this.inst.look;
    c.strokeStyle = K.contours; c.lineWidth = K.contour; c.fillStyle = K.contourText; c.font = `${K.tick}px sans-serif`; c.textAlign = "left";
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
    c.globalAlpha = this.inst.look.alpha;
    for (const [col, path] of groups) {
      if (open) { c.strokeStyle = col; c.lineWidth = this.inst.look.ring; c.stroke(path); } else { c.fillStyle = col; c.fill(path); }
    }
    c.globalAlpha = 1;
  }

  drawLines(r, a, b, colour) {
    const c = this.ctx;
    c.strokeStyle = colour; c.lineWidth = this.inst.look.line; c.beginPath();
    for (let i = 0; i < a.length / 2; i++) {
      const [x0, y0] = this.toScreen(r, a[2 * i], a[2 * i + 1]), [x1, y1] = this.toScreen(r, b[2 * i], b[2 * i + 1]);
      c.moveTo(x0, y0); c.lineTo(x1, y1);
    }
    c.stroke();
  }

  drawPath(r, path, now) {  // the chain over the kept frames, then dashed to where the point is now
    const c = this.ctx, n = path.length / 2;
    if (!n) return;
    c.strokeStyle = this.inst.look.chain; c.lineWidth = this.inst.look.path; c.beginPath();
    for (let k = 0; k < n; k++) {
      const [x, y] = this.toScreen(r, path[2 * k], path[2 * k + 1]);
      if (k) c.lineTo(x, y); else c.moveTo(x, y);
    }
    c.stroke();
    if (!now) return;
    c.setLineDash([4, 4]); c.beginPath();
    c.moveTo(...this.toScreen(r, path[2 * n - 2], path[2 * n - 1])); c.lineTo(...this.toScreen(r, now[0], now[1]));
    c.stroke(); c.setLineDash([]);
  }

  drawLegend(r) {
    const c = this.ctx, names = this.inst.classNames, present = this.inst.present || [], K = this.inst.look;
    const box = Math.round(0.7 * K.legend), row = K.row;
    c.font = `${K.legend}px sans-serif`; c.textAlign = "left";
    let y = r.y + 6;
    const w = Math.max(...present.map((k) => c.measureText(names[k] || String(k)).width)) + box + 11;
    c.fillStyle = "rgba(255,255,255,0.85)"; c.fillRect(r.x + r.w - w - 4, r.y + 2, w + 2, present.length * row + 6);
    for (const k of present) {
      c.fillStyle = K.classes[k % 10]; c.fillRect(r.x + r.w - w, y + row - box - 4, box, box);
      c.fillStyle = K.text; c.fillText(names[k] || String(k), r.x + r.w - w + box + 4, y + row - 4); y += row;
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
      const hit = this.nearest(sx, sy, (p.type === "mouse" ? HIT_PX : TAP_PX) + this.inst.look.dot - 2);
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
    const hit = this.nearest(sx, sy, HIT_PX + this.inst.look.dot - 2);  // the dots are larger on a projector
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
    const tw = this.tip.offsetWidth || 110, th = this.tip.offsetHeight || 110;  // larger in projector mode
    const x = Math.min(hit.x + 12, this.w - tw), y = Math.max(0, hit.y - th);
    this.tip.style.left = x + "px"; this.tip.style.top = y + "px";
    this.tip.dataset.index = String(i);
    this.inst.hoverShownAt = performance.now();
  }

  hideTip() { this.tip.style.display = "none"; }
}

