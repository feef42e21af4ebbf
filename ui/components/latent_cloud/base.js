// The latent cloud explorer: a Streamlit components.v2 module (no iframe, no build step, no network), kept in four
// files that ui/components/latent_cloud/__init__.py joins, in this order, into the one module Streamlit loads:
// base.js (constants, looks, helpers), plane.js (the clouds), curves.js (the fit curves), cloud.js (the explorer).
// Python (ui/components/latent_cloud/__init__.py) sends one packed byte string per redraw:
//   "LVC1", uint32 header length, a JSON header (padded to 4 bytes), then little-endian arrays (4-byte aligned).
// Three modes share the module: "live" (the Train view's clouds), "replay" (Latent & OT's kept frames) and
// "curves" (the fit curves). Nothing here fetches anything: every byte comes in the packet.

const SPRITES = new Map();     // run token -> {img, cols, w, h, labels, index}: sent once per run, kept per tab
const INSTANCES = new WeakMap(); // parentElement -> instance (the module is called again on every new packet)
const RUNS = { ours: "#1f77b4", ABP: "#d62728" };
// What the canvases are drawn with: the ordinary look, and projector mode's (ui/projector.py: the packet's
// "projector" flag): thick points and lines, large type, dark text and a palette without pale colours.
const LOOKS = {
  normal: {
    name: "normal", classes: ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
      "#bcbd22", "#17becf"],
    dot: 2, alpha: 0.75, ring: 1, line: 0.8, path: 1.2, pin: 6, contour: 0.8, curve: 1.6, curveDot: 2.2,
    tick: 10, title: 13, note: 11, legend: 10, row: 13,
    margin: { left: 34, top: 22, right: 10, bottom: 24 },
    text: "#333", tickText: "#555", noteText: "#666", grid: "#f0f0f0", frame: "#bbb", contours: "#999",
    contourText: "#888", prior: "rgba(150,150,150,0.35)", before: "rgba(160,160,160,0.55)", lines: "rgba(40,40,40,0.45)",
    chain: "rgba(0,0,0,0.8)",
  },
  projector: {
    name: "projector", classes: ["#0047ab", "#e65c00", "#007a1f", "#c40000", "#6a1fa8", "#7a3d00", "#d10085", "#333333",
      "#7d7d00", "#00808f"],
    dot: 3, alpha: 0.9, ring: 2, line: 1.6, path: 3.5, pin: 9, contour: 2, curve: 3.5, curveDot: 4,
    tick: 17, title: 21, note: 17, legend: 17, row: 21,
    margin: { left: 52, top: 32, right: 10, bottom: 36 },
    text: "#000", tickText: "#000", noteText: "#111", grid: "#d9d9d9", frame: "#000", contours: "#444",
    contourText: "#222", prior: "rgba(110,110,110,0.5)", before: "rgba(120,120,120,0.7)", lines: "rgba(0,0,0,0.6)",
    chain: "#000",
  },
};
const HIT_PX = 7, TAP_PX = 16;  // hover / tap radius in CSS pixels
const FRAME_MS = 1000 / 30;         // the animation's frame interval (cloud.js tick)

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

function fitText(c, text, w) {  // cut with an ellipsis to at most w pixels in the context's font
  if (c.measureText(text).width <= w) return text;
  let n = text.length;
  while (n > 1 && c.measureText(text.slice(0, n) + "…").width > w) n--;
  return text.slice(0, n) + "…";
}

function quantileAbs(arrs, q) {
  const vals = [];
  for (const a of arrs) if (a) for (let i = 0; i < a.length; i++) if (isFinite(a[i])) vals.push(Math.abs(a[i]));
  if (!vals.length) return 0;
  vals.sort((x, y) => x - y);
  return vals[Math.min(vals.length - 1, Math.floor(q * vals.length))];
}

