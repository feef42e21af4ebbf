// The explorer, part 4 of 4: the Explorer (bar, inspector, animation) and the module's entry point. See base.js.
class Explorer {
  constructor(parent) {
    this.root = el("div", "lc-root", parent);
    this.root.lc = this;  // a handle for the browser tests and the budget script (they read where a point is)
    this.layers = { contours: true, before: true, lines: true, colour: true, abp: "beside" };
    this.look = LOOKS.normal;
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
    this.setLook(h.projector ? LOOKS.projector : LOOKS.normal);
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
    this.pendingCorr = h.correction_pending;  // UMAP: a correction the worker has not placed yet
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
      else if (p.segs && p.segs.length > 1) p.segs[p.segs.length - 1].b = to;  // a correction plays on to the newest frame
      else plane.setTarget(p, [{ b: to, dur: this.slow ? dur * 4 : dur, label: "" }]);
    });
    if (corr) this.lastCorr = corr.iteration;
    plane.fit(plane.panels.map((p) => blob("z" + p.k)).concat(this.before ? [this.before] : []), this.exact);
    this.showDecoded(h, blob);
    this.kick();
  }

  setLook(look) {  // projector mode on or off: the same view (zoom, pan, pinned point), drawn thicker and larger
    if (look === this.look) return;
    this.look = look;
    this.root.classList.toggle("lc-projector", look === LOOKS.projector);
    this.root.dataset.look = look.name;
    this.kick();
  }

  playCorrection(p, live, dur) {  // current -> z_hat -> Eq. 10 along the assignment lines -> the live frame
    const k = this.slow ? 4 : 1, d = Math.max(dur, 1200) * k;
    this.plane.setTarget(p, [{ b: this.before, dur: 0.2 * d, label: "" },
      { b: this.after, dur: 0.6 * d, label: `correction at iteration ${this.corrIt}: z ← α T(ẑ) + (1 − α) ẑ`,
        short: `correction at ${this.corrIt}` },
      { b: live, dur: 0.2 * d, label: "" }]);
  }

  replayCorrection() {
    const p = this.plane.panels[0];
    if (!p || !this.before) {
      this.insNote.textContent = this.pendingCorr !== undefined ? `The correction at iteration ${this.pendingCorr} is being placed on the UMAP plane by the projection worker: replay it in a moment.`
        : "No correction yet: one happens every L iterations (method ours, alpha > 0).";
      return;
    }
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
      this.seq += 1;
      this.pin = { i: hit.i, panel: hit.panel.name, path: null, seq: this.seq };
      this.mark = null;
      this.renderInspector();
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

  chainPath(i) {  // point i's positions over the replay's frames, already on this plane
    const out = new Float32Array(2 * this.frames.length);
    this.frames.forEach((f, k) => { out[2 * k] = f.z[2 * i]; out[2 * k + 1] = f.z[2 * i + 1]; });
    return out;
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
      if (!this.pin.path?.length && this.frames) this.pin.path = this.chainPath(this.pin.i);  // a UMAP replay
      this.renderInspector(pngURL(blob("recon")));
    }
    if (h.pick_path && this.pin && h.pick_path.seq === this.pin.seq) this.pin.path = blob("pick_path");  // UMAP, later
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
    // at most one drawn frame per FRAME_MS (30 a second): a glide is as smooth to the eye, and the browser's
    // software raster of the canvas, which shares the cores with training, costs about half of what 60 a second
    // does (the app's training rate with the Train view open went from 9.6 to 13.9 it/s on a quiet machine)
    if (this.lastDraw && now - this.lastDraw < FRAME_MS - 2) { this.kick(); return; }
    this.lastDraw = now;
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
