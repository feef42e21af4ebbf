// The explorer, part 3 of 4: the fit curves. See base.js.
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
    this.h = h; this.look = h.projector ? LOOKS.projector : LOOKS.normal;
    this.series = h.series.map((s) => ({ ...s, xy: blob(s.blob) }));
    this.draw();
  }

  frame() {
    const K = this.look, big = K.tick / 10;  // projector mode: the margins grow with the type
    const w = Math.max(200, this.wrap.clientWidth), hh = Math.round(320 * Math.sqrt(big)), dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(w * dpr) || this.canvas.height !== Math.round(hh * dpr)) { this.canvas.width = Math.round(w * dpr); this.canvas.height = Math.round(hh * dpr); this.canvas.style.height = hh + "px"; }
    const x = Math.round(44 * big), y = Math.round(26 * big);
    return { w, hh, dpr, r: { x, y, w: w - x - 12, h: hh - y - Math.round(70 * big) } };
  }

  draw() {
    if (!this.h) return;
    const { w, hh, dpr, r } = this.frame(), c = this.ctx, h = this.h, K = this.look, f = K.tick;
    c.setTransform(dpr, 0, 0, dpr, 0, 0); c.clearRect(0, 0, w, hh);
    let xmax = 10, ymax = h.band ? h.band * 2 : 1;
    for (const s of this.series) for (let i = 0; i < s.xy.length; i += 2) { xmax = Math.max(xmax, s.xy[i]); if (isFinite(s.xy[i + 1])) ymax = Math.max(ymax, s.xy[i + 1]); }
    ymax *= 1.08;
    this.sx = (x) => r.x + (x / xmax) * r.w; this.sy = (y) => r.y + r.h - (y / ymax) * r.h; this.r = r; this.xmax = xmax;
    c.strokeStyle = K.name === "projector" ? K.grid : "#eee"; c.fillStyle = K.tickText; c.font = `${f}px sans-serif`; c.lineWidth = K.ring;
    c.textAlign = "right";
    for (const t of niceTicks(0, ymax, 5)) { c.beginPath(); c.moveTo(r.x, this.sy(t)); c.lineTo(r.x + r.w, this.sy(t)); c.stroke(); c.fillText(fmt(t), r.x - 4, this.sy(t) + 0.35 * f); }
    c.textAlign = "center";
    for (const t of niceTicks(0, xmax, 6)) c.fillText(String(t), this.sx(t), r.y + r.h + 1.3 * f);
    c.fillText("iteration", r.x + r.w / 2, r.y + r.h + 2.5 * f);
    if (h.band) {
      c.fillStyle = "rgba(44,160,44,0.13)"; c.fillRect(r.x, this.sy(h.band), r.w, this.sy(0) - this.sy(h.band));
      c.fillStyle = K.name === "projector" ? "#005a00" : "#2a7a2a"; c.textAlign = "left"; c.fillText(h.band_label, r.x + 4, this.sy(h.band) - 3);
    }
    let labelled = Infinity;  // newest first: a label only where it does not overlap a newer one (a slider dragged
    for (const m of [...(h.marks || [])].reverse()) {  // step by step leaves a mark per step)
      const x = this.sx(m[0]); c.strokeStyle = K.contours; c.lineWidth = K.ring; c.setLineDash([3, 3]); c.beginPath(); c.moveTo(x, r.y); c.lineTo(x, r.y + r.h); c.stroke(); c.setLineDash([]);
      if (labelled - x < 1.2 * f) continue;
      labelled = x;
      c.save(); c.translate(x + 3, r.y + 3); c.rotate(Math.PI / 2); c.fillStyle = K.noteText; c.textAlign = "left"; c.fillText(m[1], 0, 0); c.restore();
    }
    for (const s of this.series) {
      c.strokeStyle = s.colour; c.lineWidth = s.dash ? K.curve * 0.6 : K.curve; c.setLineDash(s.dash ? [2 * K.ring, 3 * K.ring] : []); c.beginPath();
      for (let i = 0; i < s.xy.length; i += 2) { const x = this.sx(s.xy[i]), y = this.sy(s.xy[i + 1]); if (i) c.lineTo(x, y); else c.moveTo(x, y); }
      c.stroke(); c.setLineDash([]);
      if (!s.dash) { c.fillStyle = s.colour; for (let i = 0; i < s.xy.length; i += 2) { c.beginPath(); c.arc(this.sx(s.xy[i]), this.sy(s.xy[i + 1]), K.curveDot, 0, 7); c.fill(); } }
    }
    c.fillStyle = K.text; c.font = `${K.title - 1}px sans-serif`; c.textAlign = "left"; c.fillText(h.title, 4, 1.1 * K.title);
    let lx = 4, ly = r.y + r.h + 4 * f; c.font = `${f}px sans-serif`;
    for (const s of this.series) {
      const wd = c.measureText(s.name).width + 2.6 * f;
      if (lx + wd > w) { lx = 4; ly += 1.3 * f; }
      c.fillStyle = s.colour; c.fillRect(lx, ly - 0.4 * f, f, s.dash ? K.ring : 2.5 * K.ring); c.fillStyle = K.text; c.fillText(s.name, lx + 1.3 * f, ly); lx += wd;
    }
    if (!this.series.some((s) => s.xy.length)) { c.fillStyle = K.noteText; c.textAlign = "center"; c.fillText(h.empty, r.x + r.w / 2, r.y + r.h / 2); }
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

