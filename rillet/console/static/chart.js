// A tiny SVG chart helper (bars and lines), so the console needs no chart library or CDN.
"use strict";
const Chart = {
  svg(w, h, body) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${body}</svg>`;
  },
  esc(s) { return String(s).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`); },
  bars(items, opts = {}) {  // items: [{label, value}]
    const w = opts.width || 600, barH = 22, h = Math.max(40, items.length * (barH + 6) + 10);
    const max = Math.max(1, ...items.map(i => i.value || 0)), left = 160;
    let body = "";
    items.forEach((it, n) => {
      const y = 8 + n * (barH + 6), bw = ((it.value || 0) / max) * (w - left - 70);
      body += `<text x="4" y="${y + 15}" font-size="12">${Chart.esc(it.label)}</text>` +
        `<rect class="bar" x="${left}" y="${y}" width="${bw}" height="${barH}" fill="#4fa3ff"/>` +
        `<text x="${left + bw + 6}" y="${y + 15}" font-size="12">${Chart.esc(it.value)}</text>`;
    });
    return Chart.svg(w, h, body);
  },
  lines(series, opts = {}) {  // series: {name: [numbers]}
    const w = opts.width || 600, h = opts.height || 160, pad = 30;
    const names = Object.keys(series), colors = ["#4fa3ff", "#e5533d", "#2fa84f", "#a05ce0", "#e0a020"];
    const all = names.flatMap(n => series[n]), max = Math.max(1, ...all);
    const len = Math.max(2, ...names.map(n => series[n].length));
    let body = `<text x="4" y="14" font-size="11">${max.toFixed(1)} msg/s</text>`;
    names.forEach((n, i) => {
      const pts = series[n].map((v, k) =>
        `${pad + (k / (len - 1)) * (w - 2 * pad)},${h - pad + 10 - (v / max) * (h - pad - 10)}`);
      const [x, y] = (pts[pts.length - 1] || "0,0").split(",");  // the latest point, seen even alone
      body += `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts.join(" ")}"/>` +
        (pts.length ? `<circle cx="${x}" cy="${y}" r="3" fill="${colors[i % colors.length]}"/>` : "") +
        `<text x="${w - 150}" y="${16 + i * 14}" font-size="11" fill="${colors[i % colors.length]}">${Chart.esc(n)}</text>`;
    });
    return Chart.svg(w, h, body);
  },
};
